"""Refunds of payments the ledger never saw land: never dead-lettered, on the buyer when anything can tell who.

A refund takes its buyer from its payment's link in the ledger. When the payment was made before the
deployment (or by a guest), that link never comes: the forwarder then asks Stripe's API when a key is
configured, else waits (briefly when the refund names its customer) and counts the refund on its own payload
with the anonymous id the payment itself had. Real payloads: the stripe-ruby-mock charge.refunded (a guest
charge), Paddle's SDK adjustment, Shopify's REST refund, Lemon Squeezy's order_refunded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import ScriptedPayments
from revenue_webhooks import providers
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain.facts import Fact
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.providers.base import WebhookRequest
from revenue_webhooks.service.envelope import to_sqs
from stripe_story import BASIL, Story
from test_forwarder import SETTINGS, Rig, record
from test_payment_paths import LookupRig, body, checkout_fact

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MAX = SETTINGS.max_receive_count


def queued_record(route: str, payload: bytes, *, attempts: int = 1, topic: str = "") -> dict[str, Any]:
    """A queued webhook of any provider, identified by its own `parse` as the receiver does."""
    settings = from_environ({"MODE": "any"})
    provider = providers.get_provider(route, settings)
    assert provider is not None
    headers = providers.sign(route, payload, "secret", **({"topic": topic} if topic else {}))
    parsed = provider.parse(
        WebhookRequest(payload, {k.lower(): v for k, v in headers.items()}, 1_700_000_000_000, route)
    )
    message = to_sqs(QueuedEvent(route, parsed.event_id, parsed.event_type, 1_700_000_000_000, payload))
    return {
        "messageId": f"{route}-{parsed.event_id}-{attempts}",
        "body": message["MessageBody"],
        "attributes": {"ApproximateReceiveCount": str(attempts)},
        "messageAttributes": {
            name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
            for name, value in message["MessageAttributes"].items()
        },
    }


def until_delivered(rig: Rig, make: Any) -> int:
    """Redeliver as SQS would until the forwarder lets the message go; returns the delivery that did."""
    for attempt in range(1, MAX + 1):
        if rig.run(make(attempt)) == []:
            return attempt
    raise AssertionError("still held after the last delivery")


def refunds(rig: Rig) -> list[dict[str, Any]]:
    return [e for e in rig.sink.delivered().values() if e["event"] == "Refund Issued"]


# ---- the cases from real payloads --------------------------------------------------------------------------


def paddle_refund() -> bytes:
    data = json.loads((FIXTURES / "paddle" / "data_adjustment.created.json").read_text())
    return json.dumps(
        {
            "event_id": "evt_01hvgf2sbc0c0fm8wrfa7kg6s1",
            "event_type": "adjustment.created",
            "occurred_at": "2024-04-15T08:48:20.239695Z",
            "notification_id": "ntf_01hvgf2sdqjjpnne9h8a3z2w3m",
            "data": {**data, "status": "approved"},
        }
    ).encode()


UNSEEN = {  # route, payload, topic, the refund's amount in minor units
    "stripe charge.refunded (guest, stripe-ruby-mock)": (
        "stripe",
        (FIXTURES / "stripe" / "charge.refunded.json").read_bytes(),
        "",
        100,
    ),
    "paddle adjustment (names its customer)": ("paddle", paddle_refund(), "", 100),
    "shopify refunds/create (REST fixture)": (
        "shopify",
        json.dumps(json.loads((FIXTURES / "shopify" / "rest_fixture_refund.json").read_bytes())["refund"]).encode(),
        "refunds/create",
        None,
    ),
    "lemonsqueezy order_refunded": (
        "lemonsqueezy",
        (FIXTURES / "lemonsqueezy" / "order_refunded.json").read_bytes(),
        "",
        1199,
    ),
}


@pytest.mark.parametrize("case", UNSEEN)
def test_no_refund_of_an_unseen_payment_is_dead_lettered(case: str) -> None:
    route, payload, topic, amount = UNSEEN[case]
    rig = Rig()
    delivery = until_delivered(rig, lambda attempt: queued_record(route, payload, attempts=attempt, topic=topic))
    (refund,) = refunds(rig)
    assert rig.dead_letters.sent == []
    assert delivery < MAX or route in ("stripe", "shopify"), "a refund naming its buyer does not wait five deliveries"
    if amount is not None:
        assert round(refund["properties"]["Revenue"] * 100) == amount


def test_a_paddle_refund_naming_its_customer_waits_two_redeliveries_not_five() -> None:
    rig = Rig()
    delivery = until_delivered(rig, lambda attempt: queued_record("paddle", paddle_refund(), attempts=attempt))
    assert delivery == 3
    (refund,) = refunds(rig)
    assert refund["properties"]["distinct_id"] == "$device:ctm_01hv6y1jedq4p1n0yqn5ba3ky4"
    assert rig.ledger.totals["paddle:ctm_01hv6y1jedq4p1n0yqn5ba3ky4"]["refunds"] == 1


def test_a_guest_checkouts_refund_lands_on_the_guests_anonymous_id_without_the_payment() -> None:
    """The guest paid through Checkout (no customer, no app id): the refund alone renders the payment's distinct_id."""
    s = Story(customer="", user_id=None, api_version=BASIL)
    payment = s.checkout("cs_guest", 4900, "usd", payment_intent="pi_guest")
    payment["data"]["object"]["customer"] = None
    refund = s.refund_created(s.refund("re_guest", 4900, "usd", charge="ch_guest", payment_intent="pi_guest"))
    with_payment = Rig()
    with_payment.run(record(body(payment)))
    with_payment.run(record(body(refund)))
    alone = Rig()
    assert until_delivered(alone, lambda attempt: record(body(refund), attempts=attempt)) == MAX
    guest = "$device:stripe-pi_guest"
    assert [e["properties"]["distinct_id"] for e in refunds(with_payment)] == [guest]
    assert [e["properties"]["distinct_id"] for e in refunds(alone)] == [guest]
    (purchase,) = [e for e in with_payment.sink.delivered().values() if e["event"] == "Purchase Completed"]
    assert purchase["properties"]["distinct_id"] == guest
    assert refunds(alone)[0]["properties"]["$insert_id"] == refunds(with_payment)[0]["properties"]["$insert_id"]


