"""Paddle Billing: `Paddle-Signature` verification with the standard library, and the Paddle event catalog.

Why not `paddle-python-sdk` (1.16.1): importing its verifier imports the whole API client and
`requests` (about 0.5 s of `python -X importtime` on a cold receiver, 8 MB installed), it needs an
adapter request object or a `Secret` wrapper, signs `int(ts)` rather than the `ts` it was sent, and
checks the timestamp against the clock with a 5 s window. The scheme itself is short: hex
HMAC-SHA256 of `ts + ":" + raw body`, one or more `h1` during secret rotation. Here `ts` is checked
against API Gateway's request time (SIGNATURE_TOLERANCE_SECONDS back, FUTURE_SKEW_SECONDS ahead).

Mapping: `transaction.completed` is the money (`details.totals.grand_total`, minor units of
`currency_code`), its `origin` telling a first purchase from a renewal; `transaction.payment_failed` is
one Payment Failed per failed attempt (`payments[]`, keyed by `payment_attempt_id`); subscription events start
and end subscriptions; a refund is an `adjustment` with `action=refund` once Paddle has approved it
(refunds are created `pending_approval`, so both `adjustment.created` and `adjustment.updated` are
read, keyed by adjustment id). Paddle sends no previous values on `subscription.updated`, so only a
newly scheduled cancellation is read from it (with the MRR the entity describes, but no MRR change).
MRR (domain/mrr.py, _paddle_economics.py): created (New; a trial is 0), `subscription.activated` after a
trial (Trial Converted, New), paused (Churn) and resumed (Reactivation), canceled (Churn), and a renewal's
billed items (MRR after, no change).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..config import Settings
from ..domain import catalog as c
from ..domain.facts import Deferred, Fact, Identity, ProfileEffect, payment_ref
from ..domain.identity import buyer_ip, resolve
from ..domain.money import Money
from ..domain.mrr import MrrChange
from ..domain.webhook import QueuedEvent
from ._common import check_window, hmac_sha256, iso_utc, minor_money, obj, unix_from_iso
from ._paddle_economics import (
    had_trial,
    payout_conversion,
    subscription_mrr,
    totals_amounts,
    was_in_trial,
)
from .base import (
    ParsedWebhook,
    PayloadInvalid,
    Provider,
    ProviderSpec,
    SignatureInvalid,
    SigningSecret,
    WebhookRequest,
    dig,
    matches_any,
    parse_json_object,
)

NAME = "paddle"
SIGNATURE_HEADER = "paddle-signature"

PRODUCES: dict[str, tuple[str, ...]] = {
    "transaction.completed": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
    "transaction.payment_failed": (c.PAYMENT_FAILED,),
    "subscription.created": (c.SUBSCRIPTION_STARTED,),
    "subscription.updated": (c.SUBSCRIPTION_CANCELLATION_SCHEDULED,),
    "subscription.canceled": (c.SUBSCRIPTION_CANCELLED,),
    "subscription.activated": (c.TRIAL_CONVERTED,),
    "subscription.paused": (c.SUBSCRIPTION_CHANGED,),
    "subscription.resumed": (c.SUBSCRIPTION_CHANGED,),
    "adjustment.created": (c.REFUND_ISSUED,),
    "adjustment.updated": (c.REFUND_ISSUED,),
}

# Transaction `origin` -> Purchase Type; web and api are a subscription's first payment when they carry one.
PURCHASE_TYPE_BY_ORIGIN = {
    "subscription_recurring": c.SUBSCRIPTION_RENEWAL,
    "subscription_update": c.SUBSCRIPTION_UPDATE,
    "subscription_charge": c.ONE_TIME,  # a one-off charge billed to a subscription
}
STARTED_STATUSES = ("active", "trialing")


def create(settings: Settings) -> PaddleProvider:
    return PaddleProvider(settings)


class PaddleProvider(Provider):
    name = NAME

    def verify(self, request: WebhookRequest, secrets: Sequence[str]) -> None:
        header = request.header(SIGNATURE_HEADER)
        if not header:
            raise SignatureInvalid("missing Paddle-Signature header")
        timestamp, signatures = _parse_signature(header)
        if timestamp is None or not signatures:
            raise SignatureInvalid("Paddle-Signature needs ts and at least one h1")
        signed = timestamp.encode("ascii") + b":" + request.body
        expected = [hmac_sha256(secret, signed).hex() for secret in secrets if secret]
        if not matches_any(expected, [signature.lower() for signature in signatures]):
            raise SignatureInvalid("no Paddle-Signature h1 matches a configured secret")
        check_window(
            int(timestamp),
            request,
            past_s=self.settings.signature_tolerance_s,
            future_s=self.settings.future_skew_s,
            what="Paddle-Signature ts",
        )

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        event = parse_json_object(request.body)
        event_id, event_type = event.get("event_id"), event.get("event_type")
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not event_type:
            raise PayloadInvalid("not a Paddle notification: event_id and event_type are required")
        if not isinstance(event.get("data"), dict):
            raise PayloadInvalid("not a Paddle notification: data is required")
        # Sandbox and live are separate Paddle accounts with their own destinations and secrets.
        return ParsedWebhook(event_id, event_type, None, event)

    def is_relevant(self, event_type: str) -> bool:
        return event_type in PRODUCES

    def map(self, event: QueuedEvent) -> list[Fact | Deferred]:
        handler = _HANDLERS.get(event.event_type)
        payload = parse_json_object(event.body) if handler else {}
        if handler is None or not isinstance(payload.get("data"), dict) or not isinstance(payload.get("event_id"), str):
            return []
        return handler(_Event(payload, self.settings))


class _Event:
    """One Paddle notification: its entity (`data`) and its own id and time."""

    def __init__(self, payload: dict[str, Any], settings: Any) -> None:
        self.id: str = payload["event_id"]
        self.data: dict[str, Any] = payload["data"]
        self.occurred_at = unix_from_iso(payload.get("occurred_at"))
        self.settings = settings

    def time(self, *fields: str) -> int:
        """The entity's own time (first readable of `fields`), else when the event occurred."""
        for field in fields:
            seconds = unix_from_iso(self.data.get(field))
            if seconds is not None:
                return seconds
        if self.occurred_at is None:
            raise PayloadInvalid(f"Paddle {self.id} has no readable {', '.join(fields) or 'time'} nor occurred_at")
        return self.occurred_at

    def identity(self) -> Identity:
        return resolve(self.settings, [self.data.get("custom_data")], customer=self.data.get("customer_id"))


