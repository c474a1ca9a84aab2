"""The webhook Stripe would have sent for an object read from its API: what backfill enqueues and reconcile counts.

Stripe's list endpoints keep every paid invoice, Checkout Session, PaymentIntent, refund and subscription for
ever; its events only 30 days. So history is read from the lists and each object is turned into the snapshot
event Stripe sent when it happened (`invoice.paid` for a paid invoice...), which the forwarder maps with the
webhooks' own code. The facts of these types are keyed by the business object (session, invoice, refund,
subscription), never by the event id, so an object's webhook and its backfilled twin are one fact, one ledger
entry and one Mixpanel event.

What a list cannot give back is a subscription's past moments (a plan change, a scheduled cancellation, a
trial ending, a failed payment): those exist only as events, and catch-up recovers them for Stripe's 30 days.
A backfilled `Subscription Started` carries the plan the subscription has now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import dig

Event = dict[str, Any]
# The id prefix of the events built here: what tells a backfilled message from a webhook in logs and dead letters.
BACKFILL_EVENT_PREFIX = "evt_backfill_"


@dataclass(frozen=True)
class HistoryKind:
    """One list endpoint of Stripe's history and the events one listed object stands for.

    `permission` is what a restricted key needs to read it (Dashboard name, "Read" access).
    """

    name: str
    path: str
    permission: str
    events: Callable[[dict[str, Any], str | None], list[Event]]
    params: Mapping[str, Any] = field(default_factory=dict)
    expand: tuple[str, ...] = ()

    def list_params(self) -> dict[str, Any]:
        """The filters and expansions of every list request of this kind (a page adds limit, created, cursor)."""
        params: dict[str, Any] = dict(self.params)
        if self.expand:
            params["expand"] = list(self.expand)
        return params


def _event(kind: str, obj: dict[str, Any], created: Any, api_version: str | None) -> Event:
    """A snapshot event in Stripe's shape, with a deterministic id naming the object it was built from."""
    digest = hashlib.sha256(f"{kind}|{obj.get('id')}".encode()).hexdigest()[:24]
    return {
        "id": f"{BACKFILL_EVENT_PREFIX}{digest}",
        "object": "event",
        "api_version": api_version,
        "created": int(created or obj.get("created") or 0),
        "data": {"object": obj},
        "livemode": bool(obj.get("livemode")),
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def _collapse(obj: dict[str, Any], *fields: str) -> dict[str, Any]:
    """The object as a webhook carries it: expanded references back to their ids."""
    collapsed = dict(obj)
    for name in fields:
        value = collapsed.get(name)
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            collapsed[name] = value["id"]
    return collapsed


def _charge_time(holder: Any) -> int | None:
    """When the payment was made: its charge's `created` (listed expanded), else the holder's own."""
    if not isinstance(holder, dict):
        return None
    charge = holder.get("latest_charge")
    if isinstance(charge, dict) and charge.get("created"):
        return int(charge["created"])
    return int(holder["created"]) if holder.get("created") else None


def invoice_events(invoice: dict[str, Any], api_version: str | None = None) -> list[Event]:
    """A paid invoice: `invoice.paid`, at the time it was paid."""
    if invoice.get("status") != "paid":
        return []
    paid_at = dig(invoice, "status_transitions", "paid_at") or invoice.get("created")
    return [_event("invoice.paid", invoice, paid_at, api_version)]


def checkout_session_events(session: dict[str, Any], api_version: str | None = None) -> list[Event]:
    """A completed Checkout Session: `checkout.session.completed`, at its payment's time."""
    if session.get("status") != "complete":
        return []
    when = _charge_time(session.get("payment_intent")) or session.get("created")
    return [_event("checkout.session.completed", _collapse(session, "payment_intent"), when, api_version)]


def payment_intent_events(intent: dict[str, Any], api_version: str | None = None) -> list[Event]:
    """A succeeded PaymentIntent: `payment_intent.succeeded`, at its charge's time.

    Stripe sends it for every payment, Checkout's and invoices' too: the mapping decides which count.
    """
    if intent.get("status") != "succeeded":
        return []
    return [_event("payment_intent.succeeded", _collapse(intent, "latest_charge"), _charge_time(intent), api_version)]


def refund_events(refund: dict[str, Any], api_version: str | None = None) -> list[Event]:
    """A refund: `refund.created`, at its creation."""
    return [_event("refund.created", refund, refund.get("created"), api_version)]


def subscription_events(subscription: dict[str, Any], api_version: str | None = None) -> list[Event]:
    """A subscription's start (`customer.subscription.created`) and, once it ended, its end (`...deleted`).

    The start is the subscription as it is now, with the status it began with: `trialing` when it began with
    a trial, else `active` (an `incomplete` start is announced by the update that activates it, whose object
    is then `active` too).
    """
    events: list[Event] = []
    started = subscription.get("start_date") or subscription.get("created")
    if subscription.get("status") not in ("incomplete", "incomplete_expired"):
        trial_start = subscription.get("trial_start")
        began_trialing = trial_start is not None and int(trial_start) <= int(started or 0) + 60
        at_start = {**subscription, "status": "trialing" if began_trialing else "active"}
        for name in ("canceled_at", "ended_at", "cancellation_details"):
            if name in at_start:
                at_start[name] = None
        at_start["cancel_at_period_end"] = False
        at_start["cancel_at"] = None
        events.append(_event("customer.subscription.created", at_start, started, api_version))
    if subscription.get("status") == "canceled" and subscription.get("ended_at"):
        events.append(_event("customer.subscription.deleted", subscription, subscription["ended_at"], api_version))
    return events


# What backfill and reconcile read, in this order. Restricted-key permissions: Stripe's Dashboard names.
KINDS: tuple[HistoryKind, ...] = (
    HistoryKind(
        "invoices", "/v1/invoices", "Invoices", invoice_events, params={"status": "paid"}, expand=("data.payments",)
    ),
    HistoryKind(
        "checkout_sessions",
        "/v1/checkout/sessions",
        "Checkout Sessions",
        checkout_session_events,
        params={"status": "complete"},
        expand=("data.payment_intent.latest_charge",),
    ),
    HistoryKind(
        "payment_intents",
        "/v1/payment_intents",
        "PaymentIntents",
        payment_intent_events,
        expand=("data.latest_charge",),
    ),
    HistoryKind("refunds", "/v1/refunds", "Refunds", refund_events),
    HistoryKind("subscriptions", "/v1/subscriptions", "Subscriptions", subscription_events, params={"status": "all"}),
)
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}
# Which kind an object id names (`--ids in_...,re_...`): Stripe's id prefixes.
ID_PREFIXES = {
    "in_": "invoices",
    "cs_": "checkout_sessions",
    "pi_": "payment_intents",
    "re_": "refunds",
    "pyr_": "refunds",
    "sub_": "subscriptions",
}


