"""Paddle Billing: Paddle-Signature (published SDK vectors), the ts window against API Gateway's time, and the mapping."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Identity
from revenue_webhooks.providers import get_provider
from revenue_webhooks.providers.base import PayloadInvalid, SignatureInvalid, TimestampOutOfTolerance
from revenue_webhooks.providers.paddle import PaddleProvider, create

# Published in PaddleHQ/paddle-python-sdk tests (see tests/fixtures/paddle/SOURCES.md).
SDK_SECRET = "pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_GrOWLNef+vmtjJYq4mSnHNzvc8uWoJ1I"
STANDARD_HEADER = "ts=1710498758;h1=558bf93944dbeb4790c7a8af6cb2ea435c8ca9c8396aafc1a4e37424ac132744"
SPECIAL_CHARS_HEADER = "ts=1710498288;h1=38219b3ba1578184e625c29d201a27cd25bd69e2ec9c3ab87dcb90d87ff73a41"
ROTATION_HEADER = "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"
ROTATION_SECRET = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh"

SECRET = "pdl_ntfset_01hv00000000000000000000_testsecret"
TS = 1712917130  # two seconds after the sample transaction was billed
BILLED_AT = 1712917128  # 2024-04-12T10:18:48.294633Z
TXN = "txn_01hv8wptq8987qeep44cyrewp9"


def signature(body: bytes, ts: int = TS, secret: str = SECRET) -> str:
    return f"ts={ts};h1=" + hmac.new(secret.encode(), f"{ts}:".encode() + body, hashlib.sha256).hexdigest()


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def provider(settings) -> PaddleProvider:
    return create(settings)


@pytest.fixture
def published(fixture_bytes):
    """An SDK fixture file as Paddle sent it: the files carry one trailing newline the signature does not cover."""

    def read(name: str) -> bytes:
        raw = fixture_bytes(f"paddle/{name}")
        return raw[:-1] if raw.endswith(b"\n") else raw

    return read


@pytest.fixture
def notification(fixture_json):
    """A full notification envelope around an SDK `data_*.json` entity."""

    def make(event_type: str, data: Any = None, *, event_id: str = "evt_01hv8x2a6sdtdn0rnhh4j3xgkp", **entity: Any):
        if data is None:
            data = fixture_json(f"paddle/data_{event_type}.json")
        return {
            "event_id": event_id,
            "event_type": event_type,
            "occurred_at": "2024-04-12T10:18:49.621022Z",
            "notification_id": "ntf_01hv8x2af0hmkbmq7mz9kmzm7e",
            "data": {**data, **entity},
        }

    return make


@pytest.fixture
def delivery(make_request):
    def make(
        body: Any,
        *,
        ts: int = TS,
        secret: str = SECRET,
        received_at_ms: int = TS * 1000 + 400,
        header: str | None = None,
    ):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Paddle-Signature": header if header is not None else signature(raw, ts, secret)}
        return make_request(raw, headers, received_at_ms=received_at_ms, route="paddle")

    return make


# --- verification: the published vectors --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "header"),
    [("signed_standard_payload.json", STANDARD_HEADER), ("signed_special_chars_payload.json", SPECIAL_CHARS_HEADER)],
)
def test_published_sdk_vectors_verify(provider, delivery, published, name, header):
    ts = int(header.split(";")[0][3:])
    provider.verify(delivery(published(name), header=header, received_at_ms=ts * 1000 + 1200), [SDK_SECRET])


def test_published_rotation_vector_finds_the_one_valid_h1_among_secrets(provider, delivery):
    request = delivery(b"hello-world", header=ROTATION_HEADER, received_at_ms=1696195954_000)
    provider.verify(request, ["pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_other", ROTATION_SECRET, "pdl_ntfset_unrelated"])


def test_published_vector_fails_with_the_file_newline_left_on(provider, delivery, fixture_bytes):
    with pytest.raises(SignatureInvalid):
        provider.verify(
            delivery(
                fixture_bytes("paddle/signed_standard_payload.json"),
                header=STANDARD_HEADER,
                received_at_ms=1710498758_000,
            ),
            [SDK_SECRET],
        )


def test_published_vector_is_stale_when_received_later(provider, delivery, published):
    """Verified against API Gateway's request time: the 2024 vector received today would be a replay."""
    request = delivery(
        published("signed_standard_payload.json"), header=STANDARD_HEADER, received_at_ms=1710498758_000 + 301_000
    )
    with pytest.raises(TimestampOutOfTolerance, match="older"):
        provider.verify(request, [SDK_SECRET])