def _transaction_completed(e: _Event) -> list[Fact | Deferred]:
    txn = e.data
    txn_id = txn.get("id")
    totals = obj(dig(txn, "details", "totals"))
    money = minor_money(totals.get("grand_total"), totals.get("currency_code") or txn.get("currency_code"))
    if not isinstance(txn_id, str) or not txn_id or money is None or money.minor <= 0:
        return []  # zero-amount transactions (trials, payment-method changes) collect nothing
    subscription = txn.get("subscription_id") if isinstance(txn.get("subscription_id"), str) else None
    given_origin = txn.get("origin")
    origin = given_origin if isinstance(given_origin, str) else ""
    purchase_type = PURCHASE_TYPE_BY_ORIGIN.get(origin, c.SUBSCRIPTION_INITIAL if subscription else c.ONE_TIME)
    item = _plan_item(txn.get("items"))
    plan = _plan(item, dig(txn, "details", "line_items"))
    properties: dict[str, Any] = {c.PURCHASE_TYPE: purchase_type}
    if subscription:
        properties.update({c.SUBSCRIPTION_ID: subscription, **_price_properties(item, plan)})
    billed_at = e.time("billed_at")
    identity = e.identity()
    ip = buyer_ip(e.settings, [txn.get("custom_data")])
    payout = obj(dig(txn, "details", "payout_totals"))
    facts: list[Fact | Deferred] = [
        Fact(
            key=f"{NAME}:payment:{txn_id}",
            event=c.PURCHASE_COMPLETED,
            time=billed_at,
            identity=identity,
            money=money,
            order_id=txn_id,
            properties=properties,
            profile=ProfileEffect(purchases=1, revenue=money, plan=plan if subscription else None),
            ip=ip,
            links=(payment_ref(NAME, txn_id),),
            amounts=totals_amounts(totals, payout, money.currency),
            conversions=payout_conversion(money, payout, "grand_total"),
        )
    ]
    if subscription and purchase_type == c.SUBSCRIPTION_RENEWAL:
        # The renewal bills the subscription's recurring items as they are now: its MRR after (no previous).
        billed = {"currency_code": money.currency, "status": "active", "items": txn.get("items")}
        after = subscription_mrr(billed) if not int(totals.get("discount") or 0) else None
        facts.append(
            Fact(
                key=f"{NAME}:subscription-renewal:{txn_id}",
                event=c.SUBSCRIPTION_RENEWED,
                time=billed_at,
                identity=identity,
                money=money,
                order_id=txn_id,
                properties={c.SUBSCRIPTION_ID: subscription, c.PLAN: plan}
                if plan
                else {c.SUBSCRIPTION_ID: subscription},
                ip=ip,
                mrr=MrrChange(subscription, after) if after is not None else None,
            )
        )
    return facts


