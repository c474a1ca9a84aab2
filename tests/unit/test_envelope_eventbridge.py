"""The queue message format reads what Stripe's EventBridge destination puts in EventsQueue: the EventBridge
event itself, with no attributes, whose `detail` is the Stripe event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.service.envelope import from_message, from_record, to_sqs

STRIPE_EVENT = json.loads((Path(__file__).parents[1] / "fixtures" / "stripe" / "invoice.paid.json").read_text())


def eventbridge(detail: dict[str, Any], source: str = "aws.partner/stripe.com/ed_61SEQ0ZqvTHe8VeP") -> str:
    """An EventBridge event in the shape stripe-python's own tests use (tests/test_cloud_provider.py)."""
    return json.dumps(
        {
            "version": "0",
            "id": "2a1f2b4c-8f32-6a2f-77e0-2d1c7b0b8a11",
            "detail-type": detail.get("type"),
            "source": source,
            "account": "123456789012",
            "time": "2020-09-09T12:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


def test_a_stripe_event_from_eventbridge_is_queued_as_its_webhook() -> None:
    queued = from_record({"body": eventbridge(STRIPE_EVENT), "messageAttributes": {}})
    assert (queued.provider, queued.event_id, queued.event_type) == ("stripe", STRIPE_EVENT["id"], "invoice.paid")
    assert json.loads(queued.body) == STRIPE_EVENT
    assert queued.received_at_ms == 1_599_652_800_000


def test_receive_message_results_read_the_same() -> None:
    queued = from_message({"Body": eventbridge(STRIPE_EVENT)})
    assert queued.event_id == STRIPE_EVENT["id"] and json.loads(queued.body) == STRIPE_EVENT


def test_only_stripe_partner_sources_are_read() -> None:
    with pytest.raises(ValueError, match="only Stripe partner sources"):
        from_record({"body": eventbridge(STRIPE_EVENT, source="aws.partner/shopify.com/123/orders")})


def test_a_thin_event_is_refused_with_the_reason() -> None:
    thin = {
        "id": "evt_test_65R9Ijk8",
        "object": "v2.core.event",
        "type": "v1.billing.meter.no_meter_found",
        "created": "2024-09-17T06:20:52.246Z",
    }
    with pytest.raises(ValueError, match="thin event"):
        from_record({"body": eventbridge(thin)})


def test_a_webhook_written_by_the_receiver_is_read_by_its_attributes_whatever_its_body_says() -> None:
    tricky = json.dumps(
        {"id": "evt_x", "type": "checkout.session.completed", "metadata": {"detail-type": "x", "source": "y"}}
    )
    message = to_sqs(QueuedEvent("stripe", "evt_x", "checkout.session.completed", 1, tricky.encode()))
    record = {
        "body": message["MessageBody"],
        "messageAttributes": {k: {"stringValue": v["StringValue"]} for k, v in message["MessageAttributes"].items()},
    }
    assert from_record(record).body == tricky.encode()
