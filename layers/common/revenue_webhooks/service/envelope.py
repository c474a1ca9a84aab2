"""The queue message format (version 1): the contract between the receiver, the forwarder and the tools.

The queue is SQS by design (Lambda's SQS event source feeds the forwarder), so the format is written in
SQS's terms: SendMessage arguments one way, Lambda SQS records and ReceiveMessage results the other.

The SQS message body is the provider's payload exactly as received and verified, so a
dead letter is the original webhook and a message is as small as the webhook itself (no
JSON-in-JSON escaping). What the forwarder needs besides the body travels as message
attributes. Dead-letter attributes are added beside them; SQS allows ten attributes per
message, so the receiver uses at most five and the dead-letter reason at most five.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..domain.webhook import QueuedEvent

VERSION = "1"

# Receiver-set attributes.
A_PROVIDER = "provider"
A_EVENT_ID = "event_id"
A_EVENT_TYPE = "event_type"
A_RECEIVED_AT = "received_at"  # Unix milliseconds when API Gateway received the request
A_BODY_ENCODING = "body_encoding"  # "base64" when the raw body has characters SQS refuses

# Dead-letter attributes (set by the forwarder when it dead-letters a message itself).
A_DL_REASON = "dead_letter_reason"
A_DL_DETAIL = "dead_letter_detail"
A_DL_FIELD = "dead_letter_field"
A_DL_AT = "dead_letter_at"
A_DL_ATTEMPTS = "dead_letter_attempts"

DEAD_LETTER_ATTRIBUTES = (A_DL_REASON, A_DL_DETAIL, A_DL_FIELD, A_DL_AT, A_DL_ATTEMPTS)

# Characters SQS accepts in a message body (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF).
_SQS_UNSAFE = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# The same rule for ASCII bodies (most webhooks), as bytes: `bytes.translate` checks a 66 KB body in
# 0.05 ms of CPU, the regex in 0.3 ms.
_SQS_SAFE_ASCII = bytes([0x09, 0x0A, 0x0D, *range(0x20, 0x80)])


def to_sqs(event: QueuedEvent) -> dict[str, Any]:
    """SendMessage arguments (`MessageBody` and `MessageAttributes`) for a verified webhook."""
    try:
        text = event.body.decode("utf-8")
        encoding = None if sqs_accepts(event.body, text) else "base64"
    except UnicodeDecodeError:
        encoding = "base64"
    if encoding:
        text = base64.b64encode(event.body).decode("ascii")
    attributes = {
        A_PROVIDER: _string(event.provider),
        A_EVENT_ID: _string(event.event_id),
        A_EVENT_TYPE: _string(event.event_type),
        A_RECEIVED_AT: {"DataType": "Number", "StringValue": str(event.received_at_ms)},
    }
    if encoding:
        attributes[A_BODY_ENCODING] = _string(encoding)
    return {"MessageBody": text, "MessageAttributes": attributes}


def from_record(record: Mapping[str, Any]) -> QueuedEvent:
    """From a Lambda SQS event record (camel-case `messageAttributes`, `stringValue`)."""
    attributes = {name: value.get("stringValue") for name, value in (record.get("messageAttributes") or {}).items()}
    return _build(record["body"], attributes)


def from_message(message: Mapping[str, Any]) -> QueuedEvent:
    """From an SQS ReceiveMessage result (`Body`, `MessageAttributes`, `StringValue`)."""
    attributes = {name: value.get("StringValue") for name, value in (message.get("MessageAttributes") or {}).items()}
    return _build(message["Body"], attributes)


# ---- EventBridge ------------------------------------------------------------------------------
# Stripe's Amazon EventBridge destination (template.yaml, StripeEventSourceName) puts events on a partner
# bus whose rule targets this queue: the message body is then the EventBridge event itself, with no
# attributes. Its `detail` is the Stripe event, byte for byte the JSON a webhook would carry, so it becomes
# the same QueuedEvent a signed webhook becomes: same facts, same $insert_ids, counted once if both arrive.

EVENTBRIDGE_STRIPE_SOURCE = "aws.partner/stripe.com/"


def is_eventbridge(body: str) -> bool:
    """Whether a message body is an EventBridge event (`version`, `detail-type`, `source`, `detail`)."""
    return body.startswith("{") and '"detail-type"' in body and '"source"' in body


def from_eventbridge(body: str) -> QueuedEvent:
    """The queued webhook an EventBridge event from a Stripe partner source stands for."""
    try:
        event = json.loads(body)
    except ValueError:
        raise ValueError("EventBridge message body is not JSON") from None
    source, detail = event.get("source"), event.get("detail")
    if not isinstance(source, str) or not source.startswith(EVENTBRIDGE_STRIPE_SOURCE) or not isinstance(detail, dict):
        raise ValueError(f"EventBridge event from {str(source)[:80]!r}: only Stripe partner sources are read")
    if detail.get("object") == "v2.core.event":
        raise ValueError("a Stripe thin event: the rule routes snapshot events only (docs/providers.md)")
    event_id, event_type = detail.get("id"), detail.get("type") or event.get("detail-type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not event_type:
        raise ValueError("EventBridge detail is not a Stripe event: id and type are required")
    return QueuedEvent(
        provider="stripe",
        event_id=event_id,
        event_type=event_type,
        received_at_ms=_iso_ms(event.get("time")),
        body=json.dumps(detail, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
    )


def _iso_ms(value: Any) -> int:
    """EventBridge's `time` (ISO 8601, UTC) in Unix milliseconds; 0 when absent (nothing reads it for Stripe)."""
    if not isinstance(value, str):
        return 0
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError:
        return 0


