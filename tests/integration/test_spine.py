"""Stripe webhooks to Mixpanel, end to end: receiver -> SQS -> forwarder -> Mixpanel, on real protocols."""

from __future__ import annotations

import json
import re
import time

from harness import STRIPE_SECRET, Pipeline, fixture_bytes
from revenue_webhooks.providers.stripe import sign

CHECKOUT = "checkout.session.completed.payment_mode.json"


def test_signed_checkout_becomes_one_valid_purchase_in_mixpanel(pipeline: Pipeline) -> None:
    body = fixture_bytes("stripe", CHECKOUT)
    payload = json.loads(body)
    session = payload["data"]["object"]

    response = pipeline.post_stripe(body)
    assert response["statusCode"] == 200 and json.loads(response["body"]) == {"status": "accepted"}
    assert pipeline.drain()

    (event,) = pipeline.mixpanel.events()
    props = event["properties"]
    assert event["event"] == "Purchase Completed"
    assert props["Revenue"] == session["amount_total"] / 100 and props["Currency"] == session["currency"].upper()
    assert props["distinct_id"] == f"$device:{session['customer']}"
    assert props["time"] == payload["created"]
    assert re.fullmatch(r"[A-Za-z0-9-]{1,36}", props["$insert_id"])
    assert props["Order ID"] == session["id"] and props["ip"] == "0"
    assert pipeline.mixpanel.spec_violations() == []
    assert pipeline.dead_letters() == []


def test_the_same_webhook_twice_produces_identical_events(pipeline: Pipeline) -> None:
    body = fixture_bytes("stripe", CHECKOUT)
    pipeline.post_stripe(body)
    assert pipeline.drain()
    pipeline.post_stripe(body)  # a redelivery, freshly signed as Stripe does
    assert pipeline.drain()
    first, second = pipeline.mixpanel.raw_events()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert len(pipeline.mixpanel.events()) == 1


def test_bad_signature_gets_400_and_nothing_is_enqueued(pipeline: Pipeline) -> None:
    body = fixture_bytes("stripe", CHECKOUT)
    for headers in (sign(body, "whsec_wrong"), {}, sign(body, STRIPE_SECRET, timestamp=int(time.time()) - 3600)):
        response = pipeline.post("stripe", body, headers)
        assert response["statusCode"] == 400
        assert "cus_" not in response["body"] and "whsec" not in response["body"]
    assert pipeline.queue_depth() == 0


def test_base64_bodies_verify_like_plain_ones(pipeline: Pipeline) -> None:
    body = fixture_bytes("stripe", CHECKOUT)
    response = pipeline.post("stripe", body, sign(body, STRIPE_SECRET), base64_body=True)
    assert response["statusCode"] == 200
    assert pipeline.queue_depth() == 1


def test_unknown_provider_is_404(pipeline: Pipeline) -> None:
    body = fixture_bytes("stripe", CHECKOUT)
    assert pipeline.post("nosuchprovider", body, sign(body, STRIPE_SECRET))["statusCode"] == 404


def test_oversized_body_is_413_before_anything_else(pipeline: Pipeline) -> None:
    body = b'{"id": "evt_big", "pad": "' + b"x" * 600_000 + b'"}'
    assert pipeline.post("stripe", body, sign(body, STRIPE_SECRET))["statusCode"] == 413
    assert pipeline.queue_depth() == 0


def test_body_that_is_not_a_json_event_is_400(pipeline: Pipeline) -> None:
    for body in (b"not json", b"[1, 2]", b'{"no": "id"}', b"{" * 5000):
        assert pipeline.post("stripe", body, sign(body, STRIPE_SECRET))["statusCode"] == 400
    assert pipeline.queue_depth() == 0


def test_unmapped_types_are_acknowledged_and_never_queued(pipeline: Pipeline) -> None:
    for name in ("customer.created.json", "payout.paid.json", "product.updated.json"):
        response = pipeline.post_stripe(fixture_bytes("stripe", name))
        assert response["statusCode"] == 200 and json.loads(response["body"])["status"] == "ignored"
    assert pipeline.queue_depth() == 0


def test_live_deployment_ignores_test_mode_events() -> None:
    live = Pipeline(parameters={"Mode": "live"})
    try:
        response = live.post_stripe(fixture_bytes("stripe", CHECKOUT))  # the fixtures are test-mode events
        assert json.loads(response["body"])["status"] == "ignored"
        assert live.queue_depth() == 0
    finally:
        live.close()


def test_queue_message_is_the_raw_webhook_with_its_metadata(pipeline: Pipeline) -> None:
    body = fixture_bytes("stripe", CHECKOUT)
    pipeline.post_stripe(body)
    (message,) = pipeline.sqs.receive_message(
        QueueUrl=pipeline.queue_url, MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"]
    assert message["Body"].encode() == body
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["provider"] == "stripe" and attributes["event_type"] == "checkout.session.completed"
    assert attributes["event_id"] == json.loads(body)["id"] and int(attributes["received_at"]) > 0
