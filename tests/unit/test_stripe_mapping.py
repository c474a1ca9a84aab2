"""Stripe webhooks to catalog facts, over real fixture payloads and both invoice API shapes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from revenue_webhooks.config import Settings, from_environ
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Fact, PaymentOwner, payment_ref
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.mixpanel.rendering import mixpanel_event
from revenue_webhooks.providers.stripe import StripeProvider
from stripe_story import BASIL, Story

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stripe"


def facts_of(payload: dict[str, Any] | bytes, settings: Settings | None = None) -> list[Fact]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    event = json.loads(body)
    queued = QueuedEvent("stripe", event["id"], event["type"], int(time.time() * 1000), body)
    mapped = StripeProvider(settings or from_environ({})).map(queued)
    assert all(isinstance(item, Fact) for item in mapped)
    return mapped  # type: ignore[return-value]


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def test_paid_checkout_payment_is_one_purchase_from_the_real_fixture() -> None:
    (fact,) = facts_of(fixture("checkout.session.completed.payment_mode"))
    payload = json.loads(fixture("checkout.session.completed.payment_mode"))
    session = payload["data"]["object"]
    assert fact.event == c.PURCHASE_COMPLETED
    assert fact.key == f"stripe:payment:{session['id']}"
    assert fact.money is not None and fact.money.minor == session["amount_total"]
    assert fact.money.currency == session["currency"].upper()
    assert fact.time == payload["created"]
    assert fact.properties[c.PURCHASE_TYPE] == c.ONE_TIME


@pytest.mark.parametrize(
    "name",
    [
        "customer.created",
        "product.updated",
        "payout.paid",
        "invoice.created",
        "charge.succeeded",
    ],
)
def test_events_that_mean_nothing_for_revenue_map_to_nothing(name: str) -> None:
    assert facts_of(fixture(name)) == []


def test_the_real_payment_intent_fixture_is_a_direct_purchase_that_yields_to_an_owner() -> None:
    """stripe-ruby-mock's payment_intent.succeeded (2020-08-27, `invoice: null`): a payment of its own, keyed by
    the PaymentIntent, waiting (in the forwarder) for a Checkout Session that might own it."""
    (fact,) = facts_of(fixture("payment_intent.succeeded"))
    intent = json.loads(fixture("payment_intent.succeeded"))["data"]["object"]
    assert fact.event == c.PURCHASE_COMPLETED and fact.key == f"stripe:payment:{intent['id']}"
    assert (fact.money.minor, fact.money.currency) == (intent["amount_received"], "USD")  # type: ignore[union-attr]
    assert fact.order_id == intent["id"] and fact.properties[c.PURCHASE_TYPE] == c.ONE_TIME
    assert fact.links == fact.yields_to == (f"stripe:payment-ref:{intent['id']}",)


def test_checkout_and_invoice_purchases_name_their_payment_intents_own_fact() -> None:
    checkout = facts_of(fixture("checkout.session.completed.payment_mode"))[0]
    invoice = facts_of(fixture("invoice.paid"))[0]
    assert checkout.same_as == ("stripe:payment:pi_00000000000000",)
    assert invoice.same_as == ("stripe:payment:pi_000000000000000000000000",)
    assert not checkout.yields_to and not invoice.yields_to


def test_an_invoice_from_before_amount_paid_counts_its_amount_due() -> None:
    payload = json.loads(fixture("invoice.paid"))
    invoice = payload["data"]["object"]
    del invoice["amount_paid"], invoice["amount_remaining"], invoice["status"]
    invoice.update(paid=True, amount_due=1234)
    (fact, *_) = facts_of(payload)
    assert fact.money.minor == 1234  # type: ignore[union-attr]
    invoice["paid"] = False
    assert facts_of(payload) == []


def test_a_basil_invoice_line_gives_its_price_from_pricing() -> None:
    story = Story(api_version=BASIL)
    subscription = story.subscription("sub_p", price="price_basil")
    invoice = story.invoice("in_p", 1000, subscription=subscription)
    line = invoice["lines"]["data"][0]
    for gone in ("price", "plan"):
        line.pop(gone, None)
    line["pricing"] = {"type": "price_details", "price_details": {"price": "price_basil", "product": "prod_basil"}}
    (fact, *_) = facts_of(story.invoice_event("invoice.paid", invoice))
    assert fact.properties[c.PRICE] == "price_basil" and fact.properties[c.PLAN] == "prod_basil"


def test_a_payment_intent_refund_names_its_own_customer_in_newer_versions() -> None:
    story = Story(customer="cus_new", user_id=None, api_version=BASIL)
    refund = story.refund("re_n", 500, "usd", charge="ch_n", payment_intent="pi_n")
    refund["customer"] = "cus_new"
    (fact,) = facts_of(story.refund_created(refund))
    assert fact.identity.customer == "cus_new"


def test_invoice_payment_paid_says_which_invoice_a_payment_intent_paid() -> None:
    story = Story(api_version=BASIL)
    event = story.invoice_payment_paid("in_q", "pi_q", 1000)
    body = json.dumps(event).encode()
    queued = QueuedEvent("stripe", event["id"], event["type"], 0, body)
    assert StripeProvider(from_environ({})).map(queued) == [
        PaymentOwner("stripe:payment-ref:pi_q", "stripe:payment:in_q")
    ]


def test_one_off_invoice_fixture_is_an_invoice_purchase() -> None:
    payload = json.loads(fixture("invoice.paid"))
    facts = facts_of(payload)
    if payload["data"]["object"]["amount_paid"] > 0:
        (fact,) = facts
        assert fact.properties[c.PURCHASE_TYPE] == c.INVOICE
    else:
        assert facts == []


def test_setup_mode_and_unpaid_and_subscription_checkouts_add_no_purchase() -> None:
    s = Story()
    assert facts_of(s.checkout("cs_setup", 0, mode="setup", payment_status="no_payment_required")) == []
    assert facts_of(s.checkout("cs_unpaid", 500, payment_status="unpaid")) == []
    assert facts_of(s.checkout("cs_sub", 1000, mode="subscription", subscription="sub_1")) == []


def test_delayed_payment_counts_when_async_payment_succeeds_with_the_same_key() -> None:
    s = Story()
    (fact,) = facts_of(s.checkout("cs_async", 700, event_type="checkout.session.async_payment_succeeded"))
    assert fact.key == "stripe:payment:cs_async"


def test_checkout_identity_prefers_mixpanel_distinct_id_then_client_reference_then_user_id() -> None:
    s = Story(user_id="ref-1")
    event = s.checkout("cs_id", 100)
    event["data"]["object"]["metadata"] = {
        "mixpanel_distinct_id": "mp-1",
        "user_id": "u-1",
        "mixpanel_device_id": "dev-9",
    }
    (fact,) = facts_of(event)
    assert fact.identity.user_id == "mp-1"
    assert fact.identity.device_id == "dev-9"
    event["data"]["object"]["metadata"] = {"user_id": "u-1"}
    assert facts_of(event)[0].identity.user_id == "ref-1"
    event["data"]["object"]["client_reference_id"] = None
    assert facts_of(event)[0].identity.user_id == "u-1"
    event["data"]["object"]["metadata"] = {}
    (fact,) = facts_of(event)
    assert fact.identity.user_id is None and fact.identity.customer == s.customer


def test_metadata_keys_are_configurable() -> None:
    s = Story(user_id=None)
    event = s.checkout("cs_cfg", 100)
    event["data"]["object"]["metadata"] = {"app_uid": "custom-7"}
    settings = from_environ({"USER_ID_METADATA_KEYS": "app_uid"})
    assert facts_of(event, settings)[0].identity.user_id == "custom-7"


@pytest.mark.parametrize("api_version", ["2020-08-27", BASIL])
@pytest.mark.parametrize(
    ("reason", "purchase_type", "renewed"),
    [
        ("subscription_create", c.SUBSCRIPTION_INITIAL, False),
        ("subscription_cycle", c.SUBSCRIPTION_RENEWAL, True),
        ("subscription_update", c.SUBSCRIPTION_UPDATE, False),
    ],
)
def test_paid_subscription_invoice_in_old_and_basil_shapes(
    api_version: str, reason: str, purchase_type: str, renewed: bool
) -> None:
    s = Story(api_version=api_version)
    sub = s.subscription("sub_x")
    invoice = s.invoice("in_x", 1000, subscription=sub, billing_reason=reason, payment_intent="pi_x", charge="ch_x")
    facts = facts_of(s.invoice_event("invoice.paid", invoice))
    purchase = facts[0]
    assert purchase.key == "stripe:payment:in_x"
    assert purchase.properties[c.PURCHASE_TYPE] == purchase_type
    assert purchase.properties[c.SUBSCRIPTION_ID] == "sub_x"
    assert purchase.properties[c.PLAN] == "Basic" and purchase.properties[c.INTERVAL] == "month"
    assert purchase.identity.user_id == "user-42"  # from the subscription's metadata, where each shape keeps it
    assert purchase.time == invoice["status_transitions"]["paid_at"]
    assert purchase.links == (payment_ref("stripe", "pi_x"),), "its refunds name the PaymentIntent: one link, one write"
    assert [f.event for f in facts[1:]] == ([c.SUBSCRIPTION_RENEWED] if renewed else [])


def test_an_invoice_paid_without_a_payment_intent_links_its_charge() -> None:
    s = Story(api_version="2020-08-27")
    invoice = s.invoice("in_legacy", 1000, subscription=s.subscription("sub_l"), payment_intent=None, charge="ch_l")
    assert facts_of(s.invoice_event("invoice.paid", invoice))[0].links == (payment_ref("stripe", "ch_l"),)


def test_invoice_paid_and_payment_succeeded_give_the_same_fact() -> None:
    s = Story()
    invoice = s.invoice("in_same", 1000, subscription=s.subscription("sub_s"))
    paid = facts_of(s.invoice_event("invoice.paid", invoice))
    succeeded = facts_of(s.invoice_event("invoice.payment_succeeded", invoice))
    settings = from_environ({})
    assert [mixpanel_event(f, settings) for f in paid] == [mixpanel_event(f, settings) for f in succeeded]


def test_zero_amount_invoice_is_no_purchase() -> None:
    s = Story()
    assert facts_of(s.invoice_event("invoice.paid", s.invoice("in_0", 0, subscription=s.subscription("sub_0")))) == []


@pytest.mark.parametrize(
    ("currency", "minor", "revenue"), [("jpy", 1200, 1200), ("kwd", 5120, 5.12), ("usd", 1999, 19.99)]
)
def test_revenue_uses_the_currency_exponent(currency: str, minor: int, revenue: float) -> None:
    (fact,) = facts_of(Story().checkout("cs_cur", minor, currency))
    event = mixpanel_event(fact, from_environ({}))
    assert event["properties"]["Revenue"] == revenue
    assert event["properties"]["Currency"] == currency.upper()


def test_refund_created_is_that_refunds_amount_and_takes_its_payments_user() -> None:
    s = Story()
    refund = s.refund("re_1", 500, "usd", charge="ch_1", payment_intent="pi_1")
    (fact,) = facts_of(s.refund_created(refund))
    assert fact.key == "stripe:refund:re_1"
    assert fact.money is not None and fact.money.minor == 500
    assert fact.identity_from == (payment_ref("stripe", "pi_1"), payment_ref("stripe", "ch_1"))
    assert fact.time == refund["created"]


def test_charge_refunded_yields_each_refund_with_its_own_amount_not_the_cumulative_one() -> None:
    s = Story()
    first = s.refund("re_a", 1000, "usd", charge="ch_1", payment_intent="pi_1")
    second = s.refund("re_b", 500, "usd", charge="ch_1", payment_intent="pi_1")
    facts = facts_of(s.charge_refunded("ch_1", "pi_1", 4999, "usd", [first, second]))
    assert {f.key: f.money.minor for f in facts if f.money} == {"stripe:refund:re_a": 1000, "stripe:refund:re_b": 500}
    via_refund_created = facts_of(s.refund_created(second))[0]
    # Same fact from either event; the user comes from the payment's link in the ledger (integration tests).
    same = ("key", "event", "time", "money", "order_id", "properties", "profile", "identity_from")
    assert [getattr(via_refund_created, a) for a in same] == [getattr(facts[1], a) for a in same]


def test_real_charge_refunded_fixture_maps_its_refund_list() -> None:
    payload = json.loads(fixture("charge.refunded"))
    refunds = payload["data"]["object"]["refunds"]["data"]
    facts = facts_of(payload)
    assert [f.key for f in facts] == [
        f"stripe:refund:{r['id']}" for r in refunds if r.get("status") not in ("failed", "canceled")
    ]


def test_subscription_started_only_when_active_or_trialing() -> None:
    s = Story()
    assert facts_of(s.subscription_created(s.subscription("sub_i", status="incomplete"))) == []
    (started,) = facts_of(s.subscription_created(s.subscription("sub_a", status="active")))
    assert started.event == c.SUBSCRIPTION_STARTED and started.key == "stripe:subscription-start:sub_a"
    (trial,) = facts_of(
        s.subscription_created({**s.subscription("sub_t", status="trialing"), "trial_end": 1_800_000_000})
    )
    assert trial.properties[c.STATUS] == "trialing" and c.TRIAL_END in trial.properties


def test_incomplete_to_active_update_starts_the_subscription() -> None:
    s = Story()
    sub = s.subscription("sub_u", status="active")
    (fact,) = facts_of(s.subscription_updated(sub, {"status": "incomplete"}))
    assert fact.key == "stripe:subscription-start:sub_u"


def test_plan_change_has_from_and_to() -> None:
    s = Story()
    basic = s.subscription("sub_p")
    pro = s.subscription("sub_p", price="price_pro", plan_name="Pro", quantity=3)
    (fact,) = facts_of(s.subscription_updated(pro, {"items": basic["items"], "plan": basic["plan"], "quantity": 1}))
    assert fact.event == c.SUBSCRIPTION_CHANGED
    assert (fact.properties[c.FROM_PLAN], fact.properties[c.TO_PLAN]) == ("Basic", "Pro")
    assert (fact.properties[c.FROM_QUANTITY], fact.properties[c.TO_QUANTITY]) == (1, 3)


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ({"cancel_at_period_end": False}, {"cancel_at_period_end": True}, c.SUBSCRIPTION_CANCELLATION_SCHEDULED),
        ({"cancel_at_period_end": True}, {"cancel_at_period_end": False}, c.SUBSCRIPTION_REACTIVATED),
        ({"cancel_at": None}, {"cancel_at": 1_800_000_000}, c.SUBSCRIPTION_CANCELLATION_SCHEDULED),
        ({"cancel_at": 1_800_000_000}, {"cancel_at": None}, c.SUBSCRIPTION_REACTIVATED),
    ],
)
def test_cancellation_flags_flip(previous: dict, current: dict, expected: str) -> None:
    s = Story()
    sub = {**s.subscription("sub_c"), **current}
    (fact,) = facts_of(s.subscription_updated(sub, previous))
    assert fact.event == expected


def test_unrelated_subscription_update_from_the_real_fixture_maps_to_nothing() -> None:
    assert facts_of(fixture("customer.subscription.updated")) == []


def test_real_deleted_and_trial_fixtures() -> None:
    (ended,) = facts_of(fixture("customer.subscription.deleted"))
    assert ended.event == c.SUBSCRIPTION_CANCELLED and ended.profile and ended.profile.status == "canceled"
    (trial,) = facts_of(fixture("customer.subscription.trial_will_end"))
    assert trial.event == c.TRIAL_ENDING


def test_each_failed_attempt_is_its_own_fact() -> None:
    s = Story()
    sub = s.subscription("sub_f")
    first = facts_of(s.invoice_event("invoice.payment_failed", s.invoice("in_f", 900, subscription=sub, status="open")))
    second = facts_of(
        s.invoice_event(
            "invoice.payment_failed", s.invoice("in_f", 900, subscription=sub, status="open", attempt_count=2)
        )
    )
    assert [f.key for f in first + second] == ["stripe:payment-failed:in_f:1", "stripe:payment-failed:in_f:2"]
    assert facts_of(fixture("invoice.payment_failed"))[0].event == c.PAYMENT_FAILED


def test_payment_intent_failure_of_an_invoice_is_left_to_the_invoice_event() -> None:
    payload = json.loads(fixture("payment_intent.payment_failed"))
    facts = facts_of(payload)
    assert (facts == []) == bool(payload["data"]["object"].get("invoice"))


def test_redelivery_gives_identical_events() -> None:
    body = fixture("checkout.session.completed.payment_mode")
    settings = from_environ({})
    first = [json.dumps(mixpanel_event(f, settings)) for f in facts_of(body)]
    again = [json.dumps(mixpanel_event(f, settings)) for f in facts_of(body)]
    assert first == again
