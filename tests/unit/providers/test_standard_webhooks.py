"""Standard Webhooks: the published vector, the window against API Gateway's time, and the configured mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from revenue_webhooks import providers
from revenue_webhooks.config import ConfigError, Settings
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Identity
from revenue_webhooks.providers import get_provider
from revenue_webhooks.providers.base import PayloadInvalid, SignatureInvalid, TimestampOutOfTolerance
from revenue_webhooks.providers.standard_webhooks import StandardWebhooksProvider, create, validate_mapping
from standardwebhooks import Webhook, WebhookVerificationError

# standard-webhooks/standard-webhooks libraries/go/webhook_test.go (see tests/fixtures/standard-webhooks/SOURCES.md).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(b"acme-test-signing-key-32-bytes!!").decode()
TS = 1667507175  # five seconds after the example payload's own timestamp

# The worked example of docs/providers.md.
ACME = {
    "events": {
        "payment.succeeded": {
            "event": "Purchase Completed",
            "time": "timestamp",
            "order_id": "data.id",
            "user_id": "data.customer.external_id",
            "customer_id": "data.customer.id",
            "amount": "data.amount",
            "amount_unit": "minor",
            "currency": "data.currency",
            "livemode": "data.livemode",
        },
        "invoice.paid": [
            {
                "event": "Purchase Completed",
                "time": "timestamp",
                "order_id": "data.invoice_id",
                "subscription_id": "data.subscription_id",
                "user_id": "data.customer.external_id",
                "amount": "data.total",
                "amount_unit": "major",
                "currency": "data.currency",
                "purchase_type": "subscription_renewal",
                "plan": "data.plan",
                "when": {"data.billing_reason": "renewal"},
            },
            {
                "event": "Subscription Renewed",
                "time": "timestamp",
                "order_id": "data.invoice_id",
                "subscription_id": "data.subscription_id",
                "user_id": "data.customer.external_id",
                "amount": "data.total",
                "amount_unit": "major",
                "currency": "data.currency",
                "when": {"data.billing_reason": "renewal"},
            },
        ],
        "refund.created": {
            "event": "Refund Issued",
            "time": "timestamp",
            "refund_id": "data.id",
            "order_id": "data.payment_id",
            "amount": "data.amount",
            "amount_unit": "minor",
            "currency": "data.currency",
            "reason": "data.reason",
        },
        "subscription.canceled": {
            "event": "Subscription Cancelled",
            "time": "data.ended_at",
            "subscription_id": "data.id",
            "customer_id": "data.customer.id",
        },
    }
}


def payment(**data: Any) -> dict[str, Any]:
    body = {
        "id": "pay_2Nf8QpXv",
        "amount": 1999,
        "currency": "usd",
        "livemode": True,
        "customer": {"id": "cus_981", "external_id": "user-42"},
        **data,
    }
    return {"type": "payment.succeeded", "timestamp": "2022-11-03T20:26:10.344522Z", "data": body}


def sign(msg_id: str, ts: int, body: bytes, secret: str = SECRET) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@pytest.fixture
def settings(make_settings):
    return make_settings(STANDARD_WEBHOOKS_MAPPING=json.dumps({"acme": ACME}))


@pytest.fixture
def provider(settings) -> StandardWebhooksProvider:
    return create(settings, "acme")


@pytest.fixture
def delivery(make_request):
    def make(
        body: Any,
        *,
        msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        ts: int = TS,
        secret: str = SECRET,
        signature: str | None = None,
        received_at_ms: int = TS * 1000 + 250,
        prefix: str = "webhook",
    ):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {
            f"{prefix}-id": msg_id,
            f"{prefix}-timestamp": str(ts),
            f"{prefix}-signature": signature if signature is not None else sign(msg_id, ts, raw, secret),
        }
        return make_request(raw, headers, received_at_ms=received_at_ms, route="acme")

    return make


# --- verification -----------------------------------------------------------------------------


def test_published_vector_verifies_at_its_own_request_time(provider, delivery, fixture_bytes):
    body = fixture_bytes("standard-webhooks/test_vector_payload.json")
    request = delivery(
        body, msg_id=VECTOR_ID, ts=VECTOR_TS, signature=VECTOR_SIGNATURE, received_at_ms=VECTOR_TS * 1000
    )
    provider.verify(request, [VECTOR_SECRET])


def test_the_library_verifier_alone_would_refuse_the_vector_by_the_clock(fixture_bytes):
    """Why `Webhook.verify` is not used: it measures the 5-minute window from now, not from the request."""
    headers = {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TS), "webhook-signature": VECTOR_SIGNATURE}
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(VECTOR_SECRET).verify(fixture_bytes("standard-webhooks/test_vector_payload.json"), headers)


@pytest.mark.parametrize(
    ("received_s", "accepted"),
    [(VECTOR_TS + 300, True), (VECTOR_TS + 301, False), (VECTOR_TS - 300, True), (VECTOR_TS - 301, False)],
)
def test_five_minute_window_both_ways_from_the_request_time(provider, delivery, fixture_bytes, received_s, accepted):
    body = fixture_bytes("standard-webhooks/test_vector_payload.json")
    request = delivery(
        body, msg_id=VECTOR_ID, ts=VECTOR_TS, signature=VECTOR_SIGNATURE, received_at_ms=received_s * 1000
    )
    if accepted:
        provider.verify(request, [VECTOR_SECRET])
    else:
        with pytest.raises(TimestampOutOfTolerance):
            provider.verify(request, [VECTOR_SECRET])


def test_signature_over_a_sample_body_is_accepted(provider, delivery):
    provider.verify(delivery(payment()), [SECRET])


def test_tampered_body_is_rejected(provider, delivery, make_request):
    signed = delivery(payment())
    tampered = signed.body.replace(b'"amount": 1999', b'"amount": 1')
    assert tampered != signed.body
    with pytest.raises(SignatureInvalid):
        provider.verify(
            make_request(tampered, dict(signed.headers), received_at_ms=signed.received_at_ms, route="acme"), [SECRET]
        )


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp"])
def test_signed_id_and_timestamp_cannot_be_changed(provider, delivery, make_request, header):
    signed = delivery(payment())
    headers = dict(signed.headers)
    headers[header] = "msg_other" if header == "webhook-id" else str(TS + 1)
    with pytest.raises(SignatureInvalid):
        provider.verify(
            make_request(signed.body, headers, received_at_ms=signed.received_at_ms, route="acme"), [SECRET]
        )


def test_wrong_secret_is_rejected(provider, delivery):
    other = "whsec_" + base64.b64encode(b"another-key").decode()
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(payment()), [other])


def test_any_of_several_rotated_secrets_and_signatures_is_accepted(provider, delivery):
    old, new = SECRET, "whsec_" + base64.b64encode(b"the-rotated-key").decode()
    raw = json.dumps(payment()).encode()
    both = f"{sign('msg_1', TS, raw, old)} {sign('msg_1', TS, raw, new)}"
    provider.verify(delivery(raw, msg_id="msg_1", signature=both), [new])
    provider.verify(delivery(raw, msg_id="msg_1", signature=both), ["whsec_" + base64.b64encode(b"x").decode(), old])


def test_other_signature_versions_and_junk_entries_are_skipped(provider, delivery):
    raw = json.dumps(payment()).encode()
    header = f"v1a,c29tZSBlZDI1NTE5 v1,!!notbase64 nonsense {sign('msg_1', TS, raw)}"
    provider.verify(delivery(raw, msg_id="msg_1", signature=header), [SECRET])
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(raw, msg_id="msg_1", signature="v1a,c29tZSBlZDI1NTE5"), [SECRET])


def test_svix_header_names_are_accepted(provider, delivery):
    provider.verify(delivery(payment(), prefix="svix"), [SECRET])


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_rejected(provider, delivery, make_request, missing):
    signed = delivery(payment())
    headers = {name: value for name, value in signed.headers.items() if name != missing}
    with pytest.raises(SignatureInvalid, match="missing"):
        provider.verify(
            make_request(signed.body, headers, received_at_ms=signed.received_at_ms, route="acme"), [SECRET]
        )


@pytest.mark.parametrize("timestamp", ["1667507175.5", "-1667507175", "soon", "99999999999999"])
def test_non_integer_timestamps_are_rejected(provider, delivery, make_request, timestamp):
    signed = delivery(payment())
    headers = {**signed.headers, "webhook-timestamp": timestamp}
    with pytest.raises(SignatureInvalid):
        provider.verify(
            make_request(signed.body, headers, received_at_ms=signed.received_at_ms, route="acme"), [SECRET]
        )


def test_a_malformed_secret_is_skipped_during_rotation(provider, delivery):
    provider.verify(delivery(payment()), ["whsec_", SECRET])
    with pytest.raises(SignatureInvalid, match="no usable"):
        provider.verify(delivery(payment()), ["whsec_"])


def test_non_utf8_body_is_rejected(provider, delivery):
    with pytest.raises(SignatureInvalid):
        provider.verify(delivery(b"\xff\xfe{}", signature="v1,AAAA"), [SECRET])


# --- parsing ----------------------------------------------------------------------------------


def test_parse_uses_webhook_id_and_the_type_field(provider, delivery):
    parsed = provider.parse(delivery(payment()))
    assert (parsed.event_id, parsed.event_type, parsed.livemode) == (
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "payment.succeeded",
        True,
    )
    assert provider.parse(delivery(payment(livemode=False))).livemode is False


def test_livemode_may_be_a_value_meaning_live(make_settings, delivery, make_request):
    mapping = {
        "acme": {
            "events": {
                "payment.succeeded": {
                    **ACME["events"]["payment.succeeded"],
                    "livemode": {"path": "data.mode", "live": ["live", "production"]},
                }
            }
        }
    }
    provider = create(make_settings(STANDARD_WEBHOOKS_MAPPING=json.dumps(mapping)), "acme")
    assert provider.parse(delivery(payment(mode="production"))).livemode is True
    assert provider.parse(delivery(payment(mode="sandbox"))).livemode is False
    assert provider.parse(delivery(payment())).livemode is None


def test_unmapped_types_are_not_relevant(provider, delivery):
    parsed = provider.parse(delivery({"type": "customer.updated", "data": {}}))
    assert not provider.is_relevant(parsed.event_type)


def test_a_body_without_a_type_is_refused(provider, delivery):
    with pytest.raises(PayloadInvalid, match="type"):
        provider.parse(delivery({"data": {}}))


def test_the_registry_serves_each_configured_sender(settings):
    assert get_provider("acme", settings).name == "acme"
    assert get_provider("unconfigured", settings) is None


# --- mapping ----------------------------------------------------------------------------------


def test_mapped_payment_is_a_purchase_keyed_by_the_sender_and_order(provider, delivery, deliver, settings, rendered):
    [fact] = deliver(provider, delivery(payment()))
    assert (fact.key, fact.event, fact.time) == ("acme:payment:pay_2Nf8QpXv", c.PURCHASE_COMPLETED, 1667507170)
    assert fact.identity == Identity(user_id="user-42", customer="cus_981")
    assert fact.properties == {c.PURCHASE_TYPE: c.ONE_TIME}
    assert fact.links == ("acme:payment-ref:pay_2Nf8QpXv",)
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY], event[c.ORDER_ID], event[c.PROVIDER]) == (
        19.99,
        "USD",
        "pay_2Nf8QpXv",
        "acme",
    )


@pytest.mark.parametrize(
    ("amount", "currency", "revenue"),
    [(1999, "usd", 19.99), (1200, "JPY", 1200), (5125, "KWD", 5.125), ("250", "EUR", 2.5)],
)
def test_minor_unit_amounts_follow_the_currency(
    provider, delivery, deliver, settings, rendered, amount, currency, revenue
):
    [fact] = deliver(provider, delivery(payment(amount=amount, currency=currency)))
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY]) == (revenue, currency.upper())
    assert type(event[c.REVENUE]) is type(revenue)


def invoice(reason: str = "renewal", **data: Any) -> dict[str, Any]:
    body = {
        "invoice_id": "inv_77",
        "subscription_id": "sub_9",
        "billing_reason": reason,
        "total": "1200",
        "currency": "JPY",
        "plan": "pro-monthly",
        "customer": {"external_id": "user-42"},
        **data,
    }
    return {"type": "invoice.paid", "timestamp": 1667507170123, "data": body}  # milliseconds are read too


def test_one_event_type_may_produce_several_catalog_events(provider, delivery, deliver, settings, rendered):
    purchase, renewal = deliver(provider, delivery(invoice()))
    assert (purchase.key, purchase.time, purchase.properties) == (
        "acme:payment:inv_77",
        1667507170,
        {c.PURCHASE_TYPE: c.SUBSCRIPTION_RENEWAL, c.SUBSCRIPTION_ID: "sub_9", c.PLAN: "pro-monthly"},
    )
    assert (renewal.key, renewal.event) == ("acme:subscription-renewal:inv_77", c.SUBSCRIPTION_RENEWED)
    assert rendered(purchase, settings)[c.REVENUE] == 1200
    assert purchase.profile is not None and purchase.profile.plan == "pro-monthly"


def test_when_conditions_filter_rules(provider, delivery, deliver):
    assert deliver(provider, delivery(invoice("manual"))) == []


def test_major_unit_amounts_finer_than_the_currency_are_refused(provider, delivery, deliver):
    with pytest.raises(PayloadInvalid, match="amount"):
        deliver(provider, delivery(invoice(total="12.5")))  # JPY has no minor unit


def test_refund_takes_its_payments_buyer_and_a_positive_amount(provider, delivery, deliver, settings, rendered):
    body = {
        "type": "refund.created",
        "timestamp": "2022-11-04T09:00:00Z",
        "data": {"id": "re_5", "payment_id": "pay_2Nf8QpXv", "amount": -500, "currency": "KWD", "reason": "duplicate"},
    }
    [fact] = deliver(provider, delivery(body))
    assert (fact.key, fact.event) == ("acme:refund:re_5", c.REFUND_ISSUED)
    assert fact.identity_from == ("acme:payment-ref:pay_2Nf8QpXv",)
    assert fact.profile is not None and fact.profile.refunds == 1 and fact.profile.revenue == -fact.money
    event = rendered(fact, settings)
    assert (event[c.REVENUE], event[c.CURRENCY], event[c.REFUND_ID], event[c.REASON]) == (
        0.5,
        "KWD",
        "re_5",
        "duplicate",
    )


def test_subscription_end_uses_the_mapped_time_path(provider, delivery, deliver):
    body = {
        "type": "subscription.canceled",
        "timestamp": "2022-11-05T00:00:00Z",
        "data": {"id": "sub_9", "ended_at": 1667606400, "customer": {"id": "cus_981"}},
    }
    [fact] = deliver(provider, delivery(body))
    assert (fact.key, fact.event, fact.time) == ("acme:subscription-end:sub_9", c.SUBSCRIPTION_CANCELLED, 1667606400)
    assert fact.identity == Identity(customer="cus_981")


def test_a_missing_mapped_id_is_refused_with_its_path(provider, delivery, deliver):
    body = payment()
    del body["data"]["id"]
    with pytest.raises(PayloadInvalid, match=r"order_id \(data\.id\)"):
        deliver(provider, delivery(body))


def test_a_redelivered_webhook_gives_identical_facts(provider, delivery, deliver):
    first = deliver(provider, delivery(payment()))
    retry = deliver(provider, delivery(payment(), ts=TS + 60, received_at_ms=(TS + 61) * 1000))
    assert first == retry and first


def test_two_webhooks_about_one_order_collapse_into_one_fact(provider, delivery, deliver):
    [first] = deliver(provider, delivery(payment(), msg_id="msg_a"))
    [second] = deliver(provider, delivery(payment(), msg_id="msg_b"))
    assert first.key == second.key


# --- mapping validation -----------------------------------------------------------------------


def rule(**changes: Any) -> dict[str, Any]:
    base = dict(ACME["events"]["payment.succeeded"])
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"acme": {"events": {"p": rule(event="Sale")}}}, r"acme\.events\.p\.event: 'Sale' is not a catalog event"),
        ({"acme": {"events": {"p": rule(time=None)}}}, r"acme\.events\.p\.time: required"),
        ({"acme": {"events": {"p": rule(order_id=None)}}}, r"acme\.events\.p\.order_id: required"),
        ({"acme": {"events": {"p": rule(amount_unit="cents")}}}, r"acme\.events\.p\.amount_unit: expected \"minor\""),
        ({"acme": {"events": {"p": rule(currency=None)}}}, r"acme\.events\.p\.currency: required"),
        (
            {"acme": {"events": {"p": rule(event="Payment Failed", currency=None)}}},
            r"\"amount\" and \"currency\" go together",
        ),
        (
            {"acme": {"events": {"p": rule(user_id="data..id")}}},
            r"acme\.events\.p\.user_id: 'data\.\.id' is not a dotted JSON path",
        ),
        ({"acme": {"events": {"p": rule(colour="red")}}}, r"unknown field\(s\) \['colour'\]"),
        ({"acme": {"events": {"p": rule(event="Refund Issued")}}}, r"acme\.events\.p\.refund_id: required"),
        ({"acme": {"events": {"p": rule(purchase_type="lifetime")}}}, r"acme\.events\.p\.purchase_type"),
        (
            {"acme": {"events": {"p": [rule(), rule(event="Subscription Renewed")]}}},
            r"acme\.events\.p\[1\]\.subscription_id: required",
        ),
        ({"acme": {"events": {}}}, r"acme\.events: expected a non-empty object"),
        ({"acme": {"event": {}}}, r"unknown field\(s\) \['event'\]"),
        ({"stripe": {"events": {"p": rule()}}}, r"'stripe' is a built-in provider route"),
        ({"ac/me": {"events": {"p": rule()}}}, r"a sender name is 1-64 letters"),
        ({"acme": {"events": {"p": rule(livemode={"path": "data.mode"})}}}, r"acme\.events\.p\.livemode"),
        (
            {"acme": {"events": {"p": rule(when={"data.status": {"in": ["paid"]}})}}},
            r"when\.data\.status: expected a JSON scalar",
        ),
    ],
)
def test_invalid_mappings_are_refused_with_the_field_at_fault(mapping, message):
    with pytest.raises(ConfigError, match=rf"STANDARD_WEBHOOKS_MAPPING\.?.*{message}"):
        providers.validate(Settings(standard_webhooks_mapping=mapping))  # as a cold start checks it


def test_the_worked_example_in_the_docs_is_the_mapping_tested_here():
    docs = (Path(__file__).resolve().parents[3] / "docs" / "providers.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in docs.split("```json\n")[1:]]
    [example] = [block for block in blocks if block.lstrip().startswith('{\n  "acme"')]
    assert json.loads(example) == {"acme": ACME}


def test_the_documented_mapping_is_valid(settings):
    senders = validate_mapping(settings.standard_webhooks_mapping)
    assert senders["acme"].produces() == {
        "payment.succeeded": (c.PURCHASE_COMPLETED,),
        "invoice.paid": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
        "refund.created": (c.REFUND_ISSUED,),
        "subscription.canceled": (c.SUBSCRIPTION_CANCELLED,),
    }


def test_constants_stand_in_for_fields_a_sender_leaves_out(make_settings, delivery, deliver):
    mapping = {"acme": {"events": {"payment.succeeded": rule(currency={"value": "JPY"}, livemode=None)}}}
    provider = create(make_settings(STANDARD_WEBHOOKS_MAPPING=json.dumps(mapping)), "acme")
    body = payment(amount=500)
    del body["data"]["currency"]
    [fact] = deliver(provider, delivery(body))
    assert (fact.money.minor, fact.money.currency) == (500, "JPY")
