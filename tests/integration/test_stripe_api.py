"""The local Stripe API through the official `stripe` library: lists, filters, faults, keys and Stripe's spec."""

from __future__ import annotations

import base64
import itertools
import json
import math
import time

import pytest
import requests
import stripe

from devstack.stripe_api import ApiKey, Fault, SpecChecker, StripeAccount, StripeApiServer, spec_checker, write_history
from devstack.stripe_api.faults import RATE_LIMIT_ERROR
from devstack.stripe_api.shapes import FIXTURES
from devstack.stripe_api.versions import LEGACY_VERSION, LIBRARY_VERSION

NOW = int(time.time())
DAY = 86400
START = NOW - 13 * 30 * DAY


@pytest.fixture(scope="module")
def account() -> StripeAccount:
    story = StripeAccount(seed=11)
    write_history(story, start=START, months=13, customers=6, payments_per_month=4)
    return story


def client(api: StripeApiServer, key: str | None = None, **options: object) -> stripe.StripeClient:
    return stripe.StripeClient(key or api.secret_key, base_addresses={"api": api.url}, **options)  # type: ignore[arg-type]


def test_auto_pagination_lists_every_object_once_newest_first(api: StripeApiServer, account: StripeAccount) -> None:
    listed = list(client(api).v1.payment_intents.list(params={"limit": 7}).auto_paging_iter())
    stored = account.store.objects("payment_intent")
    assert [p.id for p in listed] == [r["id"] for r in stored]
    assert len({p.id for p in listed}) == len(stored) > 50
    assert [p.created for p in listed] == sorted((p.created for p in listed), reverse=True)


def test_created_slices_partition_the_history(api: StripeApiServer, account: StripeAccount) -> None:
    c = client(api)
    edges = [START + i * 45 * DAY for i in range(10)] + [NOW + DAY]
    seen: list[str] = []
    for low, high in itertools.pairwise(edges):
        charges = list(c.v1.charges.list(params={"limit": 20, "created": {"gte": low, "lt": high}}).auto_paging_iter())
        assert all(low <= ch.created < high for ch in charges)
        seen += [ch.id for ch in charges]
    assert sorted(seen) == sorted(r["id"] for r in account.store.objects("charge"))


def test_each_list_filters_like_stripe(api: StripeApiServer, account: StripeAccount) -> None:
    c = client(api)
    sessions = list(c.v1.checkout.sessions.list(params={"status": "complete", "limit": 100}).auto_paging_iter())
    assert sessions and all(s.status == "complete" for s in sessions)
    paid = list(c.v1.invoices.list(params={"status": "paid", "limit": 100}).auto_paging_iter())
    reasons = {i.billing_reason for i in paid}
    assert {"subscription_create", "subscription_cycle", "subscription_update"} <= reasons
    subscription = account.store.objects("subscription")[0]["id"]
    mine = c.v1.invoices.list(params={"subscription": subscription, "limit": 100}).data
    assert mine and all(i.parent.subscription_details.subscription == subscription for i in mine)
    assert len(c.v1.subscriptions.list(params={"status": "all"}).data) == len(account.store.objects("subscription"))
    customer = account.store.objects("customer")[-1]
    assert [x.id for x in c.v1.customers.list(params={"email": customer["email"]}).data] == [customer["id"]]
    charge = account.store.objects("refund")[0]["charge"]
    assert {r.charge for r in c.v1.refunds.list(params={"charge": charge}).data} == {charge}


def test_ending_before_pages_back_towards_newer_objects(api: StripeApiServer, account: StripeAccount) -> None:
    ids = [r["id"] for r in account.store.objects("customer")]
    page = client(api).v1.customers.list(params={"ending_before": ids[4], "limit": 2})
    assert [c.id for c in page.data] == ids[2:4]
    assert page.has_more is True
    assert [c.id for c in client(api).v1.customers.list(params={"starting_after": ids[-2]}).data] == ids[-1:]


