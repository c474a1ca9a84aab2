"""Shopify: X-Shopify-Hmac-Sha256 over the raw body, X-Shopify-Triggered-At window, and the topic mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Fact, Identity
from revenue_webhooks.providers import get_provider
from revenue_webhooks.providers.base import PayloadInvalid, SignatureInvalid, TimestampOutOfTolerance
from revenue_webhooks.providers.shopify import ShopifyProvider, create

SECRET = "shpss_test_client_secret"
ORDER_TIME = 1199980800  # the sample order's created_at, 2008-01-10T11:00:00-05:00
REFUND_TIME = 1466444106  # the sample refund's created_at, 2016-06-20T13:35:06-04:00
RECEIVED_MS = 1_700_000_000_000
TRIGGERED_AT = "2023-11-14T22:13:10.123456789Z"  # 10 s before RECEIVED_MS, with Shopify's nanoseconds


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def provider(settings) -> ShopifyProvider:
    return create(settings)


@pytest.fixture
def order(fixture_json) -> dict[str, Any]:
    """The REST fixture unwrapped: an `orders/*` webhook body is the order itself."""
    return fixture_json("shopify/rest_fixture_order.json")["order"]


@pytest.fixture
def refund(fixture_json) -> dict[str, Any]:
    return fixture_json("shopify/rest_fixture_refund.json")["refund"]


@pytest.fixture
def delivery(make_request):
    """A signed delivery of `body` on `topic`, as Shopify sends it."""

    def make(topic: str, body: Any, *, secret: str = SECRET, received_at_ms: int = RECEIVED_MS, **headers: str):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(raw, secret),
            "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
            "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "X-Shopify-Triggered-At": TRIGGERED_AT,
            "X-Shopify-Shop-Domain": "example.myshopify.com",
            "X-Shopify-API-Version": "2025-01",
            **{name.replace("_", "-"): value for name, value in headers.items()},
        }
        return make_request(
            raw, {k: v for k, v in sent.items() if v is not None}, received_at_ms=received_at_ms, route="shopify"
        )

    return make


# --- verification -----------------------------------------------------------------------------


def test_signature_over_the_sample_order_body_is_accepted(provider, delivery, order):
    provider.verify(delivery("orders/paid", order), [SECRET])


def test_known_answer_signature_matches_openssl(provider, make_request):
    body = b'{"id":1,"total_price":"10.00"}'
    # printf '%s' BODY | openssl dgst -sha256 -hmac shpss_kat_secret -binary | base64
    headers = {
        "x-shopify-hmac-sha256": "hXo05Ic2ic429XzoFGnyTFfNPVIHK3TzRE+WHrCv0QM=",
        "x-shopify-triggered-at": TRIGGERED_AT,
    }
    provider.verify(make_request(body, headers, received_at_ms=RECEIVED_MS, route="shopify"), ["shpss_kat_secret"])


def test_tampered_body_is_rejected(provider, delivery, order, make_request):
    signed = delivery("orders/paid", order)
    tampered = signed.body.replace(b'"409.94"', b'"1.00"')
    assert tampered != signed.body
    with pytest.raises(SignatureInvalid):
        provider.verify(
            make_request(tampered, dict(signed.headers), received_at_ms=RECEIVED_MS, route="shopify"), [SECRET]
        )


def test_wrong_secret_is_rejected(provider, delivery, order):
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery("orders/paid", order), ["shpss_some_other_secret"])


def test_no_configured_secret_rejects_everything(provider, delivery, order):
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery("orders/paid", order), [])


@pytest.mark.parametrize("signing_secret", ["shpss_old", "shpss_new"])
def test_any_of_several_rotated_secrets_is_accepted(provider, delivery, order, signing_secret):
    provider.verify(
        delivery("orders/paid", order, secret=signing_secret), ["shpss_unrelated", "shpss_old", "shpss_new"]
    )


def test_missing_hmac_header_is_rejected(provider, delivery, order):
    request = delivery("orders/paid", order, **{"X-Shopify-Hmac-Sha256": None})
    with pytest.raises(SignatureInvalid, match="missing"):
        provider.verify(request, [SECRET])


def test_missing_triggered_at_is_rejected(provider, delivery, order):
    with pytest.raises(TimestampOutOfTolerance):
        provider.verify(delivery("orders/paid", order, **{"X-Shopify-Triggered-At": None}), [SECRET])


def test_delivery_older_than_the_configured_window_is_rejected(make_settings, delivery, order):
    provider = create(make_settings(SHOPIFY_MAX_AGE_SECONDS="3600"))
    triggered_ms = RECEIVED_MS - 10_000
    provider.verify(delivery("orders/paid", order, received_at_ms=triggered_ms + 3600_000), [SECRET])
    with pytest.raises(TimestampOutOfTolerance, match="older"):
        provider.verify(delivery("orders/paid", order, received_at_ms=triggered_ms + 3601_000), [SECRET])


def test_default_window_is_a_day(provider, delivery, order):
    provider.verify(delivery("orders/paid", order, received_at_ms=RECEIVED_MS + 86_000_000), [SECRET])
    with pytest.raises(TimestampOutOfTolerance):
        provider.verify(delivery("orders/paid", order, received_at_ms=RECEIVED_MS + 86_400_000), [SECRET])


def test_triggered_at_in_the_future_is_rejected(provider, delivery, order):
    with pytest.raises(TimestampOutOfTolerance, match="ahead"):
        provider.verify(delivery("orders/paid", order, received_at_ms=RECEIVED_MS - 120_000), [SECRET])


def test_window_is_measured_from_the_request_time_not_the_clock(provider, delivery, order):
    """A 2008 delivery received in 2008 is fresh: the clock running this test is never consulted."""
    request = delivery(
        "orders/paid",
        order,
        received_at_ms=ORDER_TIME * 1000 + 5_000,
        **{"X-Shopify-Triggered-At": "2008-01-10T16:00:00Z"},
    )
    provider.verify(request, [SECRET])


# --- parsing ----------------------------------------------------------------------------------


def test_parse_takes_topic_and_event_id_from_headers(provider, delivery, order):
    parsed = provider.parse(delivery("orders/paid", order))
    assert (parsed.event_type, parsed.event_id, parsed.livemode) == (
        "orders/paid",
        "98880550-7158-44d4-b7cd-2c97c8a091b5",
        True,
    )


def test_parse_falls_back_to_the_webhook_id_on_older_api_versions(provider, delivery, order):
    parsed = provider.parse(delivery("orders/paid", order, **{"X-Shopify-Event-Id": None}))
    assert parsed.event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def test_parse_requires_the_topic_header(provider, delivery, order):
    with pytest.raises(PayloadInvalid):
        provider.parse(delivery("orders/paid", order, **{"X-Shopify-Topic": None}))


def test_test_orders_are_not_live(provider, delivery, order):
    assert provider.parse(delivery("orders/paid", {**order, "test": True})).livemode is False


def test_only_mapped_topics_are_relevant(provider):
    assert provider.is_relevant("orders/paid")
    assert not provider.is_relevant("products/update")
    assert not provider.is_relevant("subscription_billing_attempts/success")


def test_registry_serves_the_shopify_route(settings):
    assert isinstance(get_provider("shopify", settings), ShopifyProvider)


# --- mapping ----------------------------------------------------------------------------------


def test_paid_order_is_one_purchase_keyed_by_the_order(provider, delivery, deliver, order, settings, rendered):
    [fact] = deliver(provider, delivery("orders/paid", order))
    assert isinstance(fact, Fact)
    assert (fact.key, fact.event, fact.time) == ("shopify:payment:450789469", c.PURCHASE_COMPLETED, ORDER_TIME)
    assert fact.identity == Identity(user_id=None, device_id=None, customer="207119551")
    assert fact.properties == {c.PURCHASE_TYPE: c.ONE_TIME}
    assert fact.profile is not None and fact.profile.purchases == 1 and fact.profile.revenue == fact.money
    assert fact.links == ("shopify:payment-ref:450789469",)
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY], event[c.ORDER_ID]) == (409.94, "USD", "450789469")


def test_processed_at_is_the_purchase_time(provider, delivery, deliver, order):
    [fact] = deliver(provider, delivery("orders/paid", {**order, "processed_at": "2008-01-10T11:05:00-05:00"}))
    assert fact.time == ORDER_TIME + 300


def test_cart_attributes_name_the_app_user(provider, delivery, deliver, order):
    attributes = [{"name": "mixpanel_distinct_id", "value": "user-42"}, {"name": "mixpanel_ip", "value": "203.0.113.9"}]
    [fact] = deliver(provider, delivery("orders/paid", {**order, "note_attributes": attributes}))
    assert fact.identity == Identity(user_id="user-42", device_id=None, customer="207119551")
    assert fact.ip == "203.0.113.9"


@pytest.mark.parametrize(
    ("total", "currency", "revenue"),
    [
        ("409.94", "USD", 409.94),
        ("1200", "JPY", 1200),
        ("1200.00", "JPY", 1200),
        ("5.125", "KWD", 5.125),
        ("0.5", "usd", 0.5),
    ],
)
def test_revenue_is_the_total_in_major_units_of_its_currency(
    provider, delivery, deliver, order, settings, rendered, total, currency, revenue
):
    [fact] = deliver(provider, delivery("orders/paid", {**order, "total_price": total, "currency": currency}))
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY]) == (revenue, currency.upper())
    assert type(event[c.REVENUE]) is type(revenue)


def test_multi_currency_orders_count_what_the_customer_was_charged(
    provider, delivery, deliver, order, settings, rendered
):
    charged = {
        "shop_money": {"amount": "409.94", "currency_code": "USD"},
        "presentment_money": {"amount": "61900", "currency_code": "JPY"},
    }
    [fact] = deliver(provider, delivery("orders/paid", {**order, "total_price_set": charged}))
    assert (rendered(fact, settings)[c.REVENUE], fact.money.currency) == (61900, "JPY")


def test_free_orders_are_not_purchases(provider, delivery, deliver, order):
    assert deliver(provider, delivery("orders/paid", {**order, "total_price": "0.00"})) == []


def test_subscription_renewal_orders_are_renewals(provider, delivery, deliver, order):
    purchase, renewal = deliver(provider, delivery("orders/paid", {**order, "source_name": "subscription_contract"}))
    assert purchase.properties[c.PURCHASE_TYPE] == c.SUBSCRIPTION_RENEWAL
    assert (renewal.key, renewal.event, renewal.money) == (
        "shopify:subscription-renewal:450789469",
        c.SUBSCRIPTION_RENEWED,
        purchase.money,
    )


def test_refund_is_its_successful_refund_transactions_keyed_by_refund(
    provider, delivery, deliver, refund, settings, rendered
):
    [fact] = deliver(provider, delivery("refunds/create", refund))
    assert (fact.key, fact.event, fact.time) == ("shopify:refund:509562969", c.REFUND_ISSUED, REFUND_TIME)
    assert fact.identity_from == ("shopify:payment-ref:450789469",)  # the refund body does not name the buyer
    assert fact.profile is not None and fact.profile.refunds == 1 and fact.profile.revenue == -fact.money
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY], event[c.ORDER_ID], event[c.REFUND_ID]) == (
        209.0,
        "USD",
        "450789469",
        "509562969",
    )


def test_failed_and_non_refund_transactions_do_not_count(provider, delivery, deliver, refund):
    transactions = [
        {**refund["transactions"][0], "amount": "100.00"},
        {**refund["transactions"][0], "amount": "50.00", "status": "failure"},
        {**refund["transactions"][0], "amount": "7.00", "kind": "sale"},
        {**refund["transactions"][0], "amount": "9.50"},
    ]
    [fact] = deliver(provider, delivery("refunds/create", {**refund, "transactions": transactions}))
    assert (fact.money.minor, fact.money.currency) == (10950, "USD")


def test_restock_only_refund_moves_no_money(provider, delivery, deliver, refund):
    assert deliver(provider, delivery("refunds/create", {**refund, "transactions": []})) == []


def test_cancelled_order_reports_its_refunds_under_the_same_keys(provider, delivery, deliver, order, refund):
    [from_refund] = deliver(provider, delivery("refunds/create", refund))
    [from_cancel] = deliver(provider, delivery("orders/cancelled", {**order, "refunds": [refund]}))
    assert (from_cancel.key, from_cancel.money, from_cancel.time) == (
        from_refund.key,
        from_refund.money,
        from_refund.time,
    )
    assert from_cancel.identity.customer == "207119551"


def test_cancelled_unpaid_order_has_nothing_to_report(provider, delivery, deliver, order):
    assert deliver(provider, delivery("orders/cancelled", {**order, "refunds": []})) == []


def test_contract_creation_starts_a_subscription_at_the_receipt_time(provider, delivery, deliver, fixture_json):
    contract = fixture_json("shopify/docs_subscription_contracts_create.json")
    [fact] = deliver(provider, delivery("subscription_contracts/create", contract))
    assert (fact.key, fact.event, fact.time) == (
        "shopify:subscription-start:9998878778",
        c.SUBSCRIPTION_STARTED,
        RECEIVED_MS // 1000,  # the contract body carries no time
    )
    assert fact.properties == {c.SUBSCRIPTION_ID: "9998878778", c.STATUS: "active", c.INTERVAL: "month"}
    assert fact.identity.customer == "1"
    assert fact.links == ("shopify:contract-ref:9998878778",)


@pytest.mark.parametrize(
    ("topic", "status", "reason"),
    [("subscription_contracts/cancel", "cancelled", None), ("subscription_contracts/expire", "expired", "expired")],
)
def test_contract_cancel_and_expiry_end_the_subscription(
    provider, delivery, deliver, fixture_json, topic, status, reason
):
    contract = {**fixture_json("shopify/docs_subscription_contracts_create.json"), "status": status}
    [fact] = deliver(provider, delivery(topic, contract))
    assert (fact.key, fact.event) == ("shopify:subscription-end:9998878778", c.SUBSCRIPTION_CANCELLED)
    assert fact.properties.get(c.REASON) == reason
    assert fact.profile is not None and fact.profile.status == "canceled"


def test_failed_billing_attempt_is_a_payment_failure_of_its_contract(provider, delivery, deliver, fixture_json):
    attempt = fixture_json("shopify/docs_subscription_billing_attempts_failure.json")
    [fact] = deliver(provider, delivery("subscription_billing_attempts/failure", attempt))
    assert (fact.key, fact.event) == (
        "shopify:payment-failed:9998878778:9a453d81-d41d-403e-806f-714dee215ff9",
        c.PAYMENT_FAILED,
    )
    assert fact.properties == {c.SUBSCRIPTION_ID: "9998878778", c.REASON: "PAYMENT_METHOD_DECLINED"}
    assert fact.identity_from == ("shopify:contract-ref:9998878778",)


@pytest.mark.parametrize("topic", ["orders/paid", "refunds/create"])
def test_a_redelivered_webhook_gives_identical_facts(provider, delivery, deliver, order, refund, topic):
    body = order if topic == "orders/paid" else refund
    first = deliver(provider, delivery(topic, body))
    retry = deliver(provider, delivery(topic, body, received_at_ms=RECEIVED_MS + 3_600_000))
    assert first == retry and first


def test_an_order_without_any_time_is_refused_rather_than_clocked(provider, delivery, deliver, order):
    body = {key: value for key, value in order.items() if key not in ("created_at", "processed_at")}
    with pytest.raises(PayloadInvalid, match="processed_at"):
        deliver(provider, delivery("orders/paid", body))
