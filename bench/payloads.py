"""Real Stripe payloads (tests/fixtures/stripe, from stripe-ruby-mock) of several sizes, and unique copies of them.

Stripe sends pretty-printed JSON, and so do the fixtures; the bodies are kept byte-for-byte.
The large payload is the real `invoice.paid` with its one real line item repeated (each with its
own id), as an invoice with many lines looks.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from .common import FIXTURES

LARGE_INVOICE_LINES = 40


@dataclass(frozen=True)
class Payload:
    name: str
    body: bytes

    @property
    def size(self) -> int:
        return len(self.body)


def _fixture(name: str) -> bytes:
    return (FIXTURES / "stripe" / f"{name}.json").read_bytes()


def _dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, indent=2).encode()


def sized() -> list[Payload]:
    """Small (a Checkout payment), medium (a paid invoice) and large (a paid invoice with 40 lines)."""
    invoice = json.loads(_fixture("invoice.paid"))
    line = invoice["data"]["object"]["lines"]["data"][0]
    lines = []
    for index in range(LARGE_INVOICE_LINES):
        item = copy.deepcopy(line)
        item["id"] = f"il_{index:024d}"
        item["invoice_item"] = f"ii_{index:024d}"
        lines.append(item)
    invoice["data"]["object"]["lines"]["data"] = lines
    invoice["data"]["object"]["lines"]["total_count"] = len(lines)
    return [
        Payload("checkout.session.completed", _fixture("checkout.session.completed.payment_mode")),
        Payload("invoice.paid", _fixture("invoice.paid")),
        Payload(f"invoice.paid ({LARGE_INVOICE_LINES} lines)", _dumps(invoice)),
    ]


# The mix of a backlog: what a shop selling one-off purchases and invoices sends (each maps to one event).
MIX = ("checkout.session.completed.payment_mode", "invoice.paid")


def unique_events(count: int, *, customers: int | None = None) -> list[bytes]:
    """`count` distinct webhook bodies (own event, object and payment ids), spread over `customers` customers."""
    templates = [json.loads(_fixture(name)) for name in MIX]
    customers = customers or max(1, count // 3)
    bodies = []
    for index in range(count):
        event = copy.deepcopy(templates[index % len(templates)])
        event["id"] = f"evt_bench{index:012d}"
        event["livemode"] = True
        obj = event["data"]["object"]
        obj["id"] = f"{obj['id'].split('_', 1)[0]}_bench{index:012d}"
        obj["customer"] = f"cus_bench{index % customers:08d}"
        obj["metadata"] = {"user_id": f"user-{index % customers:08d}"}
        if obj.get("payment_intent"):
            obj["payment_intent"] = f"pi_bench{index:012d}"
        if obj.get("charge"):
            obj["charge"] = f"ch_bench{index:012d}"
        bodies.append(_dumps(event))
    return bodies
