"""The receiver: verify the raw body, filter, make the webhook durable in SQS, answer fast.

Order matters for safety: size limit before decoding, signature before parsing, parsing
with depth limits, and a 5xx only when the event could not be made durable (so the
provider retries). Responses never echo input; logs carry ids and types, never bodies,
signatures or secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import Counter
from typing import Any

from . import runtime
from .config import SECRET_ENV, Settings
from .envelope import QueuedEvent
from .providers import get_provider
from .providers.base import WebhookRejected, WebhookRequest

logger = runtime.logger


def handle(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """API Gateway HTTP API (payload 2.0) event in, HTTP response out."""
    runtime.metrics.add_metric(name="WebhookRequests", unit="Count", value=1)
    route = _route(event)
    provider = get_provider(route, settings) if route else None
    if provider is None:
        return _answer(404, "unknown provider")
    raw_body = event.get("body") or ""
    # Checked before decoding: base64 is 4/3 of the raw size.
    if len(raw_body) > settings.max_body_bytes * 4 // 3 + 4:
        return _answer(413, "body too large")
    try:
        body = base64.b64decode(raw_body, validate=True) if event.get("isBase64Encoded") else raw_body.encode("utf-8")
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return _answer(400, "body is not valid base64")
    if len(body) > settings.max_body_bytes:
        return _answer(413, "body too large")
    request = WebhookRequest(
        body=body,
        headers={str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()},
        received_at_ms=_received_at_ms(event),
        route=route,
    )
    try:
        secrets = _secrets(route, settings)
    except Exception:
        logger.exception("secret unavailable", extra={"provider": route})
        return _answer(503, "temporarily unavailable")
    try:
        provider.verify(request, secrets)
        parsed = provider.parse(request)
    except WebhookRejected as rejection:
        logger.info("webhook rejected", extra={"provider": route, "reason": rejection.detail})
        runtime.count("Rejected", Counter({(route, type(rejection).__name__): 1}))
        return _answer(rejection.status, rejection.public)
    context = {"provider": route, "event_id": parsed.event_id[:200], "event_type": parsed.event_type[:200]}
    key = Counter({(route, parsed.event_type): 1})
    runtime.count("Received", key)
    if not settings.accepts_mode(parsed.livemode):
        logger.info("ignored: other mode", extra={**context, "mode": settings.mode})
        runtime.count("Ignored", key)
        return _answer(
            200, "ignored", reason=f"{'live' if parsed.livemode else 'test'} event in a {settings.mode} deployment"
        )
    if not provider.is_relevant(parsed.event_type):
        logger.info("ignored: type not mapped", extra=context)
        runtime.count("Ignored", key)
        return _answer(200, "ignored", reason="event type not mapped")
    queued = QueuedEvent(route, parsed.event_id, parsed.event_type, request.received_at_ms, body)
    try:
        runtime.sqs().send_message(QueueUrl=settings.events_queue_url, **queued.to_sqs())
    except Exception:
        logger.exception("enqueue failed", extra=context)
        return _answer(503, "temporarily unavailable")
    logger.info("enqueued", extra=context)
    runtime.count("Enqueued", key)
    return _answer(200, "accepted")


def _secrets(route: str, settings: Settings) -> list[str]:
    if route in SECRET_ENV:
        secret_id = settings.secret_ids.get(route)
        return runtime.secret_values(secret_id) if secret_id else []
    return runtime.standard_webhooks_secrets(settings, route)


def _route(event: dict[str, Any]) -> str:
    provider = (event.get("pathParameters") or {}).get("provider")
    if not provider:
        path = event.get("rawPath") or event.get("path") or ""
        parts = [part for part in path.split("/") if part]
        provider = parts[-1] if len(parts) >= 2 and parts[-2] == "webhooks" else ""
    return provider if provider.isascii() and provider.replace("-", "").replace("_", "").isalnum() else ""


def _received_at_ms(event: dict[str, Any]) -> int:
    """API Gateway's request time: a timestamp check must not depend on how late we run."""
    epoch = (event.get("requestContext") or {}).get("timeEpoch")
    return int(epoch) if isinstance(epoch, int) and epoch > 0 else int(time.time() * 1000)


def _answer(status: int, message: str, **extra: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"status" if status < 300 else "error": message, **extra}),
    }