def test_events_take_types_and_keep_thirty_days(api: StripeApiServer, account: StripeAccount) -> None:
    wanted = ["invoice.paid", "refund.created", "checkout.session.completed"]
    listed = list(client(api).v1.events.list(params={"types": wanted, "limit": 100}).auto_paging_iter())
    expected = [e for e in account.events(types=tuple(wanted), since=NOW - 30 * DAY)]
    assert {e.id for e in listed} == {e.id for e in expected} and listed
    first = expected[0]
    assert client(api).v1.events.retrieve(first.id).id == first.id
    raw = requests.get(f"{api.url}/v1/events/{first.id}", auth=(api.secret_key, ""), timeout=5)
    assert raw.json() == json.loads(first.body())
    old = account.events(until=NOW - 31 * DAY)[0]
    with pytest.raises(stripe.InvalidRequestError, match="No such event"):
        client(api).v1.events.retrieve(old.id)
    wildcard = client(api).v1.events.list(params={"type": "invoice.*", "limit": 100}).data
    assert wildcard and all(e.type.startswith("invoice.") for e in wildcard)


def test_retrieve_with_expand(api: StripeApiServer, account: StripeAccount) -> None:
    c = client(api)
    intent = account.store.objects("payment_intent")[0]
    got = c.v1.payment_intents.retrieve(intent["id"], params={"expand": ["latest_charge.balance_transaction"]})
    assert got.latest_charge.balance_transaction.amount == intent["amount"]
    charge = c.v1.charges.retrieve(intent["latest_charge"])
    assert c.v1.balance_transactions.retrieve(charge.balance_transaction).source == charge.id
    invoice = account.store.objects("invoice")[0]
    payments = c.v1.invoices.retrieve(invoice["id"], params={"expand": ["payments"]}).payments.data
    assert [p.payment.payment_intent for p in payments] == [invoice["_payment_intent"]]
    listed = c.v1.charges.list(params={"limit": 3, "expand": ["data.customer"]}).data
    assert all(ch.customer is None or ch.customer.object == "customer" for ch in listed)
    with pytest.raises(stripe.InvalidRequestError, match="No such charge"):
        c.v1.charges.retrieve("ch_missing")


def test_versions_render_the_shape_of_their_time(api: StripeApiServer, account: StripeAccount) -> None:
    invoice = account.store.objects("invoice")[0]
    legacy = client(api, stripe_version=LEGACY_VERSION).v1.invoices.retrieve(invoice["id"])
    current = client(api).v1.invoices.retrieve(invoice["id"])
    assert legacy.subscription == current.parent.subscription_details.subscription == invoice["_subscription"]
    assert legacy.paid is True and legacy.payment_intent == invoice["_payment_intent"]
    assert "paid" not in current and "subscription" not in current
    assert api.requests_log()[-1]["stripe_version"] == LIBRARY_VERSION


def test_keys_modes_and_permissions(account: StripeAccount) -> None:
    live = StripeAccount(seed=2, livemode=True)
    live.pay_direct(700, "usd", at=NOW - DAY)
    restricted = ApiKey("rk_test_reader", frozenset({"charges"}))
    keys = (ApiKey("sk_test_local"), ApiKey("sk_live_local"), restricted)
    with StripeApiServer(account, live, keys=keys, read_limits=None) as api:
        assert len(client(api, "sk_live_local").v1.payment_intents.list().data) == 1
        assert client(api, "sk_live_local").v1.payment_intents.list().data[0].livemode is True
        assert client(api, "rk_test_reader").v1.charges.list().data
        with pytest.raises(stripe.PermissionError, match="checkout_sessions"):
            client(api, "rk_test_reader").v1.checkout.sessions.list()
        with pytest.raises(stripe.AuthenticationError, match="Invalid API Key"):
            client(api, "sk_test_wrong").v1.charges.list()
        basic = base64.b64encode(b"sk_test_local:").decode()
        assert requests.get(f"{api.url}/v1/customers", headers={"Authorization": f"Basic {basic}"}, timeout=5).ok
        missing = requests.get(f"{api.url}/v1/customers", timeout=5)
        assert missing.status_code == 401 and "did not provide an API key" in missing.json()["error"]["message"]


