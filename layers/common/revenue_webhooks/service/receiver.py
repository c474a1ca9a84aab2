"""The receiver: verify the raw body, filter, make the webhook durable in SQS, answer fast.

Order matters for safety: the request's shape and the body size before decoding, the signature
before parsing, parsing with depth limits, and a 5xx only when the event could not be made durable
(the queue or the secret store is unreachable, so the provider retries). Responses are one of a
fixed set of texts and never echo input; logs carry ids, types and reasons, never bodies,
signatures or secrets. DEBUG_PAYLOADS adds the verified payload to the log, PII-redacted.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import traceback
from collections.abc import Callable
from typing import Any

from .. import observability
from ..config import Settings
from ..domain.redaction import redacted_json
from ..domain.webhook import QueuedEvent
from ..providers.base import Provider, WebhookRejected, WebhookRequest
from .envelope import to_sqs
from .ports import MessageQueue, WebhookSecrets

logger = observability.logger

# API Gateway's timeEpoch is trusted only inside this range (2001-09-09 .. 2286-11-20 in milliseconds).
_EPOCH_MS_RANGE = (1_000_000_000_000, 10_000_000_000_000)
_DETAIL_CHARS = 200
_RESPONSE_HEADERS = {
    "content-type": "application/json",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


class RequestMalformed(WebhookRejected):
    """The API Gateway event itself is not what an HTTP API sends (no body string, headers not a map)."""


class BodyTooLarge(WebhookRejected):
    status = 413
    public = "body too large"


class BodyNotBase64(WebhookRejected):
    public = "body is not valid base64"


class ProviderFailed(WebhookRejected):
    """A provider's verify or parse raised something other than a rejection: a bug, answered as a refusal."""


class Receiver:
    """Verify, filter and enqueue one webhook; answer within what every sender waits."""

    def __init__(
        self,
        settings: Settings,
        providers: Callable[[str], Provider | None],
        secrets: WebhookSecrets,
        queue: MessageQueue,
    ) -> None:
        self.settings = settings
        self.providers = providers  # route -> its provider, None when no such route is configured
        self.secrets = secrets
        self.queue = queue

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """API Gateway HTTP API (payload 2.0) event in, HTTP response out; never raises for any input."""
        settings = self.settings
        route = _route(event) if isinstance(event, dict) else ""
        if not route:
            return _answer(404, "unknown provider")
        try:
            provider = self.providers(route)
        except Exception:  # a deployment defect (a provider module that does not import): let the sender retry
            logger.exception("provider unavailable", extra={"provider": route})
            return _answer(503, "temporarily unavailable")
        if provider is None:
            return _answer(404, "unknown provider")
        try:
            request = _request(event, route, settings)
        except WebhookRejected as rejection:
            return _rejected(route, rejection)
        try:
            secrets = self.secrets.for_route(route)
        except Exception:
            logger.exception("secret unavailable", extra={"provider": route})
            return _answer(503, "temporarily unavailable")
        try:
            parsed = _verify_and_parse(provider, request, secrets)
        except WebhookRejected as rejection:
            return _rejected(route, rejection)
        context = {"provider": route, "event_id": parsed.event_id[:200], "event_type": parsed.event_type[:200]}
        if settings.debug_payloads:
            logger.info(
                "payload (DEBUG_PAYLOADS, PII redacted)", extra={**context, "payload": redacted_json(parsed.payload)}
            )
        observability.tag_request(route, parsed.event_type, parsed.event_id)
        observability.add("Received")
        if not settings.accepts_mode(parsed.livemode):
            logger.info("ignored: other mode", extra={**context, "mode": settings.mode})
            observability.add("Ignored")
            return _answer(
                200, "ignored", reason=f"{'live' if parsed.livemode else 'test'} event in a {settings.mode} deployment"
            )
        if not provider.is_relevant(parsed.event_type):
            logger.info("ignored: type not mapped", extra=context)
            observability.add("Ignored")
            return _answer(200, "ignored", reason="event type not mapped")
        queued = QueuedEvent(route, parsed.event_id, parsed.event_type, request.received_at_ms, request.body)
        try:
            self.queue.send_message(QueueUrl=settings.queue_for(parsed.livemode), **to_sqs(queued))
        except Exception as error:
            # The type only: a client error's text may quote the request it refused.
            logger.error("enqueue failed", extra={**context, "error": type(error).__name__})
            return _answer(503, "temporarily unavailable")
        observability.add("Enqueued")  # its EMF record, with the event id, is the accepted webhook's log line
        return _answer(200, "accepted")


