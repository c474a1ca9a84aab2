"""The issue's story: a Stripe account's 13 months, the pipeline deployed in month 12, a 3-day webhook outage in
month 13, everything else delivered twice and shuffled; then backfill (429s, 5xx, timeouts and a SIGKILL in
the middle) and catch-up. Mixpanel must then hold what a run that received every webhook once, in order,
holds; reconcile must find no difference per currency and per object; and doing it all again changes nothing.

The account (devstack/stripe_api `write_history`): six customers paying in USD, EUR, JPY and KWD through
Checkout (their own and as guests) and directly (PaymentIntents), three monthly subscriptions with renewals,
an upgrade in month 6, refunds of payments three months old; in the outage, a second upgrade (its
`Subscription Changed` exists only as an event: only catch-up can recover it; its proration invoice the
backfill finds). At deployment the operator ran the backfill up to that day (the README's first day); then
CatchUpFunction ran on its schedule (its last run before the outage left its checkpoint at the outage's start:
the one run here stands for its runs since) and, at the end, a backfill of everything.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from harness import Pipeline
from revenue_webhooks.adapters.checkpoints import DynamoDbCheckpoints
from revenue_webhooks.providers.stripe import PRODUCES
from revenue_webhooks.service.catchup import CHECKPOINT
from stripe_history_rig import Rig, changed, objects_read

from devstack.lambda_runtime import LambdaContext, load_handler
from devstack.stripe_api import ApiKey, Event, StripeAccount, StripeApiServer, write_history
from devstack.stripe_api.history import PLANS
from devstack.template import Template

DAY = 86400
MONTH = 30 * DAY
NOW = int(time.time())
START = NOW - 13 * MONTH
DEPLOYED = START + 11 * MONTH  # the first day of month 12
OUTAGE = (NOW - 20 * DAY, NOW - 17 * DAY)
KEY = "sk_test_story_reader"
SINCE = time.strftime("%Y-%m-%d", time.gmtime(START))
UNTIL = time.strftime("%Y-%m-%d", time.gmtime(NOW))
CATCH_UP = "CatchUpFunction"


@dataclass
class Story:
    account: StripeAccount
    outage_upgrade: Event
    reference: dict[str, dict[str, Any]]
    reference_profiles: dict[str, Any]
    rig: Rig
    caught_up: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)
    facts: int = 0
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    reconcile: tuple[int, dict[str, Any]] = (0, {})


def write_account() -> tuple[StripeAccount, Event]:
    account = StripeAccount(seed=13)
    history = write_history(account, start=START, months=13, customers=6, payments_per_month=4)
    subscription = account.store.get(history.subscriptions[1])
    assert subscription is not None
    currency = subscription["currency"]
    pro = account.price(PLANS[currency][1], currency, nickname="Pro")
    upgrade = account.upgrade(subscription["id"], pro, at=OUTAGE[0] + DAY)
    return account, upgrade


def delivered_live(account: StripeAccount) -> list[Event]:
    """Month 12 on, minus the outage: each webhook twice, shuffled, as Stripe's retries and order make it."""
    live = [e for e in account.events(since=DEPLOYED) if not OUTAGE[0] <= e.created < OUTAGE[1]]
    twice = live + live
    random.Random(5).shuffle(twice)
    return twice


def catch_up(rig: Rig) -> dict[str, Any]:
    """One run of the scheduled CatchUpFunction (the real handler), from a checkpoint at the outage's start: where
    its runs since deployment had left it when the webhooks stopped arriving."""
    template = Template(parameters=dict(rig.pipeline.template.parameters))
    rig.pipeline.activate()
    checkpoints = DynamoDbCheckpoints(rig.pipeline.resources.refs["LedgerTable"], rig.pipeline.dynamodb)
    checkpoints.put(CHECKPOINT, {"origin": DEPLOYED, "until": OUTAGE[0]})
    handler = load_handler(template, CATCH_UP, rig.pipeline.environment)
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    answer: dict[str, Any] = handler(event, LambdaContext(CATCH_UP, 300))
    assert answer["status"] == "complete", answer
    return answer


def killed_then_resumed(rig: Rig, story: Story) -> None:
    """The final backfill: SIGKILLed in the middle, then run again; both under Stripe's faults."""
    rig.api.faults.random(seed=3, rates={"rate_limit": 0.06, "500": 0.03, "503": 0.03, "slow": 0.02}, slow_s=1.5)
    rig.api.list_latency_s = 0.05
    argv, env = rig.command(
        "--since", SINCE, "--page-size", "4", "--concurrency", "4", "--timeout", "0.5", "--backoff", "0.05"
    )
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and child.poll() is None:
        if objects_read(rig.state_dir, "*-now") >= 40:  # this run's checkpoints, not the first day's
            break
        time.sleep(0.01)
    assert child.poll() is None, (child.communicate()[0] or b"").decode()
    child.send_signal(signal.SIGKILL)
    child.wait()
    rig.api.list_latency_s = 0
    code, out = rig.backfill("--since", SINCE, "--page-size", "4", "--timeout", "0.5", "--backoff", "0.05")
    story.logs.append(out)
    assert code == 0 and "resuming" in out, out
    rig.api.faults.clear()
    story.faults = rig.api.faults.served


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    account, upgrade = write_account()
    keys = (ApiKey(KEY),)
    with StripeApiServer(account, keys=keys, validate_spec=True) as api:
        # The same deployment (its Stripe key too: fees and settlements) had it received every webhook in order.
        deployment = {"secret_values": {"StripeApiKey": KEY}, "extra_env": {"STRIPE_API_BASE": api.url}}
        reference_pipeline = Pipeline(visibility_timeout_s=1, **deployment)
        try:
            reference_rig = Rig(reference_pipeline, api, tmp_path_factory.mktemp("reference"))
            reference_rig.deliver(account.events())
            reference, reference_profiles = reference_rig.events(), reference_pipeline.mixpanel.profiles()
        finally:
            reference_pipeline.close()
        pipeline = Pipeline(visibility_timeout_s=1, **deployment)
        try:
            rig = Rig(pipeline, api, tmp_path_factory.mktemp("state"))
            story = Story(account, upgrade, reference, reference_profiles, rig)
            deployed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(DEPLOYED))
            code, out = rig.backfill("--since", SINCE, "--until", deployed)  # the first day
            assert code == 0, out
            rig.drain()
            rig.deliver(delivered_live(account))
            story.caught_up = catch_up(rig)
            killed_then_resumed(rig, story)
            rig.drain()
            story.events, story.profiles, story.facts = rig.events(), pipeline.mixpanel.profiles(), rig.ledger_facts()
            story.dead_letters = pipeline.dead_letters()
            story.reconcile = rig.reconcile_json("--since", SINCE, "--until", UNTIL)
            yield story
        finally:
            pipeline.close()
        assert api.spec_violations() == []