# Payment attempt statuses of a failed attempt (Paddle's `payments[].status`).
FAILED_ATTEMPT_STATUSES = ("error", "declined", "canceled")


def _transaction_payment_failed(e: _Event) -> list[Fact | Deferred]:
    """One Payment Failed per failed payment attempt: the newest failed one in `payments` (Paddle lists attempts
    newest first), keyed by its `payment_attempt_id`, numbered by the failed attempts so far."""
    txn = e.data
    txn_id = txn.get("id")
    attempts = [p for p in txn.get("payments") or [] if isinstance(p, dict)]
    failed = [p for p in attempts if p.get("status") in FAILED_ATTEMPT_STATUSES]
    if not isinstance(txn_id, str) or not txn_id or not failed:
        return []
    attempt = max(failed, key=lambda p: unix_from_iso(p.get("created_at")) or 0)
    attempt_id = attempt.get("payment_attempt_id") or e.id
    totals = obj(dig(txn, "details", "totals"))
    properties: dict[str, Any] = {c.ATTEMPT: len(failed)}
    if isinstance(attempt.get("error_code"), str) and attempt["error_code"]:
        properties[c.REASON] = attempt["error_code"]
    if isinstance(txn.get("subscription_id"), str):
        properties[c.SUBSCRIPTION_ID] = txn["subscription_id"]
    return [
        Fact(
            key=f"{NAME}:payment-failed:{txn_id}:{attempt_id}",
            event=c.PAYMENT_FAILED,
            time=unix_from_iso(attempt.get("created_at")) or e.time(),
            identity=e.identity(),
            money=minor_money(totals.get("grand_total"), totals.get("currency_code") or txn.get("currency_code")),
            order_id=txn_id,
            properties=properties,
            ip=buyer_ip(e.settings, [txn.get("custom_data")]),
        )
    ]


def _subscription_created(e: _Event) -> list[Fact | Deferred]:
    sub = e.data
    status = sub.get("status")
    if status not in STARTED_STATUSES or not isinstance(sub.get("id"), str):
        return []
    item = _plan_item(sub.get("items"))
    plan = _plan(item)
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: sub["id"], c.STATUS: status, **_price_properties(item, plan)}
    if isinstance(item, dict) and item.get("quantity"):
        properties[c.QUANTITY] = item["quantity"]
    trial_end = unix_from_iso(dig(item, "trial_dates", "ends_at")) if status == "trialing" else None
    if trial_end is not None:
        properties[c.TRIAL_END] = iso_utc(trial_end)
    after = subscription_mrr(sub)
    return [
        _subscription_fact(
            e,
            f"subscription-start:{sub['id']}",
            c.SUBSCRIPTION_STARTED,
            e.time("started_at", "created_at"),
            properties,
            ProfileEffect(status=status, plan=plan),
            MrrChange.started(sub["id"], after),
        )
    ]