def kind_of_id(object_id: str) -> HistoryKind | None:
    """The history kind an object id belongs to (by Stripe's prefix), None for any other object."""
    for prefix, name in ID_PREFIXES.items():
        if object_id.startswith(prefix):
            return KINDS_BY_NAME[name]
    return None


def retrieve_path(kind: HistoryKind, object_id: str) -> str:
    return f"{kind.path}/{object_id}"


def expand_for_retrieve(kind: HistoryKind) -> list[str]:
    """A list's `data.` expansions, for retrieving one object of the kind."""
    return [path.removeprefix("data.") for path in kind.expand]


# ---- money: what reconcile counts ------------------------------------------------------------------


@dataclass(frozen=True)
class StripeMoney:
    """A payment or refund as Stripe's own objects state it, with the webhook that should have counted it."""

    object_id: str
    kind: str  # "payment" or "refund"
    currency: str
    minor: int
    event: Event


REFUND_STATUSES_COUNTED = ("succeeded", "pending", "requires_action")


def _paid_by_invoices(invoices: list[dict[str, Any]]) -> set[str]:
    """PaymentIntents that paid invoices: the invoice counts them (basil's `payments`, or the older field)."""
    owned: set[str] = set()
    for invoice in invoices:
        for payment in dig(invoice, "payments", "data") or []:
            intent = dig(payment, "payment", "payment_intent")
            owned.add(intent["id"] if isinstance(intent, dict) else str(intent or ""))
        intent = invoice.get("payment_intent")
        owned.add(intent["id"] if isinstance(intent, dict) else str(intent or ""))
    owned.discard("")
    return owned


def money_in(objects: Mapping[str, list[dict[str, Any]]], api_version: str | None = None) -> list[StripeMoney]:
    """Every payment and refund among listed objects, each once, by the object that carries it.

    A paid invoice (`amount_paid`), a paid one-time Checkout Session (`amount_total`), a succeeded PaymentIntent
    that neither paid an invoice nor a Checkout Session (`amount_received`), and a refund that did not fail
    (`amount`). A PaymentIntent of a Checkout or an invoice is that object's payment, not another one.
    """
    found: list[StripeMoney] = []
    invoices = list(objects.get("invoices") or [])
    sessions = list(objects.get("checkout_sessions") or [])
    owned = _paid_by_invoices(invoices)
    for session in sessions:
        intent = session.get("payment_intent")
        owned.add(intent["id"] if isinstance(intent, dict) else str(intent or ""))
    for invoice in invoices:
        if invoice.get("status") == "paid" and int(invoice.get("amount_paid") or 0) > 0:
            for event in invoice_events(invoice, api_version):
                found.append(
                    StripeMoney(invoice["id"], "payment", invoice["currency"], int(invoice["amount_paid"]), event)
                )
    for session in sessions:
        paid = session.get("mode") == "payment" and session.get("payment_status") == "paid"
        if paid and int(session.get("amount_total") or 0) > 0:
            for event in checkout_session_events(session, api_version):
                found.append(
                    StripeMoney(session["id"], "payment", session["currency"], int(session["amount_total"]), event)
                )
    for intent in objects.get("payment_intents") or []:
        if intent["id"] in owned or int(intent.get("amount_received") or 0) <= 0:
            continue
        for event in payment_intent_events(intent, api_version):
            found.append(
                StripeMoney(intent["id"], "payment", intent["currency"], int(intent["amount_received"]), event)
            )
    for refund in objects.get("refunds") or []:
        if refund.get("status") in REFUND_STATUSES_COUNTED and int(refund.get("amount") or 0) > 0:
            for event in refund_events(refund, api_version):
                found.append(StripeMoney(refund["id"], "refund", refund["currency"], int(refund["amount"]), event))
    return found
