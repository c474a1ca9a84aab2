"""A signed webhook from each provider reaches the Mixpanel test server as the right catalog event."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from harness import SECRETS, Pipeline, fixture_bytes
from revenue_webhooks.providers import sign


def shopify_order() -> tuple[bytes, dict[str, str]]:
    order = json.loads(fixture_bytes("shopify", "rest_fixture_order.json"))["order"]
    body = json.dumps(order).encode()  # a webhook body is the order itself, unwrapped
    return body, sign("shopify", body, SECRETS["shopify"], topic="orders/paid")


def paddle_transaction() -> tuple[bytes, dict[str, str]]:
    data = json.loads(fixture_bytes("paddle", "data_transaction.completed.json"))
    envelope = {
        "event_id": "evt_01hv8x2acma2gz9z2kce5kzj7v",
        "event_type": "transaction.completed",
        "occurred_at": "2024-04-12T10:18:49.621022Z",
        "notification_id": "ntf_01hv8x2af6s4pjvrgp3ncc2gf4",
        "data": data,
    }
    body = json.dumps(envelope).encode()
    return body, sign("paddle", body, SECRETS["paddle"])


def signed(provider: str, folder: str, name: str) -> tuple[bytes, dict[str, str]]:
    body = fixture_bytes(folder, name)
    return body, sign(provider, body, SECRETS[provider])


def acme_payment() -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": "payment.succeeded",
            "timestamp": "2022-11-03T20:26:10.344522Z",
            "data": {
                "id": "pay_2Nf8QpXv",
                "amount": 1999,
                "currency": "usd",
                "livemode": True,
                "customer": {"id": "cus_981", "external_id": "user-42"},
            },
        }
    ).encode()
    return body, sign("acme", body, SECRETS["acme"], int(time.time()), message_id="msg_e2e_1")


CASES: dict[str, tuple[str, Any, str]] = {
    "stripe": (
        "stripe",
        lambda: signed("stripe", "stripe", "checkout.session.completed.payment_mode.json"),
        "Purchase Completed",
    ),
    "shopify": ("shopify", shopify_order, "Purchase Completed"),
    "paddle": ("paddle", paddle_transaction, "Purchase Completed"),
    "lemonsqueezy": (
        "lemonsqueezy",
        lambda: signed("lemonsqueezy", "lemonsqueezy", "order_created.json"),
        "Purchase Completed",
    ),
    "revenuecat": (
        "revenuecat",
        lambda: signed("revenuecat", "revenuecat", "sample-events_1.json"),
        "Purchase Completed",
    ),
    "standard-webhooks": ("acme", acme_payment, "Purchase Completed"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_provider_reaches_mixpanel_as_its_catalog_event(pipeline: Pipeline, case: str) -> None:
    route, make, expected = CASES[case]
    body, headers = make()
    response = pipeline.post(route, body, headers)
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["status"] == "accepted"
    assert pipeline.drain()
    names = [event["event"] for event in pipeline.mixpanel.events()]
    assert expected in names
    for event in pipeline.mixpanel.events():
        assert event["properties"]["Provider"] == route
        assert isinstance(event["properties"].get("Revenue", 0), (int, float))
    assert pipeline.dead_letters() == []
    assert pipeline.mixpanel.spec_violations() == []

    pipeline.post(route, body, make()[1])  # a redelivery
    assert pipeline.drain()
    assert len(pipeline.mixpanel.events()) == len(names)


@pytest.mark.parametrize("case", list(CASES))
def test_each_provider_refuses_a_forged_signature(pipeline: Pipeline, case: str) -> None:
    route, make, _ = CASES[case]
    body, headers = make()
    for name in SIGNATURE_HEADERS & set(headers):
        value = headers[name]
        headers[name] = value[:-4] + ("BBBB" if value.endswith("AAAA") else "AAAA")
    assert pipeline.post(route, body, headers)["statusCode"] == 400
    assert pipeline.queue_depth() == 0


SIGNATURE_HEADERS = {
    "stripe-signature",
    "x-shopify-hmac-sha256",
    "paddle-signature",
    "x-signature",
    "authorization",
    "webhook-signature",
}


def test_acme_payment_is_the_documented_event(pipeline: Pipeline) -> None:
    body, headers = acme_payment()
    pipeline.post("acme", body, headers)
    assert pipeline.drain()
    (event,) = pipeline.mixpanel.events()
    props = event["properties"]
    assert (props["distinct_id"], props["time"], props["Revenue"], props["Currency"]) == (
        "user-42",
        1667507170,
        19.99,
        "USD",
    )