def _build(body: str, attributes: Mapping[str, str | None]) -> QueuedEvent:
    if not attributes.get(A_PROVIDER) and is_eventbridge(body):
        return from_eventbridge(body)
    missing = [name for name in (A_PROVIDER, A_EVENT_ID, A_EVENT_TYPE, A_RECEIVED_AT) if not attributes.get(name)]
    if missing:
        raise ValueError(f"queue message lacks attributes {missing}: not written by this receiver")
    raw = base64.b64decode(body) if attributes.get(A_BODY_ENCODING) == "base64" else body.encode("utf-8")
    return QueuedEvent(
        provider=str(attributes[A_PROVIDER]),
        event_id=str(attributes[A_EVENT_ID]),
        event_type=str(attributes[A_EVENT_TYPE]),
        received_at_ms=int(str(attributes[A_RECEIVED_AT])),
        body=raw,
    )


def sqs_accepts(body: bytes, text: str) -> bool:
    """Whether SQS takes `text` (the UTF-8 `body`, decoded) as a message body as it is."""
    if body.isascii():
        return not body.translate(None, _SQS_SAFE_ASCII)
    return _SQS_UNSAFE.search(text) is None


def dead_letter_attributes(reason: str, detail: str, field: str | None, at_ms: int, attempts: int) -> dict[str, Any]:
    """The attributes that explain a dead letter, for an operator deciding whether to replay it."""
    attributes = {
        A_DL_REASON: _string(reason),
        A_DL_DETAIL: _string(detail[:1000] or "-"),
        A_DL_AT: {"DataType": "Number", "StringValue": str(at_ms)},
        A_DL_ATTEMPTS: {"DataType": "Number", "StringValue": str(attempts)},
    }
    if field:
        attributes[A_DL_FIELD] = _string(field[:256])
    return attributes


def sqs_attributes_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A Lambda record's attributes in SendMessage form, to forward a message unchanged."""
    converted = {}
    for name, value in (record.get("messageAttributes") or {}).items():
        if name in DEAD_LETTER_ATTRIBUTES:
            continue
        converted[name] = {"DataType": value.get("dataType", "String"), "StringValue": value.get("stringValue", "")}
    return converted


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}
