"""Exactly once across events, retries and reordering: the ledger and exact profile totals.

A customer's full Stripe history, delivered duplicated and shuffled, must leave Mixpanel
(after its deduplication rule) and the profile totals exactly as one in-order delivery
does, and those totals must equal the sums computed from the payloads themselves.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from harness import Pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from revenue_webhooks.domain.money import Money
from stripe_story import BASIL, full_history

EXPECTED_EVENTS = Counter(
    {
        "Purchase Completed": 6,
        "Refund Issued": 2,
        "Subscription Started": 1,
        "Subscription Renewed": 1,
        "Subscription Changed": 1,
        "Payment Failed": 1,
        "Subscription Cancellation Scheduled": 2,
        "Subscription Reactivated": 1,
        "Subscription Cancelled": 1,
    }
)


@pytest.fixture(scope="module")
def shared() -> Iterator[Pipeline]:
    running = Pipeline(visibility_timeout_s=1)
    try:
        yield running
    finally:
        running.close()


def deliver(pipeline: Pipeline, events: list[dict[str, Any]], *, per_batch: int | None = None) -> None:
    """Post each webhook (freshly signed), letting the forwarder run every `per_batch` webhooks."""
    pipeline.deliver_stripe(events, per_batch=per_batch)


def outcome(pipeline: Pipeline) -> tuple[list[str], dict[str, Any]]:
    events = sorted(json.dumps(e, sort_keys=True) for e in pipeline.mixpanel.events())
    return events, pipeline.mixpanel.profiles()


def sums_from_payloads(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Ground truth straight from Stripe's objects, independent of the mapping code."""
    revenue: dict[str, Decimal] = {}
    purchases = refunds = 0
    seen: set[str] = set()
    for event in events:
        obj, kind = event["data"]["object"], event["type"]
        if kind == "checkout.session.completed" and obj["mode"] == "payment" and obj["payment_status"] == "paid":
            key, amount, currency = obj["id"], obj["amount_total"], obj["currency"]
        elif kind in ("invoice.paid", "invoice.payment_succeeded") and obj["amount_paid"] > 0:
            key, amount, currency = obj["id"], obj["amount_paid"], obj["currency"]
        elif kind == "refund.created":
            key, amount, currency = obj["id"], -obj["amount"], obj["currency"]
        else:
            continue
        if key in seen:
            continue
        seen.add(key)
        if amount > 0:
            purchases += 1
        else:
            refunds += 1
        code = currency.upper()
        revenue[code] = revenue.get(code, Decimal(0)) + Money(abs(amount), code).major * (1 if amount > 0 else -1)
    return {"purchases": purchases, "refunds": refunds, "revenue": revenue}


@pytest.mark.parametrize("api_version", ["2020-08-27", BASIL])
def test_in_order_history_gives_the_catalog_events_and_the_payload_totals(shared: Pipeline, api_version: str) -> None:
    shared.reset()
    history = full_history(api_version)
    deliver(shared, history)
    events = shared.mixpanel.events()
    assert Counter(e["event"] for e in events) == EXPECTED_EVENTS
    assert {e["properties"]["distinct_id"] for e in events} == {"user-42"}
    truth = sums_from_payloads(history)
    profile = shared.mixpanel.profiles()["user-42"]
    assert profile["Purchase Count"] == truth["purchases"] == 6
    assert profile["Refund Count"] == truth["refunds"] == 2
    for currency, total in truth["revenue"].items():
        assert Decimal(str(profile[f"Lifetime Revenue {currency}"])) == total
    assert profile["Lifetime Revenue USD"] == 69.99 and profile["Lifetime Revenue JPY"] == 1200
    assert profile["Lifetime Revenue KWD"] == 5.12
    assert profile["Subscription Status"] == "canceled" and profile["Plan"] == "Pro"
    assert shared.dead_letters() == []
    assert shared.mixpanel.spec_violations() == []


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), duplicates=st.integers(1, 3), per_batch=st.sampled_from([1, 3, 7, None]))
def test_any_interleaving_and_duplication_gives_the_in_order_result(
    shared: Pipeline, seed: int, duplicates: int, per_batch: int | None
) -> None:
    history = full_history()
    shared.reset()
    deliver(shared, history)
    expected = outcome(shared)

    rng = random.Random(seed)
    shuffled = [event for event in history for _ in range(rng.randint(1, duplicates))]
    rng.shuffle(shuffled)
    shared.reset()
    deliver(shared, shuffled, per_batch=per_batch)
    assert outcome(shared) == expected
    assert shared.customer_totals("stripe:cus_story1")["purchases"] == 6
    assert shared.dead_letters() == []


