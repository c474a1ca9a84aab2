"""RevenueCat: the static Authorization value, identity from app user ids, and the mapping of RevenueCat's samples."""

from __future__ import annotations

import json
from typing import Any

import pytest
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Identity
from revenue_webhooks.providers import get_provider
from revenue_webhooks.providers.base import PayloadInvalid, SignatureInvalid
from revenue_webhooks.providers.revenuecat import RevenueCatProvider, create

AUTHORIZATION = "Bearer rc-4f9a1c2e7b"
RECEIVED_MS = 1_658_726_380_000
ANONYMOUS_ORIGINAL = "$RCAnonymousID:87c6049c58069238dce29853916d624c"


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def provider(settings) -> RevenueCatProvider:
    return create(settings)


@pytest.fixture
def sample(revenuecat_sample):
    """RevenueCat's published sample N, with `event` fields changed (conftest.py)."""
    return revenuecat_sample


@pytest.fixture
def delivery(make_request):
    def make(body: Any, *, authorization: str | None = AUTHORIZATION, received_at_ms: int = RECEIVED_MS):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        return make_request(raw, headers, received_at_ms=received_at_ms, route="revenuecat")

    return make


# --- verification -----------------------------------------------------------------------------


def test_the_configured_authorization_value_is_accepted(provider, delivery, fixture_bytes):
    provider.verify(delivery(fixture_bytes("revenuecat/sample-events_1.json")), [AUTHORIZATION])


@pytest.mark.parametrize(
    "sent", ["Bearer rc-4f9a1c2e7", "rc-4f9a1c2e7b", "bearer rc-4f9a1c2e7b", "Bearer rc-4f9a1c2e7bX"]
)
def test_any_other_value_is_rejected(provider, delivery, fixture_bytes, sent):
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(fixture_bytes("revenuecat/sample-events_1.json"), authorization=sent), [AUTHORIZATION])


def test_missing_authorization_is_rejected(provider, delivery, fixture_bytes):
    with pytest.raises(SignatureInvalid, match="missing"):
        provider.verify(delivery(fixture_bytes("revenuecat/sample-events_1.json"), authorization=None), [AUTHORIZATION])


def test_no_configured_value_rejects_everything(provider, delivery, fixture_bytes):
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(fixture_bytes("revenuecat/sample-events_1.json")), [])


@pytest.mark.parametrize("sent", ["Bearer old-value", "Bearer new-value"])
def test_any_of_several_rotated_values_is_accepted(provider, delivery, fixture_bytes, sent):
    provider.verify(
        delivery(fixture_bytes("revenuecat/sample-events_1.json"), authorization=sent),
        ["Bearer old-value", "Bearer new-value"],
    )


def test_surrounding_whitespace_is_not_part_of_the_value(provider, delivery, fixture_bytes):
    provider.verify(
        delivery(fixture_bytes("revenuecat/sample-events_1.json"), authorization=f" {AUTHORIZATION} "),
        [f"{AUTHORIZATION}\n"],
    )


# --- parsing ----------------------------------------------------------------------------------


def test_parse_reads_the_event_id_type_and_environment(provider, delivery, sample, make_settings):
    parsed = provider.parse(delivery(sample(1)))
    assert (parsed.event_id, parsed.event_type, parsed.livemode) == (
        "12345678-1234-1234-1234-123456789012",
        "INITIAL_PURCHASE",
        True,
    )
    sandbox = provider.parse(delivery(sample(1, environment="SANDBOX")))
    assert sandbox.livemode is False
    assert not make_settings(MODE="live").accepts_mode(sandbox.livemode)
    assert make_settings(MODE="test").accepts_mode(sandbox.livemode)


def test_parse_refuses_a_body_without_an_event(provider, delivery):
    with pytest.raises(PayloadInvalid):
        provider.parse(delivery({"api_version": "1.0"}))


def test_registry_serves_the_revenuecat_route(settings):
    assert isinstance(get_provider("revenuecat", settings), RevenueCatProvider)


