"""Payment paths and unseen payments on the real ledger (DynamoDB on moto) and the local Stripe API.

- The two sides of one payment (a Checkout Session's purchase and its PaymentIntent's own) recorded at once
  by concurrent forwarders count once: the ledger's conditions decide, not the reads before them.
- A customer's whole history with every `payment_intent.succeeded` Stripe sends, duplicated and shuffled, gives
  Mixpanel what the in-order delivery gives.
- `StripePayments` (the forwarder's lookup) answers the purchase a payment counts under from the stand-in,
  through 429s; refunds of payments made before deployment land on their buyers with a key, and on the
  payment's anonymous id without one, never in the dead-letter queue.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from harness import Pipeline
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain.facts import Fact
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.providers.stripe import StripeProvider
from revenue_webhooks.service.ports import LookupUnavailable
from stripe_story import BASIL, full_history

from devstack.stripe_api import Fault, StripeAccount, StripeApiServer

DAY = 86400
NOW = int(time.time())


def facts_of(event: dict[str, Any]) -> list[Fact]:
    provider = StripeProvider(from_environ({}))
    queued = QueuedEvent("stripe", event["id"], event["type"], 0, json.dumps(event).encode())
    return [f for f in provider.map(queued) if isinstance(f, Fact)]


def test_concurrent_forwarders_recording_both_sides_of_a_payment_count_it_once(shared: Pipeline) -> None:
    from revenue_webhooks import bootstrap
    from revenue_webhooks.mixpanel.rendering import mixpanel_event

    shared.reset()
    shared.activate()
    config = from_environ({})
    ledger = bootstrap.forwarder().ledger
    rounds = []
    for n in range(12):
        history = full_history(BASIL, customer=f"cus_both{n}", user_id=f"user-both{n}", payment_intents=True)
        checkout = next(e for e in history if e["type"] == "checkout.session.completed")
        intent = next(e for e in history if e["type"] == "payment_intent.succeeded")
        rounds.append([facts_of(checkout)[0], facts_of(intent)[0]])
    outcomes: dict[str, list[Any]] = {}
    lock = threading.Lock()

    def record(fact: Fact, batch: bool) -> None:
        event = mixpanel_event(fact, config)
        result = ledger.record_all([(fact, event)])[0] if batch else ledger.record(fact, event)
        with lock:
            outcomes.setdefault(fact.key.rsplit("_", 1)[0], []).append(result)

    threads = [
        threading.Thread(target=record, args=(fact, batch))
        for pair in rounds
        for fact in pair
        for batch in (True, False)
    ]
    random.Random(3).shuffle(threads)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, (checkout, intent) in enumerate(rounds):
        results = [r for key in (checkout.key, intent.key) for r in outcomes[key.rsplit("_", 1)[0]]]
        assert not [r for r in results if isinstance(r, Exception)]
        assert sum(1 for r in results if r[1]) == 1, f"round {n}: one of the four writes counts the payment"
        assert shared.customer_totals(f"stripe:cus_both{n}")["purchases"] == 1


@pytest.fixture(scope="module")
def patient() -> Iterator[Pipeline]:
    """A pipeline whose held messages come back after the whole queue was drained once (4 s), in batches of 5."""
    running = Pipeline(visibility_timeout_s=4, extra_env={"REFUND_WAIT_DELIVERIES": "5"})
    running.esm.batch_size = 5
    try:
        yield running
    finally:
        running.close()


@pytest.mark.parametrize("api_version", ["2020-08-27", BASIL])
def test_a_history_with_every_payment_intent_shuffled_gives_the_in_order_result(
    patient: Pipeline, api_version: str
) -> None:
    """Every webhook in the queue at once, shuffled and some twice, read five at a time: each payment's other
    webhooks are read before a held one comes back, as Stripe's arrive within seconds of each other."""
    history = full_history(api_version, customer="cus_pi", user_id="user-pi", payment_intents=True)

    def deliver(events: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
        patient.reset()
        for event in events:
            assert patient.post_stripe(json.dumps(event).encode())["statusCode"] == 200
        assert patient.drain(120)
        assert patient.dead_letters() == []
        return sorted(json.dumps(e, sort_keys=True) for e in patient.mixpanel.events()), patient.mixpanel.profiles()

    expected = deliver(history)
    purchases = Counter(json.loads(e)["event"] for e in expected[0])["Purchase Completed"]
    assert purchases == 7, "six payments of the history and the direct one: no PaymentIntent counted twice"
    rng = random.Random(api_version)
    shuffled = [event for event in history for _ in range(rng.randint(1, 2))]
    rng.shuffle(shuffled)
    assert deliver(shuffled) == expected


# ---- the lookup against the local Stripe API --------------------------------------------------------------------


@pytest.fixture(scope="module")
def account() -> StripeAccount:
    story = StripeAccount(seed=21)
    start = NOW - 20 * DAY
    ada = story.customer(at=start, email="ada@example.com", metadata={"user_id": "user-ada"}).object_id
    story.subscribe(ada, story.price(1500, "usd", nickname="Basic"), at=start + 60, checkout=False)
    story.pay_checkout(4900, "eur", at=start + DAY, customer=ada, client_reference_id="user-ada")
    story.pay_checkout(1200, "jpy", at=start + 2 * DAY, email="guest@example.com")
    story.pay_direct(5120, "kwd", at=start + 3 * DAY, customer=ada, metadata={"user_id": "user-ada"})
    for event in story.events(types=("payment_intent.succeeded",)):
        story.refund(event.object_id, at=start + 10 * DAY)
    return story


def lookup(api: StripeApiServer) -> Any:
    from revenue_webhooks.adapters.stripe_payments import StripePayments

    return StripePayments(lambda: api.secret_key, api.url, StripeProvider(from_environ({})), rate_limit_wait_s=5)


def test_the_lookup_answers_the_purchase_each_payment_counts_under(
    account: StripeAccount, api: StripeApiServer
) -> None:
    payments = lookup(api)
    owners = {}
    for event in account.events(types=("checkout.session.completed", "invoice.paid", "payment_intent.succeeded")):
        for fact in facts_of(event.payload()):
            if fact.event == "Purchase Completed":
                owners[fact.key] = fact
    intents = [e.object for e in account.events(types=("payment_intent.succeeded",))]
    assert len(intents) == 4  # the subscription's invoice, two Checkouts, one direct
    answers = {intent["id"]: payments.purchase(intent["id"]) for intent in intents}
    kinds = Counter(answer.key.split(":")[2][:3] for answer in answers.values())
    assert kinds == Counter({"in_": 1, "cs_": 2, "pi_": 1})
    for answer in answers.values():
        assert answer.key in owners and answer.identity == owners[answer.key].identity
    charge = intents[-1]["latest_charge"]
    assert payments.purchase(charge) == answers[intents[-1]["id"]], "a charge counts under its PaymentIntent's"
    with pytest.raises(LookupUnavailable):  # not this key's payment: no answer, not "no purchase"
        payments.purchase("pi_unknown")


def test_the_lookup_backs_off_on_429s_and_says_when_stripe_cannot_answer(
    account: StripeAccount, api: StripeApiServer
) -> None:
    payments = lookup(api)
    intent = account.events(types=("payment_intent.succeeded",))[0].object_id
    api.faults.push(Fault.rate_limited(), Fault.rate_limited(), Fault.rate_limited())
    assert payments.purchase(intent) is not None
    assert api.faults.served == {"rate_limit": 3}
    for _ in range(10):
        api.faults.push(Fault.server_error(503))
    with pytest.raises(LookupUnavailable):
        payments.purchase(intent)


@pytest.mark.parametrize("with_key", [True, False])
def test_refunds_of_payments_made_before_deployment_land_and_none_is_dead_lettered(
    account: StripeAccount, api: StripeApiServer, with_key: bool
) -> None:
    refunds = [e for e in account.events(types=("refund.created", "charge.refunded"))]
    from revenue_webhooks.domain.identity import distinct_id

    buyers = {}  # PaymentIntent -> the distinct_id its purchase had (its Checkout's before its own)
    purchases = [
        fact
        for event in account.events(types=("checkout.session.completed", "invoice.paid", "payment_intent.succeeded"))
        for fact in facts_of(event.payload())
        if fact.event == "Purchase Completed"
    ]
    for fact in sorted(purchases, key=lambda f: bool(f.yields_to)):
        for ref in fact.links:
            buyers.setdefault(ref.rsplit(":", 1)[-1], distinct_id(fact, from_environ({})))
    pipeline = Pipeline(visibility_timeout_s=1, extra_env=api.environment() if with_key else {"STRIPE_API_KEY": ""})
    try:
        for event in refunds:
            assert pipeline.post_stripe(event.body())["statusCode"] == 200
        assert pipeline.drain(60)
        assert pipeline.dead_letters() == []
        issued = [e for e in pipeline.mixpanel.events() if e["event"] == "Refund Issued"]
        assert len(issued) == 4
        by_intent = {e["properties"]["Order ID"]: e["properties"]["distinct_id"] for e in issued}
        if with_key:
            assert by_intent == {intent: buyers[intent] for intent in by_intent}, "each on its payment's buyer"
        else:
            guest = next(i for i, who in buyers.items() if who.startswith("$device:stripe-pi_"))
            assert by_intent[guest] == buyers[guest], "a guest's refund on the guest's anonymous id"
    finally:
        pipeline.close()
