"""One answer to "does the ledger hold what this event means?" (service/recorded.py), asked by catch-up and the
backfill: after the forwarder recorded a payment's webhooks in any order, every one of them is held, whichever key
the ledger counted the payment under; before, none is; and each side of a payment alone makes the other held."""

from __future__ import annotations

import json

import pytest
from fakes import InMemoryLedger
from revenue_webhooks import providers
from revenue_webhooks.domain.facts import Deferred, Fact, Identity, PaymentOwner, payment_ref
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.service.recorded import Holdings, held, other_owner, recorded_under
from stripe_story import Story
from test_forwarder import SETTINGS, Rig
from test_payment_paths import CASES, OLD, deliver, orders


def mapped(bodies: list[bytes]) -> list[list[object]]:
    stripe = providers.get_provider("stripe", SETTINGS)
    assert stripe is not None
    found = []
    for n, raw in enumerate(bodies):
        event = json.loads(raw)
        found.append(list(stripe.map(QueuedEvent("stripe", f"evt_{n}", event["type"], 0, raw))))
    return found


@pytest.mark.parametrize("case", CASES)
def test_after_any_order_every_webhook_of_a_payment_is_held_and_before_none(case: str) -> None:
    events, _ = CASES[case]()
    meanings = mapped(events)
    assert held(InMemoryLedger(), meanings) == [not m for m in meanings], "only what means nothing misses nothing"
    for order in orders(events):
        rig = Rig()
        deliver(rig, order, batch=1)
        assert held(rig.ledger, mapped(events)) == [True] * len(events), order


def test_either_side_of_a_checkout_payment_alone_makes_the_other_held() -> None:
    s = Story(customer="cus_k", user_id="user-k", api_version=OLD)
    checkout = json.dumps(s.checkout("cs_k", 4900, "usd", payment_intent="pi_k")).encode()
    intent = json.dumps(s.payment_intent_succeeded("pi_k", 4900, "usd", metadata={}, customer=None)).encode()
    for first, other in ((checkout, intent), (intent, checkout)):
        rig = Rig()
        deliver(rig, [first], batch=1)  # a PaymentIntent alone counts as its own after its wait
        assert held(rig.ledger, mapped([other])) == [True], "recorded under the other key: nothing to enqueue"


def test_the_rule_itself() -> None:
    ref = payment_ref("stripe", "pi_1")
    own = Fact("stripe:purchase:pi_1", "Purchase Completed", 1, Identity(customer="cus_1"), yields_to=(ref,))
    checkout = Fact("stripe:purchase:cs_1", "Purchase Completed", 1, Identity(), same_as=(own.key,))
    assert recorded_under(checkout, {own.key}) == own.key and recorded_under(checkout, set()) is None
    assert other_owner(own, {ref: checkout.key}) == checkout.key
    assert other_owner(own, {ref: own.key}) is None, "its own link: recorded as itself"
    assert other_owner(own, {ref: ""}) == "", "a link older than owners was a purchase's"
    holdings = Holdings(frozenset(), {ref: checkout.key})
    assert holdings.holds([own]) and not holdings.holds([checkout])
    assert not holdings.holds([Deferred("waits")]) and holdings.holds([])
    assert not holdings.holds([PaymentOwner(payment_ref("stripe", "pi_2"), "stripe:purchase:in_2")])