# --- verification: our own signatures over the sample bodies -------------------------------------


def test_signature_over_a_sample_transaction_is_accepted(provider, delivery, notification):
    provider.verify(delivery(notification("transaction.completed")), [SECRET])


def test_tampered_body_is_rejected(provider, delivery, notification, make_request):
    signed = delivery(notification("transaction.completed"))
    tampered = signed.body.replace(b'"grand_total": "65215"', b'"grand_total": "100"')
    assert tampered != signed.body
    with pytest.raises(SignatureInvalid):
        provider.verify(
            make_request(tampered, dict(signed.headers), received_at_ms=signed.received_at_ms, route="paddle"), [SECRET]
        )


def test_tampered_timestamp_is_rejected(provider, delivery, notification):
    body = json.dumps(notification("transaction.completed")).encode()
    forged = signature(body, TS).replace(f"ts={TS}", f"ts={TS + 100}")
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(body, header=forged, received_at_ms=(TS + 100) * 1000), [SECRET])


def test_wrong_secret_is_rejected(provider, delivery, notification):
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(notification("transaction.completed")), ["pdl_ntfset_wrong"])


def test_any_of_several_rotated_secrets_is_accepted(provider, delivery, notification):
    body = notification("transaction.completed")
    provider.verify(delivery(body, secret="pdl_ntfset_new"), ["pdl_ntfset_old", "pdl_ntfset_new"])
    provider.verify(delivery(body, secret="pdl_ntfset_old"), ["pdl_ntfset_old", "pdl_ntfset_new"])


def test_several_h1_entries_are_each_tried(provider, delivery, notification):
    body = json.dumps(notification("transaction.completed")).encode()
    good = signature(body).split(";h1=")[1]
    provider.verify(delivery(body, header=f"ts={TS};h1={'0' * 64};h1={good}"), [SECRET])


@pytest.mark.parametrize("header", ["", "h1=abc", f"ts={TS}", f"ts=soon;h1={'a' * 64}", "garbage"])
def test_missing_or_malformed_signature_header_is_rejected(provider, delivery, header):
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(b"{}", header=header), [SECRET])


@pytest.mark.parametrize(
    ("received_s", "accepted"), [(TS + 300, True), (TS + 301, False), (TS - 60, True), (TS - 61, False)]
)
def test_timestamp_window_is_measured_from_the_request_time(provider, delivery, notification, received_s, accepted):
    request = delivery(notification("transaction.completed"), received_at_ms=received_s * 1000)
    if accepted:
        provider.verify(request, [SECRET])
    else:
        with pytest.raises(TimestampOutOfTolerance):
            provider.verify(request, [SECRET])


def test_tolerance_follows_configuration(make_settings, delivery, notification):
    provider = create(make_settings(SIGNATURE_TOLERANCE_SECONDS="3600", FUTURE_SKEW_SECONDS="0"))
    provider.verify(delivery(notification("transaction.completed"), received_at_ms=(TS + 3600) * 1000), [SECRET])
    with pytest.raises(TimestampOutOfTolerance):
        provider.verify(delivery(notification("transaction.completed"), received_at_ms=(TS - 1) * 1000), [SECRET])


# --- parsing ----------------------------------------------------------------------------------


