"""Lemon Squeezy: X-Signature (hex HMAC of the raw body), the derived delivery id, and the mapping.

Lemon Squeezy publishes no signed vectors or byte-exact deliveries: the bodies under
tests/fixtures/lemonsqueezy/ are built from its documented object shapes (see SOURCES.md).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

import pytest
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Identity
from revenue_webhooks.providers import get_provider
from revenue_webhooks.providers.base import PayloadInvalid, SignatureInvalid
from revenue_webhooks.providers.lemonsqueezy import LemonSqueezyProvider, create

SECRET = "ls-signing-secret-123"
RECEIVED_MS = 1_629_193_560_000


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def provider(settings) -> LemonSqueezyProvider:
    return create(settings)


@pytest.fixture
def sample(fixture_json):
    """A documented-shape sample, optionally with `meta` and `data.attributes` changes."""

    def make(name: str, meta: dict[str, Any] | None = None, **attributes: Any) -> dict[str, Any]:
        body = copy.deepcopy(fixture_json(f"lemonsqueezy/{name}.json"))
        body["meta"].update(meta or {})
        body["data"]["attributes"].update(attributes)
        return body

    return make


@pytest.fixture
def delivery(make_request):
    def make(body: Any, *, secret: str = SECRET, signature: str | None = None, received_at_ms: int = RECEIVED_MS):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-Event-Name": "ignored-by-us"}
        headers["X-Signature"] = signature if signature is not None else sign(raw, secret)
        return make_request(raw, headers, received_at_ms=received_at_ms, route="lemonsqueezy")

    return make


# --- verification -----------------------------------------------------------------------------


def test_signature_over_the_sample_order_is_accepted(provider, delivery, fixture_bytes):
    provider.verify(delivery(fixture_bytes("lemonsqueezy/order_created.json")), [SECRET])


def test_known_answer_signature_matches_openssl(provider, delivery):
    body = b'{"meta":{"event_name":"order_created"}}'
    # printf '%s' BODY | openssl dgst -sha256 -hmac ls_kat_secret
    expected = "ca3db3f220881e2b7b801740e377aa30cafeac0982ee00022f260675a0e4b773"
    provider.verify(delivery(body, signature=expected), ["ls_kat_secret"])
    provider.verify(delivery(body, signature=expected.upper()), ["ls_kat_secret"])


def test_tampered_body_is_rejected(provider, delivery, fixture_bytes, make_request):
    signed = delivery(fixture_bytes("lemonsqueezy/order_created.json"))
    tampered = signed.body.replace(b'"total": 1199', b'"total": 1')
    assert tampered != signed.body
    with pytest.raises(SignatureInvalid):
        provider.verify(
            make_request(tampered, dict(signed.headers), received_at_ms=RECEIVED_MS, route="lemonsqueezy"), [SECRET]
        )


def test_wrong_secret_is_rejected(provider, delivery, fixture_bytes):
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(fixture_bytes("lemonsqueezy/order_created.json")), ["another-secret"])


@pytest.mark.parametrize("signing_secret", ["old-secret-1", "new-secret-2"])
def test_any_of_several_rotated_secrets_is_accepted(provider, delivery, fixture_bytes, signing_secret):
    body = fixture_bytes("lemonsqueezy/order_created.json")
    provider.verify(delivery(body, secret=signing_secret), ["unrelated", "old-secret-1", "new-secret-2"])


@pytest.mark.parametrize("signature", ["", "not-hex", "00" * 32])
def test_missing_or_bad_signature_is_rejected(provider, delivery, fixture_bytes, signature):
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(fixture_bytes("lemonsqueezy/order_created.json"), signature=signature), [SECRET])


# --- parsing ----------------------------------------------------------------------------------


def test_delivery_id_is_event_name_object_and_version(provider, delivery, sample):
    parsed = provider.parse(delivery(sample("order_created")))
    assert (parsed.event_id, parsed.event_type, parsed.livemode) == (
        "order_created:orders:1:2021-08-17T09:45:53.000000Z",
        "order_created",
        True,
    )


def test_a_retry_has_the_same_delivery_id_and_a_change_a_new_one(provider, delivery, sample):
    first = provider.parse(delivery(sample("order_refunded")))
    retry = provider.parse(delivery(sample("order_refunded"), received_at_ms=RECEIVED_MS + 125_000))
    later = provider.parse(delivery(sample("order_refunded", updated_at="2021-08-21T10:00:00.000000Z")))
    assert first.event_id == retry.event_id != later.event_id


def test_test_mode_events_are_not_live(provider, delivery, sample):
    assert provider.parse(delivery(sample("order_created", {"test_mode": True}))).livemode is False


def test_parse_refuses_a_body_without_event_name_or_object(provider, delivery):
    with pytest.raises(PayloadInvalid):
        provider.parse(delivery({"meta": {}, "data": {"type": "orders"}}))


def test_registry_serves_the_lemonsqueezy_route(settings):
    assert isinstance(get_provider("lemonsqueezy", settings), LemonSqueezyProvider)


# --- mapping ----------------------------------------------------------------------------------


def test_paid_order_is_a_purchase_keyed_by_the_order(provider, delivery, deliver, sample, settings, rendered):
    [fact] = deliver(provider, delivery(sample("order_created")))
    assert (fact.key, fact.event, fact.time) == ("lemonsqueezy:payment:order-1", c.PURCHASE_COMPLETED, 1629193553)
    assert fact.identity == Identity(user_id="usr_42", customer="1")
    assert fact.properties == {}  # an order does not say whether it started a subscription
    assert fact.links == ("lemonsqueezy:payment-ref:order-1",)
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY], event[c.ORDER_ID]) == (11.99, "USD", "1")


@pytest.mark.parametrize(
    ("total", "currency", "revenue"),
    [(1199, "USD", 11.99), (1200, "JPY", 1200), (5125, "KWD", 5.125), (12000, "TND", 12)],
)
def test_revenue_is_total_in_minor_units_of_its_currency(
    provider, delivery, deliver, sample, settings, rendered, total, currency, revenue
):
    [fact] = deliver(provider, delivery(sample("order_created", total=total, currency=currency)))
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY]) == (revenue, currency)
    assert type(event[c.REVENUE]) is type(revenue)


@pytest.mark.parametrize("status", ["pending", "failed", "fraudulent"])
def test_unpaid_orders_are_not_purchases(provider, delivery, deliver, sample, status):
    assert deliver(provider, delivery(sample("order_created", status=status))) == []


def test_renewal_invoice_is_a_renewal_purchase_keyed_apart_from_orders(
    provider, delivery, deliver, sample, settings, rendered
):
    purchase, renewal = deliver(provider, delivery(sample("subscription_payment_success")))
    assert (purchase.key, purchase.time) == ("lemonsqueezy:payment:invoice-1", 1674044184)  # order 1 is another object
    assert purchase.properties == {c.PURCHASE_TYPE: c.SUBSCRIPTION_RENEWAL, c.SUBSCRIPTION_ID: "1"}
    assert (renewal.key, renewal.event, renewal.money) == (
        "lemonsqueezy:subscription-renewal:invoice-1",
        c.SUBSCRIPTION_RENEWED,
        purchase.money,
    )
    assert rendered(purchase, settings)[c.REVENUE] == 9.99


def test_initial_invoice_is_left_to_its_order(provider, delivery, deliver, sample):
    assert deliver(provider, delivery(sample("subscription_payment_success", billing_reason="initial"))) == []


def test_plan_change_invoice_is_a_subscription_update(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample("subscription_payment_success", billing_reason="updated")))
    assert fact.properties[c.PURCHASE_TYPE] == c.SUBSCRIPTION_UPDATE


def test_refunded_order_is_a_refund_of_the_refunded_amount(provider, delivery, deliver, sample, settings, rendered):
    [fact] = deliver(provider, delivery(sample("order_refunded")))
    assert (fact.key, fact.event, fact.time) == ("lemonsqueezy:refund:order-1", c.REFUND_ISSUED, 1629453600)
    assert fact.identity_from == ()  # custom data names the user
    assert fact.profile is not None and fact.profile.revenue == -fact.money
    assert (rendered(fact, settings)[c.REVENUE], fact.money.currency) == (11.99, "USD")


def test_partial_refund_counts_its_amount_and_uses_updated_at(provider, delivery, deliver, sample):
    body = sample("order_refunded", refunded_amount=100, status="paid", refunded=False, refunded_at=None)
    [fact] = deliver(provider, delivery(body))
    assert (fact.money.minor, fact.time) == (100, 1629453600)


def test_refund_without_custom_data_takes_the_orders_buyer(provider, delivery, deliver, sample):
    body = sample("order_refunded")
    del body["meta"]["custom_data"]
    [fact] = deliver(provider, delivery(body))
    assert fact.identity_from == ("lemonsqueezy:payment-ref:order-1",)
    assert fact.identity.customer == "1"


def test_refunded_renewal_invoice_is_a_refund_and_the_initial_one_is_left_to_its_order(
    provider, delivery, deliver, sample
):
    refunded = {"refunded_amount": 999, "refunded": True, "refunded_at": "2023-01-20T00:00:00.000000Z"}
    body = sample("subscription_payment_success", {"event_name": "subscription_payment_refunded"}, **refunded)
    [fact] = deliver(provider, delivery(body))
    assert (fact.key, fact.money.minor) == ("lemonsqueezy:refund:invoice-1", 999)
    initial = sample(
        "subscription_payment_success",
        {"event_name": "subscription_payment_refunded"},
        billing_reason="initial",
        **refunded,
    )
    assert deliver(provider, delivery(initial)) == []


def test_created_subscription_starts(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample("subscription_created")))
    assert (fact.key, fact.event, fact.time) == (
        "lemonsqueezy:subscription-start:1",
        c.SUBSCRIPTION_STARTED,
        1628689647,
    )
    assert fact.properties == {
        c.SUBSCRIPTION_ID: "1",
        c.STATUS: "active",
        c.PLAN: "Example Product - Example Variant",
        c.PRICE: "1",
        c.QUANTITY: 5,
    }
    assert fact.identity == Identity(user_id="usr_42", customer="1")


def test_trial_subscription_starts_trialing(provider, delivery, deliver, sample):
    [fact] = deliver(
        provider,
        delivery(sample("subscription_created", status="on_trial", trial_ends_at="2021-08-25T13:47:27.000000Z")),
    )
    assert (fact.properties[c.STATUS], fact.properties[c.TRIAL_END]) == ("trialing", "2021-08-25T13:47:27Z")


def test_cancelled_subscription_is_a_scheduled_cancellation(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample("subscription_cancelled")))
    assert (fact.key, fact.event, fact.time) == (
        "lemonsqueezy:subscription-cancel-scheduled:1:1666253700",
        c.SUBSCRIPTION_CANCELLATION_SCHEDULED,
        1666253700,
    )
    assert fact.properties == {c.SUBSCRIPTION_ID: "1", c.CANCEL_AT: "2022-11-12T00:00:00Z"}


def test_resumed_subscription_is_reactivated(provider, delivery, deliver, sample):
    body = sample(
        "subscription_cancelled",
        {"event_name": "subscription_resumed"},
        status="active",
        ends_at=None,
        updated_at="2022-10-21T08:15:00.000000Z",
    )
    [fact] = deliver(provider, delivery(body))
    assert (fact.key, fact.event) == ("lemonsqueezy:subscription-reactivated:1:1666340100", c.SUBSCRIPTION_REACTIVATED)


def test_expired_subscription_ends_at_ends_at(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample("subscription_expired")))
    assert (fact.key, fact.event, fact.time) == (
        "lemonsqueezy:subscription-end:1",
        c.SUBSCRIPTION_CANCELLED,
        1668211200,
    )
    assert fact.profile is not None and fact.profile.status == "canceled"


@pytest.mark.parametrize("name", ["order_created", "subscription_payment_success", "order_refunded"])
def test_a_redelivered_webhook_gives_identical_facts(provider, delivery, deliver, sample, name):
    first = deliver(provider, delivery(sample(name)))
    retry = deliver(provider, delivery(sample(name), received_at_ms=RECEIVED_MS + 25_000))
    assert first == retry and first


def test_only_mapped_events_are_relevant(provider):
    assert provider.is_relevant("order_created")
    assert not provider.is_relevant("license_key_created")