def test_only_mapped_types_are_relevant(provider):
    assert provider.is_relevant("RENEWAL")
    assert not provider.is_relevant("TEST")
    assert not provider.is_relevant("SUBSCRIPTION_PAUSED")


# --- mapping ----------------------------------------------------------------------------------


def test_initial_purchase_is_a_first_purchase_and_a_start(provider, delivery, deliver, sample, settings, rendered):
    purchase, started = deliver(provider, delivery(sample(1)))
    assert (purchase.key, purchase.event, purchase.time) == (
        "revenuecat:payment:123456789012345",
        c.PURCHASE_COMPLETED,
        1658726374,  # purchased_at_ms
    )
    assert purchase.properties == {
        c.PURCHASE_TYPE: c.SUBSCRIPTION_INITIAL,
        c.SUBSCRIPTION_ID: "123456789012345",
        c.PLAN: "com.subscription.weekly",
    }
    assert purchase.identity == Identity(
        user_id="1234567890", device_id=ANONYMOUS_ORIGINAL, customer=ANONYMOUS_ORIGINAL
    )
    event = rendered(purchase, settings)
    assert (event[c.REVENUE], event[c.CURRENCY], event[c.ORDER_ID]) == (4.99, "USD", "123456789012345")
    assert (started.key, started.event, started.properties[c.STATUS]) == (
        "revenuecat:subscription-start:123456789012345",
        c.SUBSCRIPTION_STARTED,
        "active",
    )


def test_trial_start_collects_nothing_and_starts_trialing(provider, delivery, deliver, sample):
    [started] = deliver(provider, delivery(sample(11)))
    assert started.event == c.SUBSCRIPTION_STARTED
    assert (started.properties[c.STATUS], started.properties[c.TRIAL_END]) == ("trialing", "2022-07-28T07:08:37Z")


def test_renewal_is_a_renewal_purchase_in_the_purchased_currency(
    provider, delivery, deliver, sample, settings, rendered
):
    purchase, renewal = deliver(provider, delivery(sample(2)))
    assert purchase.properties[c.PURCHASE_TYPE] == c.SUBSCRIPTION_RENEWAL
    assert (rendered(purchase, settings)[c.REVENUE], purchase.money.currency) == (7.99, "EUR")  # not the USD `price`
    assert (renewal.key, renewal.event, renewal.time) == (
        "revenuecat:subscription-renewal:123456789012345",
        c.SUBSCRIPTION_RENEWED,
        1658755132,
    )


def test_non_renewing_purchase_is_one_time(provider, delivery, deliver, sample, settings, rendered):
    [fact] = deliver(provider, delivery(sample(5)))
    assert fact.properties == {c.PURCHASE_TYPE: c.ONE_TIME, c.PLAN: "2100_tokens"}
    assert (rendered(fact, settings)[c.REVENUE], fact.money.currency) == (32.99, "CAD")


@pytest.mark.parametrize(
    ("price", "currency", "revenue"),
    [
        (1200.0, "JPY", 1200),
        (1200, "JPY", 1200),
        (1.25, "KWD", 1.25),
        (5.125, "KWD", 5.125),
        (0.9900000000000001, "USD", 0.99),
    ],
)
def test_revenue_is_the_price_in_major_units_of_the_purchased_currency(
    provider, delivery, deliver, sample, settings, rendered, price, currency, revenue
):
    [fact] = deliver(provider, delivery(sample(5, price_in_purchased_currency=price, currency=currency)))
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY]) == (revenue, currency)
    assert type(event[c.REVENUE]) is type(revenue)


def test_customer_support_cancellation_with_negative_price_is_a_refund(
    provider, delivery, deliver, sample, settings, rendered
):
    [fact] = deliver(provider, delivery(sample(9)))
    assert (fact.key, fact.event, fact.time) == ("revenuecat:refund:100000000000000", c.REFUND_ISSUED, 1601337615)
    assert fact.identity.user_id == "user_1234"  # the anonymous app user's one identified alias
    assert fact.identity_from == ()  # the event names its user
    assert fact.profile is not None and fact.profile.revenue == -fact.money
    assert (rendered(fact, settings)[c.REVENUE], fact.money.currency) == (9.99, "USD")


