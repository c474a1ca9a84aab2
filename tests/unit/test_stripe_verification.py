"""Stripe-Signature verification with the official library, on the raw body."""

from __future__ import annotations

import time

import pytest
from revenue_webhooks.config import from_environ
from revenue_webhooks.providers.base import SignatureInvalid, TimestampOutOfTolerance, WebhookRequest
from revenue_webhooks.providers.stripe import StripeProvider, sign

SECRET = "whsec_unit_" + "s" * 24
BODY = b'{"id":"evt_1","object":"event","type":"checkout.session.completed","data":{"object":{"id":"cs_1"}}}'


def request(body: bytes, headers: dict[str, str], received_at: float | None = None) -> WebhookRequest:
    at = time.time() if received_at is None else received_at
    return WebhookRequest(body=body, headers=headers, received_at_ms=int(at * 1000), route="stripe")


@pytest.fixture
def provider() -> StripeProvider:
    return StripeProvider(from_environ({}))


def test_valid_signature_passes(provider: StripeProvider) -> None:
    provider.verify(request(BODY, sign(BODY, SECRET)), [SECRET])


def test_tampered_body_fails(provider: StripeProvider) -> None:
    headers = sign(BODY, SECRET)
    with pytest.raises(SignatureInvalid):
        provider.verify(request(BODY.replace(b"cs_1", b"cs_2"), headers), [SECRET])


def test_wrong_secret_fails(provider: StripeProvider) -> None:
    with pytest.raises(SignatureInvalid):
        provider.verify(request(BODY, sign(BODY, "whsec_other")), [SECRET])


def test_any_of_several_secrets_passes_during_rotation(provider: StripeProvider) -> None:
    provider.verify(request(BODY, sign(BODY, SECRET)), ["whsec_old", SECRET])


def test_header_with_several_v1_entries_passes(provider: StripeProvider) -> None:
    good = sign(BODY, SECRET)["stripe-signature"]
    timestamp, v1 = good.split(",")
    header = f"{timestamp},v1={'0' * 64},{v1},v0=deadbeef"
    provider.verify(request(BODY, {"stripe-signature": header}), [SECRET])


def test_stale_timestamp_fails(provider: StripeProvider) -> None:
    headers = sign(BODY, SECRET, timestamp=int(time.time()) - 301)
    with pytest.raises(TimestampOutOfTolerance):
        provider.verify(request(BODY, headers), [SECRET])


def test_future_timestamp_beyond_skew_fails(provider: StripeProvider) -> None:
    headers = sign(BODY, SECRET, timestamp=int(time.time()) + 600)
    with pytest.raises(TimestampOutOfTolerance):
        provider.verify(request(BODY, headers), [SECRET])


def test_missing_header_fails(provider: StripeProvider) -> None:
    with pytest.raises(SignatureInvalid):
        provider.verify(request(BODY, {}), [SECRET])


def test_no_configured_secret_fails(provider: StripeProvider) -> None:
    with pytest.raises(SignatureInvalid):
        provider.verify(request(BODY, sign(BODY, SECRET)), [])


def test_only_v0_scheme_is_refused(provider: StripeProvider) -> None:
    header = sign(BODY, SECRET)["stripe-signature"].replace("v1=", "v0=")
    with pytest.raises(SignatureInvalid):
        provider.verify(request(BODY, {"stripe-signature": header}), [SECRET])


def test_reserialised_json_fails(provider: StripeProvider) -> None:
    """The body must be verified exactly as received: re-encoded JSON is a different body."""
    import json

    headers = sign(BODY, SECRET)
    with pytest.raises(SignatureInvalid):
        provider.verify(request(json.dumps(json.loads(BODY)).encode(), headers), [SECRET])


def test_the_age_is_checked_against_the_request_time_not_the_lambda_clock(provider: StripeProvider) -> None:
    """A request API Gateway received a day ago (a redrive, a slow queue) with a then-fresh signature passes;
    the same signature on a request received 400 s after signing does not (the shared 300 s window)."""
    signed_at = int(time.time()) - 86_400
    headers = sign(BODY, SECRET, signed_at)
    provider.verify(request(BODY, headers, received_at=signed_at + 10), [SECRET])
    with pytest.raises(TimestampOutOfTolerance):
        provider.verify(request(BODY, headers, received_at=signed_at + 400), [SECRET])


def test_a_bad_signature_is_refused_as_such_whatever_its_age(provider: StripeProvider) -> None:
    stale = sign(BODY, "whsec_other", int(time.time()) - 3600)
    with pytest.raises(SignatureInvalid):
        provider.verify(request(BODY, stale), [SECRET])
