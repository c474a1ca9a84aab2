"""Stripe's objects as the webhooks Stripe sent for them, the money they hold, and the reader's pure parts."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from revenue_webhooks.adapters.stripe_reader import RateLimiter, Slice, default_rate, key_mode, slices
from revenue_webhooks.config import Settings
from revenue_webhooks.domain.facts import Fact
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.providers import get_provider
from revenue_webhooks.providers._stripe_objects import (
    KINDS,
    checkout_session_events,
    invoice_events,
    kind_of_id,
    money_in,
    payment_intent_events,
    refund_events,
    subscription_events,
)

from devstack.stripe_api import StripeAccount

DAY = 86400
T0 = 1_760_000_000


@pytest.fixture(scope="module")
def account() -> StripeAccount:
    """A customer paying through Checkout, directly and by subscription; a guest; a refund; a cancellation."""
    story = StripeAccount(seed=5)
    ada = story.customer(at=T0, email="ada@example.com", metadata={"user_id": "user-ada"}).object_id
    story.pay_checkout(4900, "usd", at=T0 + DAY, customer=ada)
    story.pay_checkout(5120, "kwd", at=T0 + 2 * DAY, email="guest@example.com")
    story.pay_direct(3000, "jpy", at=T0 + 3 * DAY, customer=ada)
    sub = story.subscribe(ada, story.price(1500, "eur", nickname="Basic"), at=T0 + 4 * DAY).object_id
    story.renew(sub, at=T0 + 34 * DAY)
    story.refund(story.store.objects("payment_intent")[-1]["id"], 1000, at=T0 + 40 * DAY)
    story.cancel(sub, at=T0 + 50 * DAY)
    return story


def listed(account: StripeAccount, kind: str) -> list[dict[str, Any]]:
    """Objects of `kind` as its list returns them, expansions included (the stand-in renders like Stripe)."""
    objects = []
    for record in account.store.objects(kind):
        obj = account.render(record["id"])
        if kind == "checkout.session" and isinstance(obj.get("payment_intent"), str):
            intent = account.render(obj["payment_intent"])
            intent["latest_charge"] = account.render(intent["latest_charge"])
            obj["payment_intent"] = intent
        if kind == "payment_intent":
            obj["latest_charge"] = account.render(obj["latest_charge"])
        objects.append(obj)
    return objects


def webhook(account: StripeAccount, event_type: str, object_id: str) -> dict[str, Any]:
    return next(e.payload() for e in account.events(types=(event_type,)) if e.object_id == object_id)


def mapped(event: dict[str, Any], settings: Settings) -> list[Fact]:
    provider = get_provider("stripe", settings)
    assert provider is not None
    queued = QueuedEvent("stripe", event["id"], event["type"], 0, json.dumps(event).encode())
    return [f for f in provider.map(queued) if isinstance(f, Fact)]


def fact_view(facts: list[Fact]) -> list[tuple[str, str, int, Any]]:
    return [(f.key, f.event, f.time, f.money) for f in facts]


def test_each_backfilled_event_maps_to_the_facts_of_the_webhook_stripe_sent(
    account: StripeAccount, settings: Settings
) -> None:
    pairs = [
        ("invoice.paid", "invoice", invoice_events),
        ("checkout.session.completed", "checkout.session", checkout_session_events),
        ("refund.created", "refund", refund_events),
    ]
    compared = 0
    for event_type, kind, build in pairs:
        for obj in listed(account, kind):
            [synthetic] = build(obj, None)
            assert synthetic["type"] == event_type and synthetic["id"].startswith("evt_backfill_")
            sent = webhook(account, event_type, obj["id"])
            assert fact_view(mapped(synthetic, settings)) == fact_view(mapped(sent, settings))
            compared += 1
    assert compared >= 6


def test_fact_keys_never_depend_on_the_event_id(account: StripeAccount, settings: Settings) -> None:
    """What makes a webhook and its backfilled twin one fact: the types backfill builds are keyed by object."""
    objects = {
        "invoices": "invoice",
        "checkout_sessions": "checkout.session",
        "payment_intents": "payment_intent",
        "refunds": "refund",
        "subscriptions": "subscription",
    }
    facts = 0
    for kind in KINDS:
        for record in account.store.objects(objects[kind.name]):
            for event in kind.events(account.render(record["id"]), None):
                renamed = {**event, "id": "evt_someone_else"}
                assert fact_view(mapped(event, settings)) == fact_view(mapped(renamed, settings))
                facts += len(mapped(event, settings))
    assert facts >= 8


def test_a_subscription_is_its_start_and_its_end(account: StripeAccount, settings: Settings) -> None:
    [sub] = listed(account, "subscription")
    started, ended = subscription_events(sub, None)
    assert (started["type"], started["created"], started["data"]["object"]["status"]) == (
        "customer.subscription.created",
        sub["start_date"],
        "active",
    )
    assert (ended["type"], ended["created"]) == ("customer.subscription.deleted", sub["ended_at"])
    sent_start = webhook(account, "customer.subscription.created", sub["id"])
    sent_end = webhook(account, "customer.subscription.deleted", sub["id"])
    assert fact_view(mapped(started, settings)) == fact_view(mapped(sent_start, settings))
    assert fact_view(mapped(ended, settings)) == fact_view(mapped(sent_end, settings))
    trialing = subscription_events(
        {**sub, "status": "trialing", "trial_start": sub["start_date"], "ended_at": None}, None
    )
    assert [e["type"] for e in trialing] == ["customer.subscription.created"]
    assert trialing[0]["data"]["object"]["status"] == "trialing"
    assert subscription_events({**sub, "status": "incomplete"}, None) == []


def test_what_is_not_paid_becomes_no_event() -> None:
    assert invoice_events({"id": "in_1", "status": "open", "created": T0}, None) == []
    assert checkout_session_events({"id": "cs_1", "status": "expired", "created": T0}, None) == []
    assert payment_intent_events({"id": "pi_1", "status": "requires_payment_method", "created": T0}, None) == []


def test_expanded_references_go_back_to_ids_and_time_is_the_charges(account: StripeAccount) -> None:
    session = next(s for s in listed(account, "checkout.session") if s["payment_intent"])
    [event] = checkout_session_events(session, "2026-10-28.endive")
    intent = session["payment_intent"]
    assert event["data"]["object"]["payment_intent"] == intent["id"]
    assert event["created"] == intent["latest_charge"]["created"]
    assert event["api_version"] == "2026-10-28.endive" and event["livemode"] is False
    assert event == checkout_session_events(session, "2026-10-28.endive")[0]  # the same id every time


def test_money_counts_each_payment_once_by_the_object_that_carries_it(account: StripeAccount) -> None:
    objects = {
        "invoices": listed(account, "invoice"),
        "checkout_sessions": listed(account, "checkout.session"),
        "payment_intents": listed(account, "payment_intent"),
        "refunds": listed(account, "refund"),
    }
    for invoice, record in zip(objects["invoices"], account.store.objects("invoice"), strict=True):
        invoice["payments"] = {"data": [{"payment": {"payment_intent": record["_payment_intent"]}}]}
    found = money_in(objects)
    by_kind = sorted((m.object_id[:3], m.kind, m.currency, m.minor) for m in found)
    assert by_kind == [
        ("cs_", "payment", "kwd", 5120),
        ("cs_", "payment", "usd", 4900),
        ("in_", "payment", "eur", 1500),
        ("in_", "payment", "eur", 1500),
        ("pi_", "payment", "jpy", 3000),  # the direct payment; the others' PaymentIntents are their objects'
        ("re_", "refund", "usd", 1000),
    ]
    failed = {**objects, "refunds": [{**objects["refunds"][0], "status": "failed"}]}
    assert [m.kind for m in money_in(failed)].count("refund") == 0


def test_ids_name_their_kind() -> None:
    assert kind_of_id("in_1") is not None and kind_of_id("in_1").name == "invoices"  # type: ignore[union-attr]
    assert kind_of_id("pyr_1").name == "refunds"  # type: ignore[union-attr]
    assert kind_of_id("ch_1") is None


def test_slices_partition_the_period_and_survive_a_round_trip() -> None:
    parts = slices(["invoices", "refunds"], 1000, 100_000, 7)
    for kind in ("invoices", "refunds"):
        mine = [p for p in parts if p.kind == kind]
        assert mine[0].since == 1000 and mine[-1].until == 100_000
        assert all(a.until == b.since for a, b in itertools.pairwise(mine))
    assert len({p.name for p in parts}) == len(parts)
    part = Slice("refunds", 10, 5000, cursor="re_1", cursor_time=4000, read=3)
    assert Slice.from_json(json.loads(json.dumps(part.as_json()))) == part
    assert part.remaining_s == 3990 and Slice("refunds", 10, 5000, done=True).remaining_s == 0
    assert len(slices(["invoices"], 0, 30, 50)) == 1  # never narrower than a minute
    with pytest.raises(ValueError):
        slices(["invoices"], 10, 10, 1)


def test_the_limiter_spaces_requests_and_pauses_everyone_after_a_429() -> None:
    now = [100.0]
    limiter = RateLimiter(20, clock=lambda: now[0])
    waits = [limiter.slot() for _ in range(21)]
    assert waits[0] == 0 and waits[20] == pytest.approx(1.0)  # 21 requests take a second: never 21 in one
    now[0] += 5
    pause = limiter.rate_limited(2)
    assert 2.0 <= pause <= 4.0 and limiter.throttled == 1
    assert limiter.slot() == pytest.approx(pause)


def test_keys_say_their_mode_and_the_default_rate_stays_under_stripes_limit() -> None:
    assert key_mode("rk_live_abc") == "live" and key_mode("sk_test_abc") == "test"
    assert default_rate("sk_test_x") < 25 and default_rate("rk_live_x") < 100
    with pytest.raises(ValueError, match="sk_live_"):
        key_mode("pk_live_abc")