def test_parse_reads_the_event_id_and_type(provider, delivery, published):
    parsed = provider.parse(delivery(published("signed_standard_payload.json"), header=STANDARD_HEADER))
    assert (parsed.event_id, parsed.event_type, parsed.livemode) == (
        "evt_01hs0tqfme2xwb2hvwv87p8y3w",
        "customer.created",
        None,
    )
    assert not provider.is_relevant(parsed.event_type)


def test_parse_refuses_a_body_without_event_fields(provider, delivery):
    with pytest.raises(PayloadInvalid):
        provider.parse(delivery({"data": {}}))


def test_registry_serves_the_paddle_route(settings):
    assert isinstance(get_provider("paddle", settings), PaddleProvider)


# --- mapping ----------------------------------------------------------------------------------


def test_completed_checkout_transaction_is_a_subscriptions_first_purchase(
    provider, delivery, deliver, notification, settings, rendered
):
    [fact] = deliver(provider, delivery(notification("transaction.completed")))
    assert (fact.key, fact.event, fact.time) == (f"paddle:payment:{TXN}", c.PURCHASE_COMPLETED, BILLED_AT)
    assert fact.properties == {
        c.PURCHASE_TYPE: c.SUBSCRIPTION_INITIAL,
        c.SUBSCRIPTION_ID: "sub_01hv8x29kz0t586xy6zn1a62ny",
        c.PLAN: "AeroEdit Pro",
        c.PRICE: "pri_01gsz8x8sawmvhz1pv30nge1ke",
        c.INTERVAL: "month",
    }
    assert fact.identity == Identity(customer="ctm_01hv6y1jedq4p1n0yqn5ba3ky4")
    assert fact.links == (f"paddle:payment-ref:{TXN}",)
    assert fact.profile is not None and (fact.profile.purchases, fact.profile.plan) == (1, "AeroEdit Pro")
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY], event[c.ORDER_ID]) == (652.15, "USD", TXN)


def test_recurring_transaction_is_a_renewal(provider, delivery, deliver, notification):
    purchase, renewal = deliver(
        provider, delivery(notification("transaction.completed", origin="subscription_recurring"))
    )
    assert purchase.properties[c.PURCHASE_TYPE] == c.SUBSCRIPTION_RENEWAL
    assert (renewal.key, renewal.event, renewal.time, renewal.money) == (
        f"paddle:subscription-renewal:{TXN}",
        c.SUBSCRIPTION_RENEWED,
        BILLED_AT,
        purchase.money,
    )


@pytest.mark.parametrize(
    ("origin", "subscription", "purchase_type"),
    [
        ("web", None, c.ONE_TIME),
        ("api", None, c.ONE_TIME),
        ("subscription_update", "sub_1", c.SUBSCRIPTION_UPDATE),
        ("subscription_charge", "sub_1", c.ONE_TIME),
    ],
)
def test_origin_sets_the_purchase_type(provider, delivery, deliver, notification, origin, subscription, purchase_type):
    [fact] = deliver(
        provider, delivery(notification("transaction.completed", origin=origin, subscription_id=subscription))
    )
    assert fact.properties[c.PURCHASE_TYPE] == purchase_type


@pytest.mark.parametrize(
    ("grand_total", "currency", "revenue"),
    [("65215", "USD", 652.15), ("1200", "JPY", 1200), ("5125", "KWD", 5.125), ("100", "EUR", 1)],
)
def test_revenue_is_grand_total_in_minor_units_of_its_currency(
    provider, delivery, deliver, notification, fixture_json, settings, rendered, grand_total, currency, revenue
):
    data = fixture_json("paddle/data_transaction.completed.json")
    data["details"]["totals"].update({"grand_total": grand_total, "currency_code": currency})
    data["currency_code"] = currency
    [fact] = deliver(provider, delivery(notification("transaction.completed", data)))
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY]) == (revenue, currency)
    assert type(event[c.REVENUE]) is type(revenue)


