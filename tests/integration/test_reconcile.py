"""`revenue-webhooks reconcile`: Stripe (the local API), the ledger (moto) and Mixpanel (the local export API).

What must hold: zero differences when every payment landed; each missing, wrong or extra one named by object
id with the command that repairs it, and that command repairing it; exit 0 / 1 / 2.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from harness import Pipeline
from revenue_webhooks.providers.stripe import PRODUCES
from stripe_history_rig import Rig

from devstack.mixpanel import DEMO_CREDENTIALS
from devstack.stripe_api import StripeAccount, StripeApiServer

NOW = int(time.time())
DAY = 86400
SINCE = time.strftime("%Y-%m-%d", time.gmtime(NOW - 40 * DAY))
UNTIL = time.strftime("%Y-%m-%d", time.gmtime(NOW))


def history(direct: bool = False) -> StripeAccount:
    """Checkout payments (a customer's and a guest's) in four currencies, a subscription, refunds."""
    story = StripeAccount(seed=31)
    ada = story.customer(at=NOW - 35 * DAY, email="ada@example.com", metadata={"user_id": "user-ada"}).object_id
    story.pay_checkout(4900, "usd", at=NOW - 30 * DAY, customer=ada)
    story.pay_checkout(5120, "kwd", at=NOW - 29 * DAY, email="guest@example.com")
    story.pay_checkout(3000, "jpy", at=NOW - 20 * DAY, customer=ada)
    sub = story.subscribe(ada, story.price(1500, "eur", nickname="Basic"), at=NOW - 28 * DAY).object_id
    story.renew(sub, at=NOW - 2 * DAY)
    story.refund(story.store.objects("checkout.session")[-1]["id"], 900, at=NOW - 10 * DAY)
    story.refund(story.store.objects("checkout.session")[-2]["id"], at=NOW - 5 * DAY)
    if direct:
        story.pay_direct(2500, "usd", at=NOW - 3 * DAY, customer=ada)
    return story


def rig_for(pipeline: Pipeline, account: StripeAccount, state: Path) -> Rig:
    pipeline.reset()
    return Rig(pipeline, StripeApiServer(account).start(), state)


@pytest.fixture
def rig(quick_pipeline: Pipeline, tmp_path: Path) -> Iterator[Rig]:
    running = rig_for(quick_pipeline, history(), tmp_path)
    yield running
    running.api.stop()


def test_zero_differences_when_every_payment_landed(rig: Rig) -> None:
    account = rig.api.accounts["test"]
    rig.deliver(account.events())
    code, out = rig.reconcile("--since", SINCE, "--until", UNTIL)
    assert code == 0, out
    assert "All agree" in out and "KWD" in out and "5.120" in out
    code, report = rig.reconcile_json("--since", SINCE, "--until", UNTIL)
    assert code == 0 and report["differences"] == [] and report["agree"] is True
    usd = report["currencies"]["USD"]
    assert (
        usd["stripe"]
        == usd["ledger"]
        == usd["mixpanel"]
        == {
            "gross": "49.00",
            "refunds": "9.00",
            "net": "40.00",
            "payments": 1,
            "refund_count": 1,
        }
    )
    assert set(report["currencies"]) == {"USD", "EUR", "JPY", "KWD"}


def test_each_difference_names_the_object_and_its_repair_repairs_it(rig: Rig) -> None:
    account = rig.api.accounts["test"]
    session = account.store.objects("checkout.session")[0]
    lost_payment = session["id"]
    refund = account.store.objects("refund")[0]
    lost_refund = refund["id"]
    # The payment's webhooks: the session's and its PaymentIntent's (either counts it); the refund's:
    # refund.created, and charge.refunded (which lists the charge's refunds here).
    lost = (lost_payment, session["payment_intent"], lost_refund, refund["charge"])
    rig.deliver([e for e in account.events() if e.object_id not in lost])
    code, report = rig.reconcile_json("--since", SINCE, "--until", UNTIL)
    assert code == 1
    found = {d["object_id"]: d for d in report["differences"]}
    assert set(found) == {lost_payment, lost_refund}
    assert found[lost_payment]["problem"] == "not in Mixpanel; not in the ledger"
    assert found[lost_payment]["mixpanel"] is None and found[lost_payment]["ledger"] is None
    assert report["repair"] == f'make backfill ARGS="--ids {",".join(sorted(found))}"'
    code, out = rig.reconcile("--since", SINCE, "--until", UNTIL)
    assert code == 1 and lost_payment in out and "Repair: make backfill" in out
    ids = report["repair"].split("--ids ")[1].rstrip('"')
    assert rig.backfill("--ids", ids)[0] == 0
    rig.drain()
    assert rig.reconcile("--since", SINCE, "--until", UNTIL)[0] == 0


def test_what_only_mixpanel_holds_is_a_difference(rig: Rig) -> None:
    rig.deliver(rig.api.accounts["test"].events())
    stranger = {
        "event": "Purchase Completed",
        "properties": {
            "time": NOW - 4 * DAY,
            "distinct_id": "user-x",
            "$insert_id": "00000000-0000-4000-8000-00000000beef",
            "Revenue": 10,
            "Currency": "USD",
            "Order ID": "cs_test_someone_else",
        },
    }
    response = requests.post(
        f"{rig.pipeline.mixpanel.url}/import",
        params={"strict": "1", "project_id": DEMO_CREDENTIALS.project_id},
        json=[stranger],
        auth=(DEMO_CREDENTIALS.username, DEMO_CREDENTIALS.secret),
        timeout=10,
    )
    assert response.status_code == 200
    code, report = rig.reconcile_json("--since", SINCE, "--until", UNTIL)
    assert code == 1
    [difference] = report["differences"]
    assert difference["object_id"] == "cs_test_someone_else" and difference["repair"] is None
    assert report["currencies"]["USD"]["mixpanel"]["gross"] == "59.00"
    assert report["currencies"]["USD"]["stripe"]["gross"] == "49.00"


def test_a_direct_payment_counts_only_where_the_pipeline_maps_it(quick_pipeline: Pipeline, tmp_path: Path) -> None:
    rig = rig_for(quick_pipeline, history(direct=True), tmp_path)
    try:
        rig.deliver(rig.api.accounts["test"].events())
        code, report = rig.reconcile_json("--since", SINCE, "--until", UNTIL)
    finally:
        rig.api.stop()
    if "payment_intent.succeeded" in PRODUCES:
        assert code == 0, report["differences"]
    else:  # the mapping of direct PaymentIntent payments has not landed: reconcile says exactly that
        [difference] = report["differences"]
        assert difference["object_id"].startswith("pi_") and difference["repair"] is None
        assert difference["problem"] == "the pipeline maps no Purchase Completed from payment_intent.succeeded"


def test_usage_and_configuration_errors_exit_2_and_say_what_to_set(rig: Rig) -> None:
    code, out = rig.reconcile("--since", SINCE, "--until", UNTIL, MIXPANEL_SERVICE_ACCOUNT_SECRET=None)
    assert code == 2 and "MIXPANEL_SERVICE_ACCOUNT_SECRET" in out
    code, out = rig.reconcile("--since", SINCE, "--until", UNTIL, STRIPE_API_KEY=None)
    assert code == 2 and "STRIPE_API_KEY" in out
    code, out = rig.reconcile("--since", UNTIL, "--until", SINCE)
    assert code == 2 and "is not after" in out
    code, out = rig.reconcile("--since", SINCE, "--until", UNTIL, MIXPANEL_REGION="MARS")
    assert code == 2 and "MIXPANEL_REGION" in out and "EU" in out
    code, out = rig.reconcile("--since", SINCE, "--until", UNTIL, MIXPANEL_SERVICE_ACCOUNT_SECRET="wrong")
    assert code == 2 and "401" in out
    with pytest.raises(SystemExit) as stop:
        rig.reconcile("--since", "yesterday", "--until", UNTIL)
    assert stop.value.code == 2


def test_a_test_mode_key_backfills_and_reconciles_the_test_lane(tmp_path: Path) -> None:
    """With Mode=any and TestEventsTo=test-project, a test-mode account's webhooks go to the test project (its own
    queue and ledger namespace): the tools follow the key there, and the production project stays untouched."""
    pipeline = Pipeline(visibility_timeout_s=1, parameters={"TestEventsTo": "test-project"})
    api = StripeApiServer(history()).start()
    try:
        rig = Rig(pipeline, api, tmp_path)
        account = api.accounts["test"]
        session = account.store.objects("checkout.session")[0]
        lost = session["id"]
        rig.deliver([e for e in account.events() if e.object_id not in (lost, session["payment_intent"])])
        assert pipeline.test_project.events() and pipeline.mixpanel.events() == []
        code, report = rig.reconcile_json("--since", SINCE, "--until", UNTIL)
        assert code == 1 and [d["object_id"] for d in report["differences"]] == [lost]
        code, out = rig.backfill("--since", SINCE)
        assert code == 0 and "enqueued 2," in out, out  # the session and its PaymentIntent: one payment
        rig.drain()
        assert rig.reconcile("--since", SINCE, "--until", UNTIL)[0] == 0
        assert pipeline.mixpanel.events() == []  # nothing reached the production project
        code, out = rig.reconcile("--since", SINCE, "--until", UNTIL, "--lane", "live")
        assert code == 1 and "not in Mixpanel; not in the ledger" in out
    finally:
        api.stop()
        pipeline.close()
