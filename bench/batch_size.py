"""How many SQS messages fit in one forwarder invocation: Lambda caps the event at 6 MB.

Each real payload is put in the Lambda SQS event two ways, and the event is serialized as
Lambda serializes it (JSON, UTF-8):
- this project's format: the message body is the raw payload, the routing data are message
  attributes (bench/../envelope.py);
- a JSON envelope: the body is `{"provider", "event_id", "event_type", "received_at", "body"}`
  with the payload escaped inside (then escaped again inside the Lambda event).
Record overhead (ids, receipt handle, attributes, ARN) uses realistic lengths: a receipt handle
is opaque and about 400 characters in AWS's ReceiveMessage examples.
"""

from __future__ import annotations

import json
import math
from typing import Any

from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.mixpanel.client import MAX_EVENTS_PER_REQUEST
from revenue_webhooks.service.envelope import to_sqs

from devstack.esm import sqs_record

from . import payloads
from .common import table

LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
RECEIPT_HANDLE_CHARS = 400
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:revenue-webhooks-EventsQueue-1A2B3C4D5E6F7"


def _record(body: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return sqs_record(
        message_id="19dd0b57-b21e-4ac1-bd88-01bbb068cb78",
        receipt_handle="A" * RECEIPT_HANDLE_CHARS,
        body=body,
        message_attributes=attributes,
        attributes={
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1732800000000",
            "SenderId": "AROAEXAMPLEROLEID0001:revenue-webhooks-ReceiverFunction-AbCdEfGh1234",
            "ApproximateFirstReceiveTimestamp": "1732800000001",
        },
        queue_arn=QUEUE_ARN,
    )


def record_bytes(payload: bytes, *, envelope: bool) -> int:
    """Bytes one message adds to the Lambda event (with its separating comma)."""
    parsed = json.loads(payload)
    queued = QueuedEvent("stripe", parsed["id"], parsed["type"], 1732800000000, payload)
    if envelope:
        body = json.dumps(
            {
                "provider": queued.provider,
                "event_id": queued.event_id,
                "event_type": queued.event_type,
                "received_at": queued.received_at_ms,
                "body": payload.decode(),
            }
        )
        record = _record(body, {})
    else:
        message = to_sqs(queued)
        record = _record(message["MessageBody"], message["MessageAttributes"])
    return len(json.dumps(record).encode()) + 1


def run(*, batch_size: int) -> dict[str, Any]:
    wrapper = len(json.dumps({"Records": []}).encode())
    samples = [*payloads.sized()]
    mix = payloads.unique_events(len(payloads.MIX))
    rows, results = [], []
    cases = [(p.name, [p.body]) for p in samples] + [("backlog mix (checkout + invoice)", mix)]
    for name, bodies in cases:
        raw = sum(len(b) for b in bodies) / len(bodies)
        entry: dict[str, Any] = {"payload": name, "payload_bytes": raw}
        for envelope in (False, True):
            per_record = sum(record_bytes(b, envelope=envelope) for b in bodies) / len(bodies)
            fit = int((LAMBDA_PAYLOAD_LIMIT - wrapper) // per_record)
            batch = min(fit, batch_size)
            key = "envelope" if envelope else "ours"
            entry[key] = {
                "record_bytes": per_record,
                "overhead_bytes": per_record - raw,
                "max_messages_per_invocation": fit,
                "messages_per_invocation_at_batch_size": batch,
                # one event per message: ceil(batch / 2000) requests per invocation
                "import_requests_per_million_events": 1e6 / batch * math.ceil(batch / MAX_EVENTS_PER_REQUEST)
                if batch
                else None,
            }
        results.append(entry)
        rows.append(
            [
                name,
                raw,
                entry["ours"]["record_bytes"],
                entry["ours"]["max_messages_per_invocation"],
                entry["envelope"]["record_bytes"],
                entry["envelope"]["max_messages_per_invocation"],
                entry["ours"]["import_requests_per_million_events"],
            ]
        )
    return {
        "method": (
            f"Lambda SQS events serialized as JSON; limit {LAMBDA_PAYLOAD_LIMIT} bytes; receipt handle "
            f"{RECEIPT_HANDLE_CHARS} characters; one Mixpanel event per message; BatchSize {batch_size}"
        ),
        "batch_size": batch_size,
        "results": results,
        "table": table(
            [
                "payload",
                "payload bytes",
                "ours: bytes/message",
                "ours: messages/6 MB",
                "envelope: bytes/message",
                "envelope: messages/6 MB",
                f"/import per 1M events (BatchSize {batch_size})",
            ],
            rows,
        ),
    }