def test_zero_amount_transactions_are_not_purchases(provider, delivery, deliver, notification, fixture_json):
    data = fixture_json("paddle/data_transaction.completed.json")
    data["details"]["totals"]["grand_total"] = "0"
    assert (
        deliver(
            provider, delivery(notification("transaction.completed", data, origin="subscription_payment_method_change"))
        )
        == []
    )


def test_custom_data_names_the_app_user(provider, delivery, deliver, notification):
    custom = {"mixpanel_distinct_id": "user-7", "mixpanel_device_id": "dev-1", "mixpanel_ip": "198.51.100.4"}
    [fact] = deliver(provider, delivery(notification("transaction.completed", custom_data=custom)))
    assert fact.identity == Identity(user_id="user-7", device_id="dev-1", customer="ctm_01hv6y1jedq4p1n0yqn5ba3ky4")
    assert fact.ip == "198.51.100.4"


def test_created_subscription_starts_at_started_at(provider, delivery, deliver, notification):
    [fact] = deliver(provider, delivery(notification("subscription.created")))
    assert (fact.key, fact.event, fact.time) == (
        "paddle:subscription-start:sub_01hv8x29kz0t586xy6zn1a62ny",
        c.SUBSCRIPTION_STARTED,
        1712917127,
    )
    assert fact.properties == {
        c.SUBSCRIPTION_ID: "sub_01hv8x29kz0t586xy6zn1a62ny",
        c.STATUS: "active",
        c.PLAN: "AeroEdit Pro",
        c.PRICE: "pri_01gsz8x8sawmvhz1pv30nge1ke",
        c.INTERVAL: "month",
        c.QUANTITY: 10,
    }


def test_scheduled_cancellation_is_read_from_an_update_and_repeats_collapse(provider, delivery, deliver, notification):
    scheduled = {"action": "cancel", "effective_at": "2024-05-12T10:18:47.635628Z", "resume_at": None}
    data = notification("subscription.created")["data"]
    [first] = deliver(provider, delivery(notification("subscription.updated", data, scheduled_change=scheduled)))
    [later] = deliver(
        provider,
        delivery(
            notification(
                "subscription.updated", data, event_id="evt_later", scheduled_change=scheduled, custom_data={"x": 1}
            )
        ),
    )
    assert first.key == later.key == "paddle:subscription-cancel-scheduled:sub_01hv8x29kz0t586xy6zn1a62ny:1715509127"
    assert first.event == c.SUBSCRIPTION_CANCELLATION_SCHEDULED
    assert first.properties[c.CANCEL_AT] == "2024-05-12T10:18:47Z"


def test_other_subscription_updates_mean_nothing(provider, delivery, deliver, notification):
    data = notification("subscription.created")["data"]
    assert deliver(provider, delivery(notification("subscription.updated", data))) == []


def test_canceled_subscription_ends_at_canceled_at(provider, delivery, deliver, notification):
    [fact] = deliver(provider, delivery(notification("subscription.canceled")))
    assert (fact.key, fact.event, fact.time) == (
        "paddle:subscription-end:sub_01hv8x29kz0t586xy6zn1a62ny",
        c.SUBSCRIPTION_CANCELLED,
        1712921094,
    )
    assert fact.profile is not None and fact.profile.status == "canceled"


def test_refund_waits_for_paddles_approval(provider, delivery, deliver, notification):
    assert deliver(provider, delivery(notification("adjustment.created"))) == []  # pending_approval


def test_approved_refund_adjustment_is_a_refund_keyed_by_adjustment(
    provider, delivery, deliver, notification, settings, rendered
):
    [fact] = deliver(provider, delivery(notification("adjustment.updated", status="approved")))
    assert (fact.key, fact.event, fact.time) == (
        "paddle:refund:adj_01hvgf2s84dr6reszzg29zbvcm",
        c.REFUND_ISSUED,
        1713170900,
    )
    assert fact.identity_from == ("paddle:payment-ref:txn_01hvcc93znj3mpqt1tenkjb04y",)
    assert fact.identity.customer == "ctm_01hv6y1jedq4p1n0yqn5ba3ky4"
    assert fact.properties == {c.REFUND_ID: "adj_01hvgf2s84dr6reszzg29zbvcm", c.REASON: "error"}
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY], event[c.ORDER_ID]) == (1, "USD", "txn_01hvcc93znj3mpqt1tenkjb04y")