def test_with_a_key_the_api_names_the_buyer_at_once() -> None:
    s = Story(customer="cus_old", user_id="user-old", api_version=BASIL)
    old_payment = s.checkout("cs_old", 4900, "usd", payment_intent="pi_old")
    refund = body(s.refund_created(s.refund("re_old", 1000, "usd", charge="ch_old", payment_intent="pi_old")))
    payments = ScriptedPayments(purchases={"pi_old": checkout_fact(body(old_payment))})
    rig = LookupRig(payments)
    assert rig.run(record(refund)) == [], "no wait: the API answers"
    (event,) = refunds(rig)
    assert event["properties"]["distinct_id"] == "user-old" and payments.asked == ["pi_old"]
    in_order = Rig()
    in_order.run(record(body(old_payment)))
    in_order.run(record(refund))
    assert refunds(in_order) == [event], "the same event as when the payment's webhook came first"


def test_with_a_key_a_payment_stripe_does_not_know_ends_the_wait() -> None:
    s = Story(customer="", user_id=None, api_version=BASIL)
    refund = body(s.refund_created(s.refund("re_x", 300, "usd", charge="ch_x", payment_intent="pi_x")))
    rig = LookupRig(ScriptedPayments())
    assert rig.run(record(refund)) == []
    assert [e["properties"]["distinct_id"] for e in refunds(rig)] == ["$device:stripe-pi_x"]


def test_with_a_key_that_stripe_refuses_now_the_refund_waits_then_lands() -> None:
    s = Story(customer="", user_id=None, api_version=BASIL)
    refund = body(s.refund_created(s.refund("re_y", 300, "usd", charge="ch_y", payment_intent="pi_y")))
    rig = LookupRig(ScriptedPayments(down=True))
    assert until_delivered(rig, lambda attempt: record(refund, attempts=attempt)) == MAX
    assert len(refunds(rig)) == 1 and rig.dead_letters.sent == []


def test_a_key_that_is_not_configured_is_not_asked() -> None:
    payments = ScriptedPayments(configured=False)
    rig = LookupRig(payments)
    s = Story(customer="", user_id=None, api_version=BASIL)
    refund = body(s.refund_created(s.refund("re_z", 300, "usd", charge="ch_z", payment_intent="pi_z")))
    assert until_delivered(rig, lambda attempt: record(refund, attempts=attempt)) == MAX
    assert payments.asked == []


def test_the_lookup_answer_is_the_purchase_fact_the_webhook_makes() -> None:
    """What `ScriptedPayments` answers stands for adapters/stripe_payments.py: the mapped purchase (checked there)."""
    fact = checkout_fact(body(Story(customer="cus_q", user_id="user-q").checkout("cs_q", 100, payment_intent="pi_q")))
    assert isinstance(fact, Fact) and fact.key == "stripe:payment:cs_q" and fact.identity.user_id == "user-q"
