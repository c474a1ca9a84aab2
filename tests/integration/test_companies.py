"""Companies end to end: two customers of one company, through SQS, the DynamoDB ledger and the local Mixpanel.

Every event of a payment that names the company carries the group key; the company profile (`/groups`) holds
the members' absolute totals, and is the same whatever order and however often the webhooks arrive.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from harness import Pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe_story import full_history

GROUP_KEY = "company_id"


def with_company(events: list[dict[str, Any]], company: str) -> list[dict[str, Any]]:
    """The app passed its company id in the metadata of Checkout, subscriptions and their invoices (not on
    refunds: a refund takes its payment's company through the ledger, as it takes its user)."""
    for event in events:
        obj = event["data"]["object"]
        if obj.get("object") == "refund":
            continue
        for holder in [obj, *((obj.get("lines") or {}).get("data") or [])]:
            if isinstance(holder.get("metadata"), dict):
                holder["metadata"][GROUP_KEY] = company
    return events


def company_history() -> list[dict[str, Any]]:
    return with_company(full_history(customer="cus_acme_a", user_id="user-a"), "acme") + with_company(
        full_history(customer="cus_acme_b", user_id="user-b"), "acme"
    )


@pytest.fixture(scope="module")
def shared() -> Iterator[Pipeline]:
    # Two customers' histories shuffled: a refund can wait for its payment through more receives than one
    # customer's story needs (test_revenue_truth), so messages get ten.
    running = Pipeline(parameters={"GroupKey": GROUP_KEY, "MaxReceiveCount": "10"}, visibility_timeout_s=1)
    try:
        yield running
    finally:
        running.close()


def company_profile(pipeline: Pipeline) -> dict[str, Any]:
    return pipeline.mixpanel.groups()[(GROUP_KEY, "acme")]


def test_company_profile_holds_the_members_totals_and_events_carry_the_group_key(shared: Pipeline) -> None:
    shared.reset()
    shared.deliver_stripe(company_history(), timeout_s=90)
    events = shared.mixpanel.events()
    assert {e["properties"].get(GROUP_KEY) for e in events} == {"acme"}  # refunds too, through their payment
    profile = company_profile(shared)
    # Each member: 6 purchases, 2 refunds, USD 69.99 net, JPY 1200, KWD 5.12 (test_revenue_truth's story).
    assert profile["Purchase Count"] == 12 and profile["Refund Count"] == 4
    assert Decimal(str(profile["Lifetime Revenue USD"])) == Decimal("139.98")
    assert profile["Lifetime Revenue JPY"] == 2400 and Decimal(str(profile["Lifetime Revenue KWD"])) == Decimal("10.24")
    assert profile["Subscription Status"] == "canceled" and profile["Plan"] == "Pro" and profile["Seats"] == 2
    assert profile["First Purchase Date"] < profile["Last Purchase Date"]
    assert shared.mixpanel.profiles()["user-a"][GROUP_KEY] == "acme"
    assert shared.dead_letters() == [] and shared.mixpanel.spec_violations() == []


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), per_batch=st.sampled_from([5, None]))
def test_company_profile_is_identical_under_shuffled_duplicated_delivery(
    shared: Pipeline, seed: int, per_batch: int | None
) -> None:
    history = company_history()
    shared.reset()
    shared.deliver_stripe(history, timeout_s=90)
    expected = company_profile(shared)

    rng = random.Random(seed)
    shuffled = [event for event in history for _ in range(rng.randint(1, 2))]
    rng.shuffle(shuffled)
    shared.reset()
    shared.deliver_stripe(shuffled, per_batch=per_batch, timeout_s=90)
    assert company_profile(shared) == expected
    last = [u for u in shared.mixpanel.group_updates() if u["$group_id"] == "acme"][-1]
    assert last["$set"] == expected  # the last update sent is the whole truth, not an increment
    assert shared.dead_letters() == []