def test_created_and_updated_adjustments_give_the_same_refund(provider, delivery, deliver, notification):
    created = deliver(provider, delivery(notification("adjustment.created", status="approved")))
    updated = deliver(provider, delivery(notification("adjustment.updated", event_id="evt_2", status="approved")))
    assert created == updated and created


@pytest.mark.parametrize("action", ["credit", "chargeback"])
def test_other_adjustments_are_not_refunds(provider, delivery, deliver, notification, action):
    assert deliver(provider, delivery(notification("adjustment.created", status="approved", action=action))) == []


@pytest.mark.parametrize("event_type", ["transaction.completed", "subscription.canceled"])
def test_a_redelivered_webhook_gives_identical_facts(provider, delivery, deliver, notification, event_type):
    body = notification(event_type)
    first = deliver(provider, delivery(body))
    retry = deliver(provider, delivery(body, ts=TS + 600, received_at_ms=(TS + 601) * 1000))
    assert first == retry and first


def failed_payment(fixture_json, *attempts: dict[str, Any]) -> dict[str, Any]:
    """The SDK's transaction entity as `transaction.payment_failed` carries it: not paid, its failed attempts."""
    txn = fixture_json("paddle/data_transaction.completed.json")
    declined = next(p for p in txn["payments"] if p["status"] == "error")
    return {**txn, "status": "ready", "billed_at": None, "payments": list(attempts) or [declined]}


def test_a_failed_payment_attempt_is_one_payment_failed(
    provider, delivery, deliver, notification, fixture_json, settings, rendered
):
    data = failed_payment(fixture_json)
    [fact] = deliver(provider, delivery(notification("transaction.payment_failed", data)))
    attempt = data["payments"][0]
    assert (fact.key, fact.event) == (f"paddle:payment-failed:{TXN}:{attempt['payment_attempt_id']}", c.PAYMENT_FAILED)
    assert fact.time == 1712916957  # the attempt's created_at, 2024-04-12T10:15:57.888183Z
    assert fact.properties == {c.ATTEMPT: 1, c.REASON: "declined", c.SUBSCRIPTION_ID: "sub_01hv8x29kz0t586xy6zn1a62ny"}
    assert fact.identity == Identity(customer="ctm_01hv6y1jedq4p1n0yqn5ba3ky4")
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY], event[c.ORDER_ID]) == (652.15, "USD", TXN)


def test_each_failed_attempt_is_its_own_payment_failed_and_a_redelivery_the_same(
    provider, delivery, deliver, notification, fixture_json
):
    first = failed_payment(fixture_json)["payments"][0]
    second = {**first, "payment_attempt_id": "a2", "created_at": "2024-04-13T10:00:00Z", "error_code": "expired_card"}
    [one] = deliver(provider, delivery(notification("transaction.payment_failed", failed_payment(fixture_json, first))))
    both = notification("transaction.payment_failed", failed_payment(fixture_json, second, first), event_id="evt_2")
    [two] = deliver(provider, delivery(both))
    assert one.key != two.key and two.key.endswith(":a2")
    assert (two.properties[c.ATTEMPT], two.properties[c.REASON]) == (2, "expired_card")
    again = deliver(provider, delivery(both))
    assert again == [two]


def test_a_payment_failed_notification_without_a_failed_attempt_means_nothing(
    provider, delivery, deliver, notification, fixture_json
):
    txn = fixture_json("paddle/data_transaction.completed.json")
    captured = [p for p in txn["payments"] if p["status"] == "captured"]
    data = {**txn, "payments": captured}
    assert deliver(provider, delivery(notification("transaction.payment_failed", data))) == []