def test_rate_limit_answers_stripes_429_which_the_library_does_not_retry(account: StripeAccount) -> None:
    with StripeApiServer(account, read_limits={"test": 25, "live": 100}) as api:
        started = time.monotonic()
        answers = [requests.get(f"{api.url}/v1/customers", auth=(api.secret_key, ""), timeout=5) for _ in range(60)]
        elapsed = time.monotonic() - started
        ok = [a for a in answers if a.status_code == 200]
        limited = [a for a in answers if a.status_code == 429]
        assert len(ok) + len(limited) == 60
        assert len(ok) <= 25 * (math.ceil(elapsed) + 1)  # never more than 25 in a second
        assert limited, f"60 requests in {elapsed:.2f}s and none was limited"
        assert limited[0].json() == {"error": {**RATE_LIMIT_ERROR}}
        assert limited[0].headers["Stripe-Rate-Limited-Reason"] == "global-rate"
        assert "Retry-After" not in limited[0].headers and "Stripe-Should-Retry" not in limited[0].headers
        time.sleep(1.1)
        api.faults.push(Fault.rate_limited())
        with pytest.raises(stripe.RateLimitError):
            client(api, max_network_retries=3).v1.customers.list()
        assert api.faults.served == {"rate_limit": 1}


def test_library_retries_lock_timeouts_server_errors_and_timeouts(api: StripeApiServer) -> None:
    api.faults.push(Fault.lock_timeout(), Fault.server_error(500), Fault.server_error(503))
    assert client(api, max_network_retries=3).v1.customers.list().data
    http = stripe.RequestsClient(timeout=0.5)
    api.faults.push(Fault.slow(2.0), Fault.disconnect())
    assert client(api, max_network_retries=3, http_client=http).v1.customers.list().data
    assert api.faults.served == {"lock_timeout": 1, "500": 1, "503": 1, "slow": 1, "disconnect": 1}
    api.faults.push(Fault.server_error(500))
    with pytest.raises(stripe.APIError):
        client(api, max_network_retries=0).v1.customers.list()


def test_unknown_and_unsupported_parameters_are_refused(api: StripeApiServer) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: colour"):
        client(api).v1.charges.list(params={"colour": "red"})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(stripe.InvalidRequestError, match="does not filter by 'test_clock'"):
        client(api).v1.customers.list(params={"test_clock": "clock_1"})
    with pytest.raises(stripe.InvalidRequestError, match="less than or equal to 100"):
        client(api).v1.customers.list(params={"limit": 101})


def test_every_shape_served_validates_against_stripes_spec(account: StripeAccount) -> None:
    resources = ("customers", "checkout.sessions", "payment_intents", "charges", "refunds", "invoices", "events")
    for version in (LIBRARY_VERSION, LEGACY_VERSION):
        with StripeApiServer(account, read_limits=None, validate_spec=True) as api:
            c = client(api, stripe_version=version)
            for name in resources:
                service = c.v1.checkout.sessions if name == "checkout.sessions" else getattr(c.v1, name)
                listed = list(service.list(params={"limit": 100}).auto_paging_iter())
                service.retrieve(listed[0].id)
            list(c.v1.subscriptions.list(params={"status": "all", "limit": 100}).auto_paging_iter())
            served = api.spec_violations(include_allowed=True)
            assert api.spec_violations() == [], version
            requests_checked = {v["request"] for v in served}
        if version == LEGACY_VERSION:  # the pre-basil shape departs from the 2023 spec nowhere (events keep theirs)
            assert [v for v in served if not v["path"].startswith("/v1/events")] == []
        else:  # the current shape departs only where Stripe's own 2026 example does
            assert requests_checked and all(v["allowed"] for v in served)