def _request(event: dict[str, Any], route: str, settings: Settings) -> WebhookRequest:
    """The raw request, with every size and shape check that needs no secret and no parsing."""
    raw_body = event.get("body")
    if raw_body is None:
        raw_body = ""
    if not isinstance(raw_body, str):
        raise RequestMalformed("event body is not a string")
    # Checked before decoding: base64 is 4/3 of the raw size, and UTF-8 at most 4 bytes a character.
    if len(raw_body) > settings.max_body_bytes * 4 // 3 + 4:
        raise BodyTooLarge(f"body of {len(raw_body)} characters")
    try:
        body = base64.b64decode(raw_body, validate=True) if event.get("isBase64Encoded") else raw_body.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestMalformed("body is not encodable text") from None
    except (binascii.Error, ValueError):
        raise BodyNotBase64("isBase64Encoded body does not decode") from None
    if len(body) > settings.max_body_bytes:
        raise BodyTooLarge(f"body of {len(body)} bytes")
    headers = event.get("headers")
    if headers is None:
        headers = {}
    if not isinstance(headers, dict):
        raise RequestMalformed("event headers are not a map")
    return WebhookRequest(
        body=body,
        headers={str(name).lower(): str(value) for name, value in headers.items()},
        received_at_ms=_received_at_ms(event),
        route=route,
    )


def _verify_and_parse(provider: Provider, request: WebhookRequest, secrets: list[str]) -> Any:
    """Signature first, then the body; anything but a rejection from provider code is a bug, refused as one."""
    try:
        provider.verify(request, secrets)
        return provider.parse(request)
    except WebhookRejected:
        raise
    except Exception as error:
        # Where, not what: an exception's message may quote the header or the body it choked on.
        frames = traceback.extract_tb(error.__traceback__)
        where = frames[-1] if frames else None
        logger.error(
            "provider code failed on a request",
            extra={
                "provider": request.route,
                "error": type(error).__name__,
                "at": f"{where.filename.rsplit('/', 1)[-1]}:{where.lineno}" if where else "",
            },
        )
        raise ProviderFailed(f"{type(error).__name__} in provider code") from None


def _rejected(route: str, rejection: WebhookRejected) -> dict[str, Any]:
    logger.info("webhook rejected", extra={"provider": route, "reason": rejection.detail[:_DETAIL_CHARS]})
    observability.tag_request(route, type(rejection).__name__)
    observability.add("Rejected")
    return _answer(rejection.status, rejection.public)


def _route(event: dict[str, Any]) -> str:
    parameters = event.get("pathParameters")
    provider = parameters.get("provider") if isinstance(parameters, dict) else None
    if not provider:
        path = event.get("rawPath") or event.get("path") or ""
        parts = [part for part in path.split("/") if part] if isinstance(path, str) else []
        provider = parts[-1] if len(parts) >= 2 and parts[-2] == "webhooks" else ""
    if not isinstance(provider, str) or len(provider) > 64:
        return ""
    return provider if provider.isascii() and provider.replace("-", "").replace("_", "").isalnum() else ""


def _received_at_ms(event: dict[str, Any]) -> int:
    """API Gateway's request time: a timestamp check must not depend on how late we run."""
    context = event.get("requestContext")
    epoch = context.get("timeEpoch") if isinstance(context, dict) else None
    if isinstance(epoch, int) and not isinstance(epoch, bool) and _EPOCH_MS_RANGE[0] <= epoch < _EPOCH_MS_RANGE[1]:
        return epoch
    return int(time.time() * 1000)


def _answer(status: int, message: str, **extra: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": dict(_RESPONSE_HEADERS),
        "body": json.dumps({"status" if status < 300 else "error": message, **extra}),
    }
