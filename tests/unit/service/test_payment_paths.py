"""Every Stripe payment path counted exactly once, whichever of its webhooks arrive, in any order, any number of times.

One payment is announced several ways: its Checkout Session or invoice, `payment_intent.succeeded` for the
PaymentIntent that paid it, `invoice.paid` and `invoice.payment_succeeded`, and in basil+ `invoice_payment.paid`.
Payloads say which PaymentIntent belongs to which object only in some API versions. Each case below is
delivered in every order (each webhook in its own batch, and all in one), with SQS's redeliveries of the
messages the forwarder holds, and must give one Purchase Completed with the payment's money.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from fakes import ScriptedPayments
from revenue_webhooks import providers
from revenue_webhooks.domain.facts import Fact
from revenue_webhooks.domain.webhook import QueuedEvent
from stripe_story import BASIL, Story
from test_forwarder import SETTINGS, Rig, record

OLD = "2020-08-27"


def body(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def LookupRig(payments: ScriptedPayments) -> Rig:
    """The forwarder with a payment lookup (a Stripe API key configured)."""
    return Rig(payments=payments)


def deliver(rig: Rig, bodies: list[bytes], *, batch: int) -> None:
    """Through the forwarder as SQS would: `batch` messages an invocation; a held message comes back later,
    one receive count higher, after the rest; nothing may be dead-lettered."""
    queue = [record(b, message_id=f"m{i}") for i, b in enumerate(bodies)]
    for _ in range(200):
        if not queue:
            return
        taken, queue = queue[:batch], queue[batch:]
        retried = set(rig.run(*taken))
        for r in taken:
            if r["messageId"] in retried:
                attempts = int(r["attributes"]["ApproximateReceiveCount"]) + 1
                queue.append(dict(r, attributes={"ApproximateReceiveCount": str(attempts)}))
    raise AssertionError("the queue never drained")


def purchases(rig: Rig) -> list[dict[str, Any]]:
    """Purchase Completed as Mixpanel keeps them (deduplicated)."""
    return [e for e in rig.sink.delivered().values() if e["event"] == "Purchase Completed"]


def orders(events: list[bytes]) -> list[list[bytes]]:
    return [list(order) for order in itertools.permutations(events)]


# ---- the cases -------------------------------------------------------------------------------------


def checkout_case(version: str) -> tuple[list[bytes], int]:
    s = Story(customer="cus_k", user_id="user-k", api_version=version)
    checkout = s.checkout("cs_k", 4900, "usd", payment_intent="pi_k")
    intent = s.payment_intent_succeeded("pi_k", 4900, "usd", metadata={}, customer=None)
    return [body(checkout), body(intent), body(checkout)], 4900


def old_invoice_case() -> tuple[list[bytes], int]:
    s = Story(customer="cus_i", user_id="user-i", api_version=OLD)
    subscription = s.subscription("sub_i")
    invoice = s.invoice("in_i", 1500, subscription=subscription, payment_intent="pi_i", charge="ch_i")
    intent = s.payment_intent_succeeded("pi_i", 1500, invoice="in_i")
    return [
        body(s.invoice_event("invoice.paid", invoice)),
        body(s.invoice_event("invoice.payment_succeeded", invoice)),
        body(intent),
    ], 1500


def basil_invoice_case(*, with_payments: bool) -> tuple[list[bytes], int]:
    """A basil invoice: its webhook does not name its PaymentIntent (the backfill's, with `payments` expanded, does);
    `invoice_payment.paid` says which PaymentIntent paid it."""
    s = Story(customer="cus_b", user_id="user-b", api_version=BASIL)
    subscription = s.subscription("sub_b")
    invoice = s.invoice("in_b", 2500, subscription=subscription, payment_intent="pi_b")
    if not with_payments:
        invoice.pop("payments")
    intent = s.payment_intent_succeeded("pi_b", 2500)
    relation = s.invoice_payment_paid("in_b", "pi_b", 2500)
    events = [body(s.invoice_event("invoice.paid", invoice)), body(intent)]
    return (events if with_payments else [*events, body(relation)]), 2500


CASES: dict[str, Callable[[], tuple[list[bytes], int]]] = {
    "checkout, old shape": lambda: checkout_case(OLD),
    "checkout, basil": lambda: checkout_case(BASIL),
    "invoice, old shape (each names the other)": old_invoice_case,
    "invoice, basil, payments expanded (backfill)": lambda: basil_invoice_case(with_payments=True),
    "invoice, basil, invoice_payment.paid": lambda: basil_invoice_case(with_payments=False),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("batch", [1, 10])
def test_every_order_of_a_payments_webhooks_is_one_purchase(case: str, batch: int) -> None:
    events, amount = CASES[case]()
    seen = set()
    for order in orders(events):
        rig = Rig()
        deliver(rig, order, batch=batch)
        (purchase,) = purchases(rig)
        assert purchase["properties"]["Revenue"] * 100 == amount
        assert rig.dead_letters.sent == []
        assert sum(t.get("purchases", 0) for t in rig.ledger.totals.values()) == 1
        seen.add(json.dumps(purchase, sort_keys=True))
    assert len(seen) == 1, "the same event whatever the order: the owner's, not the PaymentIntent's"


@pytest.mark.parametrize("version", [OLD, BASIL])
def test_a_direct_payment_intent_is_one_purchase_after_one_wait_for_an_owner(version: str) -> None:
    s = Story(customer="cus_d", user_id="user-d", api_version=version)
    intent = body(s.payment_intent_succeeded("pi_d", 2500, "eur"))
    rig = Rig()
    assert rig.run(record(intent)) == [record(intent)["messageId"]], "waits one delivery for a Checkout or invoice"
    assert rig.run(record(intent, attempts=2)) == []
    (purchase,) = purchases(rig)
    p = purchase["properties"]
    assert (p["Order ID"], p["Revenue"], p["Currency"], p["Purchase Type"], p["distinct_id"]) == (
        "pi_d",
        25,
        "EUR",
        "one_time",
        "user-d",
    )
    rig.run(record(intent, attempts=1, message_id="again"))
    assert len(purchases(rig)) == 1 and rig.ledger.totals["stripe:cus_d"]["purchases"] == 1


def test_a_checkout_after_its_payment_intent_was_counted_is_the_same_purchase() -> None:
    """Beyond the wait (the Checkout webhook was lost and comes back by catch-up): still one purchase."""
    events, _ = checkout_case(BASIL)
    checkout, intent = events[0], events[1]
    rig = Rig()
    deliver(rig, [intent], batch=1)
    counted = purchases(rig)
    assert [e["properties"]["Order ID"] for e in counted] == ["pi_k"]
    deliver(rig, [checkout], batch=1)
    assert purchases(rig) == counted, "the Checkout's webhook re-sends the counted event"
    assert rig.ledger.writes == 1, "one fact recorded: the Checkout is the same purchase"


def test_with_a_key_the_api_tells_a_checkouts_payment_intent_from_a_direct_one() -> None:
    events, _ = checkout_case(BASIL)
    checkout, intent = events[0], events[1]
    owner = checkout_fact(checkout)
    payments = ScriptedPayments(purchases={"pi_k": owner})
    rig = LookupRig(payments)
    assert rig.run(record(intent)) == [], "asks at once: no wait with a key"
    assert purchases(rig) == [] and payments.asked == ["pi_k"]
    assert rig.ledger.owner_table["stripe:payment-ref:pi_k"] == "stripe:payment:cs_k"
    assert rig.run(record(intent, attempts=1, message_id="redelivered")) == []
    assert payments.asked == ["pi_k"], "the recorded owner answers the next time"
    deliver(rig, [checkout], batch=1)
    assert [e["properties"]["Order ID"] for e in purchases(rig)] == ["cs_k"]


def test_with_a_key_a_basil_invoices_payment_intent_yields_even_without_invoice_payment_paid() -> None:
    events, _ = basil_invoice_case(with_payments=False)
    invoice, intent = events[0], events[1]
    payments = ScriptedPayments(purchases={"pi_b": checkout_fact(invoice)})
    rig = LookupRig(payments)
    deliver(rig, [intent, invoice], batch=1)
    assert [e["properties"]["Order ID"] for e in purchases(rig)] == ["in_b"]


def test_an_unavailable_api_holds_the_payment_intent_then_counts_it_on_its_last_delivery() -> None:
    s = Story(customer="cus_u", api_version=BASIL)
    intent = body(s.payment_intent_succeeded("pi_u", 900))
    payments = ScriptedPayments(down=True)
    rig = LookupRig(payments)
    for attempt in range(1, SETTINGS.max_receive_count):
        assert rig.run(record(intent, attempts=attempt)) != [], f"held on delivery {attempt}"
    assert rig.run(record(intent, attempts=SETTINGS.max_receive_count)) == []
    assert len(purchases(rig)) == 1 and rig.dead_letters.sent == []


def test_a_payment_intent_of_an_old_invoice_maps_to_nothing() -> None:
    s = Story(api_version=OLD)
    intent = s.payment_intent_succeeded("pi_x", 1000, invoice="in_x")
    provider = providers.get_provider("stripe", SETTINGS)
    assert provider is not None
    assert provider.map(QueuedEvent("stripe", intent["id"], intent["type"], 0, body(intent))) == []


def checkout_fact(webhook: bytes) -> Fact:
    """The purchase a webhook maps to (what the API lookup answers for its PaymentIntent)."""
    event = json.loads(webhook)
    provider = providers.get_provider("stripe", SETTINGS)
    assert provider is not None
    (fact,) = [
        f
        for f in provider.map(QueuedEvent("stripe", event["id"], event["type"], 0, webhook))
        if isinstance(f, Fact) and f.event == "Purchase Completed"
    ]
    return fact


def test_with_a_key_a_direct_payment_intent_counts_at_its_first_delivery() -> None:
    s = Story(customer="cus_f", user_id="user-f", api_version=BASIL)
    intent = s.payment_intent_succeeded("pi_f", 700, "eur")
    own = checkout_fact(body(intent))
    payments = ScriptedPayments(purchases={"pi_f": own})
    rig = LookupRig(payments)
    assert rig.run(record(body(intent))) == []
    assert [e["properties"]["Order ID"] for e in purchases(rig)] == ["pi_f"] and payments.asked == ["pi_f"]
