"""A verified provider webhook as it travels from the receiver to the forwarder.

The body is exactly what the provider signed and sent; how it is carried (the SQS message format)
is the queue adapter's business (adapters/envelope.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """A verified provider webhook, with what the forwarder needs besides its body."""

    provider: str  # the route it came in on: stripe, shopify, ..., or a Standard Webhooks sender
    event_id: str
    event_type: str
    received_at_ms: int  # when API Gateway received the request, Unix milliseconds
    body: bytes
