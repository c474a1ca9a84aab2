"""The test lane (Mode=any, TestEventsTo=test-project): test-mode webhooks reach only the test project, live ones
only production, each through its own queue, forwarder lane, ledger namespace and dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from harness import Pipeline, stripe_checkout

from devstack.mixpanel import Fault


@pytest.fixture
def lanes() -> Iterator[Pipeline]:
    running = Pipeline(parameters={"TestEventsTo": "test-project"})
    try:
        yield running
    finally:
        running.close()


def checkout(tag: str, *, live: bool, user_id: str = "user-1") -> bytes:
    event = json.loads(stripe_checkout(tag, user_id=user_id))
    event["livemode"] = live
    event["data"]["object"]["livemode"] = live
    return json.dumps(event).encode()


def order_ids(events: list[dict[str, object]]) -> list[object]:
    return sorted(e["properties"]["Order ID"] for e in events)  # type: ignore[index]


def test_test_mode_events_reach_only_the_test_project_and_live_ones_only_production(lanes: Pipeline) -> None:
    for tag, live in (("t1", False), ("l1", True), ("t2", False)):
        assert json.loads(lanes.post_stripe(checkout(tag, live=live))["body"])["status"] == "accepted"
    assert lanes.queue_depth(lanes.queue_url) == 1 and lanes.queue_depth(lanes.test_queue_url) == 2
    assert lanes.drain(60)
    assert order_ids(lanes.test_project.events()) == ["cs_t1", "cs_t2"]
    assert order_ids(lanes.mixpanel.events()) == ["cs_l1"]
    # Profiles too: each lane's totals go to its own project, under its own token.
    assert {u["$token"] for u in lanes.test_project.profile_updates()} == {"devstack-test-token"}
    assert {u["$token"] for u in lanes.mixpanel.profile_updates()} == {"devstack-demo-token"}
    assert lanes.mixpanel.profiles()["user-1"]["Purchase Count"] == 1
    assert lanes.mixpanel.spec_violations() == [] and lanes.test_project.spec_violations() == []


def test_the_ledger_keeps_test_and_live_apart_even_for_the_same_object(lanes: Pipeline) -> None:
    lanes.post_stripe(checkout("same", live=False))
    lanes.post_stripe(checkout("same", live=True))
    assert lanes.drain(60)
    assert order_ids(lanes.test_project.events()) == ["cs_same"] and order_ids(lanes.mixpanel.events()) == ["cs_same"]
    table = lanes.resources.refs["LedgerTable"]
    keys = {item["pk"]["S"] for item in lanes.dynamodb.scan(TableName=table)["Items"]}
    assert {"fact#stripe:payment:cs_same", "test/fact#stripe:payment:cs_same"} <= keys
    assert {"customer#stripe:cus_same", "test/customer#stripe:cus_same"} <= keys


def test_each_lane_dead_letters_into_its_own_queue(lanes: Pipeline) -> None:
    refused = {"cs_tbad", "cs_lbad"}
    lanes.mixpanel.faults.push(
        *[Fault.reject(predicate=lambda e: e.get("properties", {}).get("Order ID") in refused, path="/import")] * 4
    )
    lanes.post_stripe(checkout("tbad", live=False))
    lanes.post_stripe(checkout("lbad", live=True))
    assert lanes.drain(60)
    test_letters = lanes.dead_letters(lanes.test_dlq_url)
    live_letters = lanes.dead_letters()
    assert [m["MessageAttributes"]["event_id"]["StringValue"] for m in test_letters] == ["evt_tbad"]
    assert [m["MessageAttributes"]["event_id"]["StringValue"] for m in live_letters] == ["evt_lbad"]
    assert test_letters[0]["MessageAttributes"]["dead_letter_reason"]["StringValue"] == "mixpanel_rejected_event"


def test_production_setting_mixes_test_events_into_production_as_before() -> None:
    mixed = Pipeline(parameters={"TestEventsTo": "production"})
    try:
        mixed.post_stripe(checkout("m1", live=False))
        assert mixed.queue_depth(mixed.test_queue_url) == 0
        assert mixed.drain(60)
        assert order_ids(mixed.mixpanel.events()) == ["cs_m1"] and mixed.test_project.events() == []
    finally:
        mixed.close()