def test_refund_before_its_payment_waits_for_the_payment_and_lands_on_its_user(shared: Pipeline) -> None:
    shared.reset()
    history = full_history(customer="cus_late", user_id="user-late")
    purchase = history[0]
    refunds = [e for e in history if e["type"] == "refund.created"]
    for event in refunds:
        shared.post_stripe(json.dumps(event).encode())
    shared.esm.poll_once(0)  # the refunds are deferred: their payment is unknown yet
    assert shared.mixpanel.events() == []
    shared.post_stripe(json.dumps(purchase).encode())
    assert shared.drain(30)
    names = Counter(e["event"] for e in shared.mixpanel.events())
    assert names == Counter({"Purchase Completed": 1, "Refund Issued": 2})
    assert {e["properties"]["distinct_id"] for e in shared.mixpanel.events()} == {"user-late"}


def test_concurrent_forwarders_never_count_a_fact_twice(shared: Pipeline) -> None:
    """Two forwarders recording the same facts at once: conditional writes let one win."""
    import threading

    from revenue_webhooks import bootstrap
    from revenue_webhooks.config import settings as current_settings
    from revenue_webhooks.domain.webhook import QueuedEvent
    from revenue_webhooks.mixpanel.rendering import mixpanel_event
    from revenue_webhooks.providers.stripe import StripeProvider

    shared.reset()
    config = current_settings()
    ledger = bootstrap.forwarder().ledger
    history = [
        e for e in full_history(customer="cus_race", user_id="user-race") if e["type"] == "checkout.session.completed"
    ]
    facts = [
        fact
        for event in history
        for fact in StripeProvider(config).map(
            QueuedEvent("stripe", event["id"], event["type"], 0, json.dumps(event).encode())
        )
    ]
    results: list[bool] = []

    def record_all() -> None:
        for fact in facts:
            results.append(ledger.record(fact, mixpanel_event(fact, config))[1])

    threads = [threading.Thread(target=record_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == len(facts)
    assert shared.customer_totals("stripe:cus_race")["purchases"] == len(facts)


def test_email_reaches_profiles_only_when_turned_on() -> None:
    for send_email, expected in (("false", None), ("true", "buyer@example.com")):
        running = Pipeline(extra_env={"SEND_EMAIL": send_email})
        try:
            event = full_history(customer="cus_mail", user_id="user-mail")[0]
            event["data"]["object"]["customer_details"] = {"email": "buyer@example.com"}
            running.post_stripe(json.dumps(event).encode())
            assert running.drain()
            assert running.mixpanel.profiles()["user-mail"].get("$email") == expected
            assert ("buyer@example.com" in json.dumps(running.customer_totals("stripe:cus_mail"))) is (
                expected is not None
            )
            assert "buyer@example.com" not in json.dumps(running.mixpanel.events())
        finally:
            running.close()


def test_refund_in_the_same_batch_as_its_payment_needs_no_retry(shared: Pipeline) -> None:
    shared.reset()
    history = full_history(customer="cus_batch", user_id="user-batch")
    for event in [e for e in history if e["type"] == "refund.created"] + [history[0]]:
        shared.post_stripe(json.dumps(event).encode())
    shared.esm.poll_once(0)  # one batch holds the refunds and, after them, their payment
    assert shared.queue_depth() == 0
    assert Counter(e["event"] for e in shared.mixpanel.events()) == Counter(
        {"Purchase Completed": 1, "Refund Issued": 2}
    )
    assert {e["properties"]["distinct_id"] for e in shared.mixpanel.events()} == {"user-batch"}


def test_batched_ledger_writes_count_each_fact_once_when_forwarders_overlap(shared: Pipeline) -> None:
    """record_all packs many customers' facts into few transactions; a batch that overlaps facts another
    forwarder already wrote is cancelled by the conditions and falls back fact by fact.

    The overlap is interleaved deterministically here; the concurrent case is the test above.
    """
    from revenue_webhooks import bootstrap
    from revenue_webhooks.config import settings as current_settings
    from revenue_webhooks.domain.webhook import QueuedEvent
    from revenue_webhooks.mixpanel.rendering import mixpanel_event
    from revenue_webhooks.providers.stripe import StripeProvider

    shared.reset()
    shared.activate()
    config = current_settings()
    ledger = bootstrap.forwarder().ledger
    provider = StripeProvider(config)
    items = []
    for n in range(12):  # 12 customers with their full histories: several transactions per batch
        for event in full_history(customer=f"cus_bulk{n}", user_id=f"user-bulk{n}"):
            for fact in provider.map(QueuedEvent("stripe", event["id"], event["type"], 0, json.dumps(event).encode())):
                if not fact.identity_from:  # refunds take their user from the forwarder's link lookup, tested above
                    items.append((fact, mixpanel_event(fact, config)))
    items += items[:25]  # duplicates inside the batch
    rng = random.Random(7)
    first_forwarder = rng.sample(items, len(items) // 3)
    new_counts = []
    for batch in (first_forwarder, items, items):
        outcomes = ledger.record_all(batch)
        errors = {repr(o)[:300] for o in outcomes if isinstance(o, Exception)}
        assert not errors, errors
        new_counts.append(sum(1 for o in outcomes if o[1]))
    assert new_counts[2] == 0
    assert sum(new_counts) == len({fact.key for fact, _ in items})
    for n in range(12):
        totals = shared.customer_totals(f"stripe:cus_bulk{n}")
        assert (totals["purchases"], totals["revenue"]["USD"], totals["plan"]) == (6, 8499, "Pro")


def test_simultaneous_batches_count_each_fact_once(shared: Pipeline) -> None:
    """Three forwarders recording overlapping batches at the same moment."""
    import threading

    from revenue_webhooks import bootstrap
    from revenue_webhooks.config import settings as current_settings
    from revenue_webhooks.domain.webhook import QueuedEvent
    from revenue_webhooks.mixpanel.rendering import mixpanel_event
    from revenue_webhooks.providers.stripe import StripeProvider

    shared.reset()
    shared.activate()
    config = current_settings()
    ledger = bootstrap.forwarder().ledger
    provider = StripeProvider(config)
    items = [
        (fact, mixpanel_event(fact, config))
        for n in range(8)
        for event in full_history(customer=f"cus_sim{n}", user_id=f"user-sim{n}")
        for fact in provider.map(QueuedEvent("stripe", event["id"], event["type"], 0, json.dumps(event).encode()))
        if not fact.identity_from
    ]
    counts: list[int] = []

    def record(batch: list) -> None:
        outcomes = ledger.record_all(batch)
        assert not [o for o in outcomes if isinstance(o, Exception)]
        counts.append(sum(1 for o in outcomes if o[1]))

    batches = [items, items[::2], list(reversed(items))]
    threads = [threading.Thread(target=record, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(counts) == 3 and sum(counts) == len({fact.key for fact, _ in items})
    for n in range(8):
        assert shared.customer_totals(f"stripe:cus_sim{n}")["purchases"] == 6


def test_an_event_mixpanel_refused_is_rendered_afresh_when_replayed(shared: Pipeline) -> None:
    """After a fix, a redriven dead letter sends the fact's current rendering and counts nothing twice."""
    from devstack.mixpanel import Fault

    shared.reset()
    purchase = full_history(customer="cus_fix", user_id="user-fix")[0]
    body = json.dumps(purchase).encode()
    shared.mixpanel.faults.push(
        Fault.reject(predicate=lambda event: True, field="properties.Revenue", message="bad", path="/import")
    )
    shared.post_stripe(body)
    assert shared.drain()
    (letter,) = shared.dead_letters()
    assert letter["MessageAttributes"]["dead_letter_reason"]["StringValue"] == "mixpanel_rejected_event"
    fact = fact_item(shared, f"stripe:payment:{purchase['data']['object']['id']}")
    assert fact["rejected"] == {"BOOL": True}  # the stored event is no longer canonical

    shared.sqs.send_message(  # what `make redrive` does
        QueueUrl=shared.queue_url,
        MessageBody=letter["Body"],
        MessageAttributes={k: v for k, v in letter["MessageAttributes"].items() if not k.startswith("dead_letter")},
    )
    shared.sqs.delete_message(QueueUrl=shared.dlq_url, ReceiptHandle=letter["ReceiptHandle"])
    assert shared.drain()
    assert [e["event"] for e in shared.mixpanel.events()] == ["Purchase Completed"]
    assert "rejected" not in fact_item(shared, f"stripe:payment:{purchase['data']['object']['id']}")
    assert shared.customer_totals("stripe:cus_fix")["purchases"] == 1


def fact_item(pipeline: Pipeline, key: str) -> dict:
    return pipeline.dynamodb.get_item(
        TableName=pipeline.resources.refs["LedgerTable"], Key={"pk": {"S": f"fact#{key}"}}, ConsistentRead=True
    )["Item"]