def webhook_only_before(story: Story) -> set[str]:
    """Reference events no list can give back and no catch-up reaches: plan changes before deployment."""
    return {
        key
        for key, event in story.reference.items()
        if event["event"] == "Subscription Changed" and event["properties"]["time"] < DEPLOYED
    }


def test_mixpanel_holds_what_the_in_order_run_holds(story: Story) -> None:
    missing = story.reference.keys() - story.events.keys()
    assert story.events.keys() - story.reference.keys() == set()
    assert missing == webhook_only_before(story)
    assert Counter(story.reference[k]["event"] for k in missing)["Subscription Changed"] == len(missing) >= 1
    # A backfilled start names the plan the subscription has now: the two upgraded ones differ there and in the
    # MRR that plan gives (a start from 0: its MRR Change is its MRR), nothing else.
    differences = changed(story.reference, story.events)
    assert {d["event"] for d in differences.values()} <= {"Subscription Started"}, differences
    assert all(set(d) == {"event", "Plan", "Price", "MRR", "MRR Change"} for d in differences.values())
    assert all(d["MRR Change"][1] == d["MRR"][1] > d["MRR"][0] for d in differences.values())  # upgrades
    assert len(differences) == 2
    assert story.rig.pipeline.mixpanel.spec_violations() == []


def test_every_payment_carries_stripes_fee_whatever_the_order(story: Story) -> None:
    """With a key, each purchase gets its balance transaction's fee and net, however its webhooks arrived (a
    basil invoice names no payment: its fee comes from Stripe's books, not from a webhook that may come later)."""
    purchases = [e["properties"] for e in story.events.values() if e["event"] == "Purchase Completed"]
    assert purchases and all("Fee" in p and "Settlement Amount" in p for p in purchases)


def test_profiles_equal_the_in_order_runs(story: Story) -> None:
    assert story.profiles == story.reference_profiles


def test_catch_up_recovered_the_webhooks_of_the_outage(story: Story) -> None:
    in_outage = [e for e in story.account.events(since=OUTAGE[0], until=OUTAGE[1]) if e.type in PRODUCES]
    assert 0 < story.caught_up["recovered"] <= len(in_outage), story.caught_up
    recovered = [k for k, e in story.events.items() if e["event"] == "Subscription Changed"]
    assert any(OUTAGE[0] <= story.events[k]["properties"]["time"] < OUTAGE[1] for k in recovered)


def test_reconcile_reports_zero_differences_per_currency_and_per_object(story: Story) -> None:
    code, report = story.reconcile
    assert set(report["currencies"]) == {"USD", "EUR", "JPY", "KWD"}
    assert (code, report["differences"]) == (0, [])
    for currency, sources in report["currencies"].items():
        assert sources["stripe"] == sources["ledger"] == sources["mixpanel"], currency


def test_direct_payment_intents_count_once_beside_checkout_and_invoice_payments(story: Story) -> None:
    """Every PaymentIntent paid something: a Checkout Session's and an invoice's count as that purchase, a direct
    one as its own; each once, in the in-order run and after backfill, shuffled webhooks and catch-up alike."""
    store = story.account.store
    owned = {s["payment_intent"] for s in store.objects("checkout.session")} | {
        i["_payment_intent"] for i in store.objects("invoice")
    }
    direct = {p["id"] for p in store.objects("payment_intent")} - owned
    for events in (story.reference, story.events):
        orders = Counter(e["properties"].get("Order ID") for e in events.values() if e["event"] == "Purchase Completed")
        assert {order for order in orders if str(order).startswith("pi_")} == direct
        assert set(orders.values()) == {1}


def test_no_refund_of_an_unseen_payment_is_dead_lettered(story: Story) -> None:
    assert story.dead_letters == []


def test_the_backfill_met_stripes_faults_and_a_kill(story: Story) -> None:
    assert {"rate_limit", "500", "503", "slow"} <= set(story.faults), story.faults
    assert "resuming" in story.logs[-1]


def test_backfill_and_catch_up_again_change_nothing(story: Story) -> None:
    rig = story.rig
    code, out = rig.backfill("--since", SINCE, "--restart")
    assert code == 0 and "enqueued 0," in out, out
    again = catch_up(rig)  # the outage's events once more: all recorded now
    assert again["recovered"] == 0 and again["checked"] >= story.caught_up["checked"] > 0, again
    rig.drain()
    assert rig.events() == story.events
    assert rig.ledger_facts() == story.facts
    assert rig.pipeline.mixpanel.profiles() == story.profiles
