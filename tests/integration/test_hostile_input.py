"""Hostile input at the receiver: each hardening rule of docs/reliability.md, one test per rule.

The real ReceiverFunction handler behind moto (the integration harness), signed as each provider signs.
The fuzzing suite (tests/fuzz) tries millions of shapes against the same rules; these tests name them.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from harness import SECRETS, Pipeline, fixture_bytes, http_api_event, stripe_checkout
from revenue_webhooks import bootstrap, config, observability
from revenue_webhooks.adapters import aws as aws_clients
from revenue_webhooks.adapters.sqs import QueueSender
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain.redaction import REDACTED, redact, redact_text, redacted_json
from revenue_webhooks.providers import get_provider, sign
from revenue_webhooks.providers.base import SignatureInvalid, WebhookRequest, parse_json_object
from revenue_webhooks.service.receiver import Receiver

from devstack.aws import free_port
from devstack.lambda_runtime import LambdaContext

NOW = int(time.time())  # for what is far from any window; a window's edges are measured from the clock
STRIPE_BODY = stripe_checkout("hostile", user_id="user-hostile")
ACME_BODY = json.dumps(
    {
        "type": "payment.succeeded",
        "timestamp": "2022-11-03T20:26:10.344522Z",
        "data": {
            "id": "pay_hostile",
            "amount": 1999,
            "currency": "usd",
            "customer": {"id": "cus_h", "external_id": "u"},
        },
    }
).encode()
PADDLE_BODY = json.dumps(
    {
        "event_id": "evt_01hostile",
        "event_type": "transaction.completed",
        "occurred_at": "2024-04-12T10:18:49.621022Z",
        "notification_id": "ntf_01hostile",
        "data": json.loads(fixture_bytes("paddle", "data_transaction.completed.json")),
    }
).encode()
# Providers that sign a time, with a body that maps, the signing options, and the past tolerance.
TIMED = {
    "stripe": (STRIPE_BODY, {}, 300),
    "paddle": (PADDLE_BODY, {}, 300),
    "shopify": (fixture_bytes("shopify", "rest_fixture_order.json"), {"topic": "orders/paid"}, 86_400),
    "acme": (ACME_BODY, {}, 300),
}
# Future skew allowed: 60 s (FUTURE_SKEW_SECONDS), except the Standard Webhooks spec's symmetric 5 minutes.
FUTURE_SKEW = {"stripe": 60, "paddle": 60, "shopify": 60, "acme": 300}
FIXED_ANSWERS = {
    '{"status": "accepted"}',
    '{"status": "ignored", "reason": "event type not mapped"}',
    '{"error": "unknown provider"}',
    '{"error": "body too large"}',
    '{"error": "body is not valid base64"}',
    '{"error": "bad request"}',
    '{"error": "signature verification failed"}',
    '{"error": "webhook timestamp outside the accepted window"}',
    '{"error": "body is not a JSON webhook event"}',
}


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    running = Pipeline()
    try:
        yield running
    finally:
        running.close()


def post(pipeline: Pipeline, route: str, body: bytes, timestamp: int | None = None, **options: str) -> dict:
    return pipeline.post(route, body, sign(route, body, SECRETS[route], timestamp, **options))


def invoke(pipeline: Pipeline, event: Any) -> dict[str, Any]:
    return pipeline.receiver(event, LambdaContext("ReceiverFunction", 10))


def answer(response: dict[str, Any]) -> str:
    return json.loads(response["body"]).get("error") or json.loads(response["body"])["status"]


# ---- size, then signature, then parsing ------------------------------------------------------------


def test_a_body_over_the_size_limit_is_413_before_it_is_decoded_or_verified(pipeline: Pipeline) -> None:
    too_big = b"{" + b" " * 512_000 + b"}"
    assert pipeline.post("stripe", too_big, {"stripe-signature": "t=1,v1=00"})["statusCode"] == 413
    # Not even valid base64: the size check answers first, so nothing was decoded.
    event = http_api_event("/webhooks/stripe", b"", {})
    event.update(body="!" * 700_000, isBase64Encoded=True)
    assert invoke(pipeline, event)["statusCode"] == 413


def test_the_signature_is_checked_before_the_body_is_parsed(pipeline: Pipeline) -> None:
    for body in (b"not json at all", b"[" * 100_000, b"\xff\xfe"):
        response = pipeline.post("stripe", body, sign("stripe", body, "whsec_not_the_secret"), base64_body=True)
        assert (response["statusCode"], answer(response)) == (400, "signature verification failed")
    assert pipeline.queue_depth() == 0


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"a string"', b"42", b"null", b'{"a": 1} {"b": 2}', b"[" * 10_000 + b"]" * 10_000, b""],
    ids=["array", "string", "number", "null", "two objects", "deeply nested", "empty"],
)
def test_a_signed_body_that_is_not_one_json_object_is_a_clear_400(pipeline: Pipeline, body: bytes) -> None:
    response = pipeline.post("stripe", body, sign("stripe", body, SECRETS["stripe"]), base64_body=True)
    assert (response["statusCode"], answer(response)) == (400, "body is not a JSON webhook event")


def test_nesting_and_quote_runs_are_refused_in_linear_time() -> None:
    # The depth scan once took quadratic time on runs of escaped quotes (14 s for 40 KB).
    started = time.perf_counter()
    for text in ("{" * 65 + '"' + '\\"' * 250_000, "{" * 65 + '"a' * 250_000, "[" * 500_000):
        with pytest.raises(Exception, match="JSON"):
            parse_json_object(text.encode())
    assert time.perf_counter() - started < 2


# ---- timestamps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", sorted(TIMED))
def test_stale_and_future_timestamps_are_refused_and_a_small_skew_is_not(pipeline: Pipeline, route: str) -> None:
    body, options, past = TIMED[route]
    skew = FUTURE_SKEW[route]
    for offset, expected in ((-past - 5, 400), (skew + 5, 400), (skew - 5, 200), (-past + 5, 200), (0, 200)):
        response = post(pipeline, route, body, int(time.time()) + offset, **options)
        assert response["statusCode"] == expected, (route, offset, response["body"])
        if expected == 400:
            assert answer(response) == "webhook timestamp outside the accepted window"


def test_a_future_stripe_timestamp_hidden_behind_a_padded_t_entry_is_refused(pipeline: Pipeline) -> None:
    now = int(time.time())
    future = sign("stripe", STRIPE_BODY, SECRETS["stripe"], now + 3600)["stripe-signature"]
    for padded in (f" t={now},{future}", f"t ={now},{future}"):
        response = pipeline.post("stripe", STRIPE_BODY, {"stripe-signature": padded})
        assert response["statusCode"] == 400, padded


def test_a_non_ascii_signature_header_is_refused_not_crashed(pipeline: Pipeline) -> None:
    for route, name in (
        ("stripe", "stripe-signature"),
        ("shopify", "x-shopify-hmac-sha256"),
        ("paddle", "paddle-signature"),
    ):
        response = pipeline.post(route, STRIPE_BODY, {name: "t=1,v1=é" + "0" * 64})
        assert (response["statusCode"], answer(response)) == (400, "signature verification failed")


def test_a_provider_with_no_configured_secret_refuses_every_request() -> None:
    settings = from_environ({"MODE": "any", "STANDARD_WEBHOOKS_MAPPING": pipeline_mapping()})
    for route in ("stripe", "shopify", "paddle", "lemonsqueezy", "revenuecat", "acme"):
        body, options = (TIMED.get(route) or (STRIPE_BODY, {}, 0))[:2]
        headers = sign(route, body, SECRETS[route], NOW, **options)
        request = WebhookRequest(body, headers, NOW * 1000, route)
        provider = get_provider(route, settings)
        assert provider is not None
        with pytest.raises(SignatureInvalid):
            provider.verify(request, [])


def pipeline_mapping() -> str:
    from harness import documented_standard_webhooks_mapping

    return documented_standard_webhooks_mapping()


# ---- the request itself ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"headers": ["stripe-signature", "t=1"]},
        {"headers": "stripe-signature: t=1"},
        {"body": {"id": "evt_1"}},
        {"body": 12},
        {"requestContext": {"timeEpoch": True}},
        {"requestContext": {"timeEpoch": 10**40}},
        {"pathParameters": "stripe"},
        {"pathParameters": {"provider": ["stripe"]}, "rawPath": 7},
    ],
)
def test_a_malformed_api_gateway_event_is_answered_not_raised(pipeline: Pipeline, change: dict) -> None:
    event = http_api_event("/webhooks/stripe", STRIPE_BODY, sign("stripe", STRIPE_BODY, SECRETS["stripe"]))
    event.update(change)
    response = invoke(pipeline, event)
    assert response["statusCode"] in (200, 400, 404) and response["body"] in FIXED_ANSWERS


def test_responses_never_echo_the_request(pipeline: Pipeline) -> None:
    marker = "REFLECTED<script>x</script>"
    probes = [
        ("stripe", marker.encode(), {"stripe-signature": marker}),
        ("stripe", STRIPE_BODY.replace(b"cs_hostile", marker.encode()), {"stripe-signature": f"t={NOW},v1={marker}"}),
        (marker, STRIPE_BODY, {}),
        ("shopify", b"{}", {"x-shopify-hmac-sha256": marker, "x-shopify-topic": marker}),
    ]
    for route, body, headers in probes:
        response = pipeline.post(route, body, headers)
        assert marker not in json.dumps(response) and response["body"] in FIXED_ANSWERS
        assert response["headers"]["content-type"] == "application/json"
        assert response["headers"]["x-content-type-options"] == "nosniff"


def test_only_an_unreachable_queue_makes_a_5xx(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    closed_port = boto3.session.Session("local", "local", region_name="us-east-1").client(
        "sqs", endpoint_url=f"http://127.0.0.1:{free_port()}", config=aws_clients.config("sqs")
    )
    dead = QueueSender(closed_port)
    monkeypatch.setattr(bootstrap.receiver(), "queue", dead)
    response = post(pipeline, "stripe", STRIPE_BODY)
    assert (response["statusCode"], answer(response)) == (503, "temporarily unavailable")
    assert post(pipeline, "stripe", b"{}")["statusCode"] == 400  # what is refused anyway is still 4xx


# ---- logs -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """What the receiver writes: its Powertools log lines and the EMF metrics it prints."""
    buffer = io.StringIO()
    handler = observability.logger.registered_handler
    previous = handler.setStream(buffer)
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        handler.setStream(previous)


def test_logs_carry_ids_and_types_never_a_secret_signature_or_body(pipeline: Pipeline) -> None:
    headers = sign("stripe", STRIPE_BODY, SECRETS["stripe"])
    bad = sign("stripe", STRIPE_BODY, "whsec_wrong_secret_value")
    with captured_log() as buffer:
        assert pipeline.post("stripe", STRIPE_BODY, headers)["statusCode"] == 200
        assert pipeline.post("stripe", STRIPE_BODY, bad)["statusCode"] == 400
    log = buffer.getvalue()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    # The accepted webhook's record is its EMF metrics line: the event id as a property, the type as a dimension.
    accepted = [r for r in records if "Enqueued" in r]
    assert [(r["event_id"], r["EventType"], r["Provider"]) for r in accepted] == [
        ("evt_hostile", "checkout.session.completed", "stripe")
    ]
    assert any(r.get("message") == "webhook rejected" for r in records)
    for secret in SECRETS.values():
        assert secret not in log
    for signature in (headers["stripe-signature"], bad["stripe-signature"]):
        assert signature.split("v1=")[1] not in log
    assert "cs_hostile" not in log and "amount_total" not in log  # nothing of the body but its id and type
    assert '"payload"' not in log  # DEBUG_PAYLOADS is off by default


def test_debug_payloads_logs_the_verified_payload_with_pii_redacted(pipeline: Pipeline) -> None:
    event = json.loads(STRIPE_BODY)
    session = event["data"]["object"]
    pii = {
        "email": "jane.roe@example.com",
        "name": "Jane Roe",
        "line1": "1 Infinite Loop",
        "phone": "+1 415 555 0100",
        "ip": "203.0.113.77",
        "last4": "4242",
    }
    session["customer_details"] = {
        "email": pii["email"],
        "name": pii["name"],
        "phone": pii["phone"],
        "address": {"line1": pii["line1"], "postal_code": "95014", "country": "US"},
    }
    session["metadata"] = {"user_id": "user-debug", "ip": pii["ip"], "note": f"call me at {pii['phone']}"}
    session["payment_method_details"] = {"card": {"last4": pii["last4"], "brand": "visa"}}
    session["description"] = f"Paid by {pii['email']} from {pii['ip']}"
    body = json.dumps(event).encode()
    assert from_environ({"DEBUG_PAYLOADS": "true"}).debug_payloads and not from_environ({}).debug_payloads
    debugging = dataclasses.replace(config.settings(), debug_payloads=True)  # the deployment's, with the switch on
    request = http_api_event("/webhooks/stripe", body, sign("stripe", body, SECRETS["stripe"]))
    with captured_log() as buffer:
        deployed = bootstrap.receiver()
        receiving = Receiver(debugging, deployed.providers, deployed.secrets, deployed.queue)
        assert receiving.handle(request)["statusCode"] == 200
    log = buffer.getvalue()
    line = next(line for line in log.splitlines() if "DEBUG_PAYLOADS" in line)
    logged = json.loads(json.loads(line)["payload"])
    assert logged["id"] == "evt_hostile" and logged["data"]["object"]["amount_total"] == session["amount_total"]
    assert logged["data"]["object"]["metadata"]["user_id"] == "user-debug"
    for value in pii.values():
        assert value not in log, value


# ---- the redactor -----------------------------------------------------------------------------------


def test_the_redactor_removes_emails_names_addresses_phones_ips_and_card_fields() -> None:
    payload = {
        "id": "evt_1",
        "amount": 1999,
        "customer_email": "a.b@example.org",
        "billing_details": {"name": "Ann Bee", "address": {"city": "Paris", "postal_code": 75001}},
        "shipping_address": {"address1": "2 Rue X", "zip": "75002", "phone": "+33 1 23 45 67 89"},
        "first_name": "Ann",
        "browser_ip": "198.51.100.4",
        "client_ip": "2001:db8::8a2e:370:7334",
        "card": {"last4": "4242", "exp_month": 4, "exp_year": 2030, "fingerprint": "Xy"},
        "note": "leave at the door",
        "metadata": {"user_id": "u_1", "plan": "pro"},
        "livemode": False,
    }
    redacted = redact(payload)
    text = json.dumps(redacted)
    for value in ("a.b@example.org", "Ann", "Paris", "75001", "2 Rue X", "+33", "198.51.100.4", "2001:db8", "4242"):
        assert value not in text, value
    assert redacted["card"] == {"last4": REDACTED, "exp_month": REDACTED, "exp_year": REDACTED, "fingerprint": REDACTED}
    assert redacted["id"] == "evt_1" and redacted["amount"] == 1999 and redacted["livemode"] is False
    assert redacted["metadata"] == {"user_id": "u_1", "plan": "pro"}


def test_free_text_loses_emails_ips_phones_and_card_numbers_but_keeps_ids_and_times() -> None:
    text = (
        "from x.y+tag@mail.example.co.uk at 203.0.113.9 / 2001:db8::1, call +1 (415) 555-0100, "
        "card 4242 4242 4242 4242; order 1700000000 at 2024-01-01T10:00:00Z, id cs_test_a1B2"
    )
    cleaned = redact_text(text)
    for value in ("x.y+tag@mail.example.co.uk", "203.0.113.9", "2001:db8::1", "+1 (415) 555-0100", "4242 4242"):
        assert value not in cleaned, value
    for kept in ("1700000000", "2024-01-01T10:00:00Z", "cs_test_a1B2"):
        assert kept in cleaned


def test_redaction_is_linear_and_the_logged_json_is_capped() -> None:
    started = time.perf_counter()
    for text in ("a" * 500_000, "a:" * 250_000 + "g", "a@" * 250_000, "1" * 500_000, "+1" * 250_000):
        redact_text(text)
    assert time.perf_counter() - started < 3
    logged = redacted_json({"blob": "x" * 100_000}, limit=1000)
    assert len(logged) < 1100 and re.search(r"\[\d+ more characters\]$", logged)


def test_a_base64_body_is_verified_on_its_decoded_bytes(pipeline: Pipeline) -> None:
    headers = sign("stripe", STRIPE_BODY, SECRETS["stripe"])
    event = http_api_event("/webhooks/stripe", STRIPE_BODY, headers, base64_body=True)
    assert invoke(pipeline, event)["statusCode"] == 200
    event["body"] = base64.b64encode(STRIPE_BODY + b" ").decode()
    assert invoke(pipeline, event)["statusCode"] == 400


def test_no_function_is_configured_to_log_whole_events() -> None:
    # Powertools logs the entire event (body, signature headers) when POWERTOOLS_LOGGER_LOG_EVENT is true.
    from devstack.template import Template

    template = Template()
    for function in ("ReceiverFunction", "ForwarderFunction"):
        environment = template.function_environment(function, lambda value: value)
        assert str(environment.get("POWERTOOLS_LOGGER_LOG_EVENT", "false")).lower() in ("false", "0", "")
        assert str(environment.get("DEBUG_PAYLOADS", "false")).lower() in ("false", "0", "")


def test_every_function_policy_is_scoped_to_this_stacks_own_resources() -> None:
    """SAM policy templates only, each bound by Ref/GetAtt to a resource this template creates: no `*`."""
    from devstack.template import Template

    template = Template()
    for function in ("ReceiverFunction", "ForwarderFunction"):
        for policy in template.properties(function)["Policies"]:
            assert isinstance(policy, dict) and len(policy) == 1, f"{function}: {policy!r} is not a policy template"
            ((name, arguments),) = policy.items()
            assert name.endswith("Policy") and isinstance(arguments, dict) and arguments, (function, name)
            for value in arguments.values():
                target = value.get("Ref") or (value.get("Fn::GetAtt") or [None])[0]
                assert target in template.resources, f"{function}: {name} is bound to {value!r}, not to this stack"