def _subscription_updated(e: _Event) -> list[Fact | Deferred]:
    sub = e.data
    change = sub.get("scheduled_change")
    if not isinstance(sub.get("id"), str) or not isinstance(change, dict) or change.get("action") != "cancel":
        return []
    effective_at = unix_from_iso(change.get("effective_at"))
    if effective_at is None:
        return []
    # Keyed by the cancellation date, not the event: every later update while it stays scheduled repeats it.
    return [
        _subscription_fact(
            e,
            f"subscription-cancel-scheduled:{sub['id']}:{effective_at}",
            c.SUBSCRIPTION_CANCELLATION_SCHEDULED,
            e.time(),
            {c.SUBSCRIPTION_ID: sub["id"], c.CANCEL_AT: iso_utc(effective_at)},
            None,
            _mrr_after(sub),
        )
    ]


def _subscription_canceled(e: _Event) -> list[Fact | Deferred]:
    sub = e.data
    if not isinstance(sub.get("id"), str):
        return []
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: sub["id"]}
    plan = _plan(_plan_item(sub.get("items")))
    if plan:
        properties[c.PLAN] = plan
    canceled_at = e.time("canceled_at")
    was = subscription_mrr(sub, status="active")
    never_paying = was_in_trial(sub, canceled_at) or bool(sub.get("paused_at"))  # trial, or paused (at 0)
    mrr = MrrChange.ended(sub["id"], was, was_paying=not never_paying)
    return [
        _subscription_fact(
            e,
            f"subscription-end:{sub['id']}",
            c.SUBSCRIPTION_CANCELLED,
            canceled_at,
            properties,
            ProfileEffect(status="canceled"),
            mrr,
        )
    ]


def _subscription_activated(e: _Event) -> list[Fact | Deferred]:
    """A trial that ends in a paid bill; an activation without trial dates is the creation, counted there."""
    sub = e.data
    if not isinstance(sub.get("id"), str) or sub.get("status") != "active" or not had_trial(sub):
        return []
    after = subscription_mrr(sub)
    plan = _plan(_plan_item(sub.get("items")))
    return [
        _subscription_fact(
            e,
            f"trial-converted:{sub['id']}",
            c.TRIAL_CONVERTED,
            e.time("first_billed_at", "updated_at"),
            {c.SUBSCRIPTION_ID: sub["id"], **({c.PLAN: plan} if plan else {})},
            ProfileEffect(status="active"),
            MrrChange.started(sub["id"], after),
        )
    ]


def _subscription_paused(e: _Event) -> list[Fact | Deferred]:
    """Paused bills nothing: its MRR leaves (Churn) until `subscription.resumed` (Reactivation)."""
    return _status_change(e, "paused", churned=True)


def _subscription_resumed(e: _Event) -> list[Fact | Deferred]:
    return _status_change(e, "active", churned=False)


def _status_change(e: _Event, status: str, *, churned: bool) -> list[Fact | Deferred]:
    sub = e.data
    if not isinstance(sub.get("id"), str):
        return []
    paying = subscription_mrr(sub, status="active")
    mrr = None
    if paying is not None:
        zero = Money(0, paying.currency)
        mrr = MrrChange(sub["id"], zero, paying) if churned else MrrChange(sub["id"], paying, zero, was_paying=True)
    return [
        _subscription_fact(
            e,
            f"subscription-change:{sub['id']}:{e.id}",
            c.SUBSCRIPTION_CHANGED,
            e.time("paused_at" if churned else "updated_at"),
            {c.SUBSCRIPTION_ID: sub["id"], c.STATUS: status},
            ProfileEffect(status=status),
            mrr,
        )
    ]


def _mrr_after(sub: dict[str, Any]) -> MrrChange | None:
    """The MRR an entity describes, with no change: Paddle's updates carry no previous values."""
    after = subscription_mrr(sub)
    return MrrChange(sub["id"], after) if after is not None else None