def test_spec_checker_accepts_stripes_examples_and_catches_a_wrong_shape() -> None:
    checker = spec_checker()
    examples = json.loads((FIXTURES / "stripe-openapi" / "fixtures3.2023-08-16.extract.json").read_text())["resources"]
    assert checker.version == "2023-08-16"
    found = {kind: checker.check_object(obj) for kind, obj in examples.items()}
    # The example event carries a plan, which none of the served operations reaches: not checked, and said so.
    assert [v.message for v in found.pop("event")] == ["not checked: the 2023-08-16 spec has no schema 'plan'"]
    assert found == {kind: [] for kind in found}
    broken = dict(examples["charge"], amount="1000", status="done")
    wrong = {(v.where, v.allowed) for v in checker.check_object(broken)}
    assert wrong == {(".amount", False), (".status", False)}
    # InvoicePayment is newer than the spec: its fields and their types are those of Stripe's 2026 example.
    paid = StripeAccount(seed=1)
    buyer = paid.customer(at=NOW).object_id
    paid.subscribe(buyer, paid.price(900, "usd"), at=NOW)
    (payment,) = [e.object for e in paid.events(types=("invoice_payment.paid",))]
    assert checker.check_object(payment) == []
    assert {v.where for v in checker.check_object({**payment, "amount_requested": "900", "paid": True})} == {
        ".amount_requested",
        ".paid",
    }
    strict = SpecChecker(later_examples={})
    current = StripeAccount(seed=1)
    customer = current.customer(at=NOW).object_id
    subscription = current.subscribe(customer, current.price(900, "usd"), at=NOW)
    assert {v.where for v in strict.check_object(subscription.object)} == {"."}  # current_period_* left the object


def test_current_shapes_hold_only_fields_stripe_16_1_0_declares(account: StripeAccount) -> None:
    models = {
        "balance_transaction": stripe.BalanceTransaction,
        "charge": stripe.Charge,
        "checkout.session": stripe.checkout.Session,
        "customer": stripe.Customer,
        "invoice": stripe.Invoice,
        "invoice_payment": stripe.InvoicePayment,
        "payment_intent": stripe.PaymentIntent,
        "refund": stripe.Refund,
        "subscription": stripe.Subscription,
    }
    for kind, model in models.items():
        record = account.store.objects(kind)[0]
        extra = set(account.render(record["id"], LIBRARY_VERSION)) - set(model.__annotations__)
        assert extra == set(), kind


def test_events_are_the_webhooks_a_test_can_sign(account: StripeAccount) -> None:
    event = account.events(types=("refund.created",))[-1]
    secret = "whsec_test_local"
    header = stripe.WebhookSignature.generate_signature_header(event.body().decode(), secret)
    parsed = stripe.Webhook.construct_event(event.body(), header, secret)
    assert parsed.id == event.id and parsed.data.object.amount == event.object["amount"]
    refunded = [e for e in account.events(types=("charge.refunded",)) if e.object_id == event.object["charge"]][-1]
    assert refunded.object["amount_refunded"] > refunded.previous_attributes["amount_refunded"]


def test_the_same_seed_writes_the_same_account() -> None:
    first, second = StripeAccount(seed=4), StripeAccount(seed=4)
    for story in (first, second):
        write_history(story, start=START, months=2, customers=2, payments_per_month=2)
    assert [e.body() for e in first.events()] == [e.body() for e in second.events()]


def test_the_server_binds_loopback_only_and_stops(account: StripeAccount) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        StripeApiServer(account, host="0.0.0.0")  # noqa: S104 - the refusal is the point
    server = StripeApiServer(account).start()
    url = server.url
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v1/customers", timeout=2)