def test_unsubscribe_cancellation_is_a_scheduled_cancellation(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample(3)))
    assert (fact.key, fact.event, fact.time) == (
        "revenuecat:subscription-cancel-scheduled:100000000000000:12345678-ABCD-1234-ABCD-12345678912",
        c.SUBSCRIPTION_CANCELLATION_SCHEDULED,
        1601337615,
    )
    assert fact.properties == {
        c.SUBSCRIPTION_ID: "100000000000000",
        c.CANCEL_AT: "2020-10-06T22:16:06Z",
        c.REASON: "UNSUBSCRIBE",
    }
    anonymous = "$RCAnonymousID:12345678-1234-1234-1234-123456789123"
    assert fact.identity == Identity(
        user_id="user_1234", device_id=anonymous, customer="$RCAnonymousID:12345678-1234-ABCD-1234-123456789123"
    )


def test_anonymous_user_without_an_identified_alias_is_only_a_device(provider, delivery, deliver, sample):
    [fact] = deliver(
        provider,
        delivery(
            sample(
                12,
                app_user_id="$RCAnonymousID:abc",
                aliases=["$RCAnonymousID:abc"],
                original_app_user_id="$RCAnonymousID:abc",
            )
        ),
    )
    assert fact.identity == Identity(user_id=None, device_id="$RCAnonymousID:abc", customer="$RCAnonymousID:abc")


def test_ambiguous_identified_aliases_name_nobody(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample(3, aliases=["user_a", "user_b"])))
    assert fact.identity.user_id is None


def test_mixpanel_distinct_id_attribute_wins(provider, delivery, deliver, sample):
    attributes = {"$mixpanelDistinctId": {"value": "mp-77", "updated_at_ms": 1}}
    purchase, _ = deliver(provider, delivery(sample(1, subscriber_attributes=attributes)))
    assert purchase.identity.user_id == "mp-77"


def test_expiration_ends_the_subscription_at_its_expiry(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample(13)))
    assert (fact.key, fact.event, fact.time) == (
        "revenuecat:subscription-end:123456789012345:123456789012345",
        c.SUBSCRIPTION_CANCELLED,
        1697451423,
    )
    assert fact.properties[c.REASON] == "UNSUBSCRIBE"
    assert fact.profile is not None and fact.profile.status == "canceled"


def test_uncancellation_reactivates(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample(4)))
    assert (fact.event, fact.time) == (c.SUBSCRIPTION_REACTIVATED, 1663982135)


def test_product_change_changes_the_plan(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample(10)))
    assert fact.event == c.SUBSCRIPTION_CHANGED
    assert (fact.properties[c.FROM_PLAN], fact.properties[c.TO_PLAN]) == (
        "com.revenuecat.myapp.monthly",
        "com.revenuecat.myapp.yearly",
    )
    assert fact.profile is not None and fact.profile.plan == "com.revenuecat.myapp.yearly"


def test_billing_issue_is_a_payment_failure(provider, delivery, deliver, sample):
    [fact] = deliver(provider, delivery(sample(7)))
    assert (fact.key, fact.event, fact.time, fact.money) == (
        "revenuecat:payment-failed:100000000000000:12345678-1234-1234-1234-12345678912",
        c.PAYMENT_FAILED,
        1601337601,
        None,
    )


@pytest.mark.parametrize("number", [1, 2, 9, 13])
def test_a_redelivered_webhook_gives_identical_facts(provider, delivery, deliver, sample, number):
    first = deliver(provider, delivery(sample(number)))
    retry = deliver(provider, delivery(sample(number), received_at_ms=RECEIVED_MS + 300_000))
    assert first == retry and first