def _adjustment(e: _Event) -> list[Fact | Deferred]:
    adjustment = e.data
    adjustment_id, txn_id = adjustment.get("id"), adjustment.get("transaction_id")
    if adjustment.get("action") != "refund" or adjustment.get("status") != "approved":
        return []  # pending_approval and rejected refunds moved no money; credits and chargebacks are not refunds
    totals = obj(adjustment.get("totals"))
    money = minor_money(totals.get("total"), totals.get("currency_code") or adjustment.get("currency_code"))
    if not isinstance(adjustment_id, str) or not adjustment_id or money is None or money.minor <= 0:
        return []
    properties: dict[str, Any] = {c.REFUND_ID: adjustment_id}
    if isinstance(adjustment.get("reason"), str) and adjustment["reason"]:
        properties[c.REASON] = adjustment["reason"]
    order_id = txn_id if isinstance(txn_id, str) and txn_id else None
    return [
        Fact(
            key=f"{NAME}:refund:{adjustment_id}",
            event=c.REFUND_ISSUED,
            # created_at, not the approval time: adjustment.created and .updated must render the same event.
            time=e.time("created_at"),
            identity=e.identity(),
            money=money,
            order_id=order_id,
            properties=properties,
            profile=ProfileEffect(refunds=1, revenue=-money),
            identity_from=(payment_ref(NAME, order_id),) if order_id else (),
            amounts=totals_amounts(totals, obj(adjustment.get("payout_totals")), money.currency),
            conversions=payout_conversion(money, obj(adjustment.get("payout_totals")), "total"),
        )
    ]


def _subscription_fact(
    e: _Event,
    key: str,
    event: str,
    time: int,
    properties: dict[str, Any],
    profile: ProfileEffect | None,
    mrr: MrrChange | None = None,
) -> Fact:
    return Fact(
        key=f"{NAME}:{key}",
        event=event,
        time=time,
        identity=e.identity(),
        properties=properties,
        profile=profile,
        ip=buyer_ip(e.settings, [e.data.get("custom_data")]),
        mrr=mrr,
    )


# --- field readers ---------------------------------------------------------------------------


def _parse_signature(header: str) -> tuple[str | None, list[str]]:
    """`ts=...;h1=...[;h1=...]` -> (ts as sent, if all digits; the h1 values)."""
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        value = value.strip()
        if key == "ts" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = value
        elif key == "h1" and value:
            signatures.append(value)
    return timestamp, signatures


def _plan_item(items: Any) -> dict[str, Any] | None:
    """The item that names the plan: the first recurring one, else the first."""
    candidates = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    recurring = [item for item in candidates if dig(item, "price", "billing_cycle")]
    chosen = recurring or candidates
    return chosen[0] if chosen else None


def _plan(item: dict[str, Any] | None, line_items: Any = None) -> str | None:
    """The product's name when known (subscription items carry it, transactions in line items), else the price's."""
    if not isinstance(item, dict):
        return None
    price = obj(item.get("price"))
    product = dig(item, "product", "name")
    if not product and isinstance(line_items, list):
        product = next(
            (
                dig(line, "product", "name")
                for line in line_items
                if isinstance(line, dict) and line.get("price_id") == price.get("id")
            ),
            None,
        )
    names = (product, price.get("name"), price.get("product_id"), price.get("id"))
    return next((name for name in names if isinstance(name, str) and name), None)


def _price_properties(item: dict[str, Any] | None, plan: str | None) -> dict[str, Any]:
    price = obj(obj(item).get("price"))
    properties = {c.PLAN: plan, c.PRICE: price.get("id"), c.INTERVAL: dig(price, "billing_cycle", "interval")}
    return {key: value for key, value in properties.items() if value}


_HANDLERS: dict[str, Callable[[_Event], list[Fact | Deferred]]] = {
    "transaction.completed": _transaction_completed,
    "transaction.payment_failed": _transaction_payment_failed,
    "subscription.created": _subscription_created,
    "subscription.updated": _subscription_updated,
    "subscription.canceled": _subscription_canceled,
    "subscription.activated": _subscription_activated,
    "subscription.paused": _subscription_paused,
    "subscription.resumed": _subscription_resumed,
    "adjustment.created": _adjustment,
    "adjustment.updated": _adjustment,
}
assert set(_HANDLERS) == set(PRODUCES), "every produced Paddle type needs a handler"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """A delivery's headers as Paddle Billing signs them (for the tools and tests)."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "paddle-signature": f"ts={ts};h1={signature}"}


SPEC = ProviderSpec(
    route=NAME,
    title="Paddle Billing",
    signing=SigningSecret(
        variable="PADDLE_WEBHOOK_SECRET_ID", resource="PaddleWebhookSecret", prefix="pdl_ntfset_local_"
    ),
    create=create,
    produces=PRODUCES,
    sign=sign,
    user_agent="Paddle",
)
