"""Lemon Squeezy: `X-Signature` verification with the standard library, and the Lemon Squeezy event catalog.

There is no official Python SDK; the scheme is hex HMAC-SHA256 of the raw body with the signing
secret chosen when the webhook was created. No timestamp is signed and no event id is sent, so the
delivery id is derived from the event name, the object's type, id and `updated_at` (its version):
a retry of the same delivery has the same id, a later change of the object a new one. Replays are
harmless because every fact is keyed by the order, invoice or subscription it describes.

Money is `total` in minor units of `currency`. A subscription's first payment is both an order
(`order_created`) and an invoice with `billing_reason=initial` (`subscription_payment_success`):
the order counts it, the initial invoice is skipped, renewals and plan-change invoices count as
themselves. Lemon Squeezy sends no refund id, only the order's (or invoice's) cumulative
`refunded_amount`; the first refund webhook for an order fixes its Refund Issued (exact for a full
refund and for a single partial refund; a second partial refund of the same order is not counted).

Gross and net: orders and invoices state `tax` and `discount_total`, and their amounts in USD
(`total_usd`, `refunded_amount_usd`: Lemon Squeezy's own conversion). No MRR: a subscription names its
variant and price id but not their amount or interval, and an invoice has amounts but no interval
(docs/providers.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from typing import Any

from ..config import Settings
from ..domain import catalog as c
from ..domain.amounts import Amounts
from ..domain.facts import Deferred, Fact, Identity, ProfileEffect, payment_ref
from ..domain.fx import Conversion
from ..domain.identity import buyer_ip, resolve
from ..domain.money import Money
from ..domain.webhook import QueuedEvent
from ._common import as_id, hmac_sha256, iso_utc, minor_money, unix_from_iso
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

NAME = "lemonsqueezy"
SIGNATURE_HEADER = "x-signature"

PRODUCES: dict[str, tuple[str, ...]] = {
    "order_created": (c.PURCHASE_COMPLETED,),
    "order_refunded": (c.REFUND_ISSUED,),
    "subscription_created": (c.SUBSCRIPTION_STARTED,),
    "subscription_payment_success": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
    "subscription_payment_refunded": (c.REFUND_ISSUED,),
    "subscription_cancelled": (c.SUBSCRIPTION_CANCELLATION_SCHEDULED,),
    "subscription_resumed": (c.SUBSCRIPTION_REACTIVATED,),
    "subscription_expired": (c.SUBSCRIPTION_CANCELLED,),
}

USD_SOURCE = "lemonsqueezy_usd"
PAID_STATUSES = ("paid", "refunded", "partial_refund")  # of orders and invoices: money was collected
PURCHASE_TYPE_BY_BILLING_REASON = {"renewal": c.SUBSCRIPTION_RENEWAL, "updated": c.SUBSCRIPTION_UPDATE}
STATUS_BY_SUBSCRIPTION_STATUS = {"active": "active", "on_trial": "trialing"}


def create(settings: Settings) -> LemonSqueezyProvider:
    return LemonSqueezyProvider(settings)


class LemonSqueezyProvider(Provider):
    name = NAME

    def verify(self, request: WebhookRequest, secrets: Sequence[str]) -> None:
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise SignatureInvalid("missing X-Signature header")
        expected = [hmac_sha256(secret, request.body).hex() for secret in secrets if secret]
        if not matches_any(expected, [given.strip().lower()]):
            raise SignatureInvalid("X-Signature matches no configured secret")

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        body = parse_json_object(request.body)
        event_name = dig(body, "meta", "event_name")
        data_type, data_id = dig(body, "data", "type"), as_id(dig(body, "data", "id"))
        if not isinstance(event_name, str) or not event_name or not isinstance(data_type, str) or not data_id:
            raise PayloadInvalid("not a Lemon Squeezy webhook: meta.event_name, data.type and data.id are required")
        attributes = dig(body, "data", "attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        version = attributes.get("updated_at") or attributes.get("created_at") or ""
        test_mode = dig(body, "meta", "test_mode")
        if not isinstance(test_mode, bool):
            test_mode = attributes.get("test_mode")
        livemode = (not test_mode) if isinstance(test_mode, bool) else None
        return ParsedWebhook(f"{event_name}:{data_type}:{data_id}:{version}", event_name, livemode, body)

    def is_relevant(self, event_type: str) -> bool:
        return event_type in PRODUCES

    def map(self, event: QueuedEvent) -> list[Fact | Deferred]:
        handler = _HANDLERS.get(event.event_type)
        body = parse_json_object(event.body) if handler else {}
        if (
            handler is None
            or not as_id(dig(body, "data", "id"))
            or not isinstance(dig(body, "data", "attributes"), dict)
        ):
            return []
        return handler(_Event(body, event.event_type, self.settings))


class _Event:
    """One Lemon Squeezy webhook: the object (`data`), its attributes and the checkout's custom data."""

    def __init__(self, body: dict[str, Any], name: str, settings: Any) -> None:
        self.name = name
        self.id: str = as_id(body["data"]["id"]) or ""
        self.attributes: dict[str, Any] = body["data"]["attributes"]
        self.custom_data = dig(body, "meta", "custom_data")
        self.settings = settings

    def time(self, *fields: str) -> int:
        for field in fields:
            seconds = unix_from_iso(self.attributes.get(field))
            if seconds is not None:
                return seconds
        raise PayloadInvalid(f"Lemon Squeezy {self.name} {self.id} has no readable {' or '.join(fields)}")

    def identity(self) -> Identity:
        return resolve(self.settings, [self.custom_data], customer=as_id(self.attributes.get("customer_id")))

    def money(self, field: str) -> Money | None:
        return minor_money(self.attributes.get(field), self.attributes.get("currency"))

    def in_usd(self, money: Money, field: str) -> tuple[Conversion, ...]:
        """Lemon Squeezy's own conversion of `money` into USD (`total_usd`, `refunded_amount_usd`)."""
        usd = minor_money(self.attributes.get(field), "USD")
        if usd is None or money.currency == "USD":
            return ()
        return (Conversion(money, usd, USD_SOURCE),)


def _order_created(e: _Event) -> list[Fact | Deferred]:
    if e.attributes.get("status") not in PAID_STATUSES:
        return []  # pending, failed and fraudulent orders collected nothing
    return _purchase(e, f"order-{e.id}", {}, renewal_of=None)


def _invoice_paid(e: _Event) -> list[Fact | Deferred]:
    reason = e.attributes.get("billing_reason")
    purchase_type = PURCHASE_TYPE_BY_BILLING_REASON.get(reason if isinstance(reason, str) else "")
    if purchase_type is None or e.attributes.get("status") not in PAID_STATUSES:
        return []  # billing_reason=initial: the subscription's first order already counts this money
    subscription = as_id(e.attributes.get("subscription_id"))
    properties: dict[str, Any] = {c.PURCHASE_TYPE: purchase_type}
    if subscription:
        properties[c.SUBSCRIPTION_ID] = subscription
    renewal_of = subscription if purchase_type == c.SUBSCRIPTION_RENEWAL else None
    return _purchase(e, f"invoice-{e.id}", properties, renewal_of=renewal_of)


def _purchase(e: _Event, object_id: str, properties: dict[str, Any], renewal_of: str | None) -> list[Fact | Deferred]:
    """A paid order or invoice. Orders carry no Purchase Type: they do not say whether they began a subscription."""
    money = e.money("total")
    if money is None or money.minor <= 0:
        return []
    paid_at = e.time("created_at")
    identity = e.identity()
    ip = buyer_ip(e.settings, [e.custom_data])
    facts: list[Fact | Deferred] = [
        Fact(
            key=f"{NAME}:payment:{object_id}",
            event=c.PURCHASE_COMPLETED,
            time=paid_at,
            identity=identity,
            money=money,
            order_id=e.id,
            properties=properties,
            profile=ProfileEffect(purchases=1, revenue=money),
            ip=ip,
            links=(payment_ref(NAME, object_id),),
            amounts=Amounts(tax=e.money("tax"), discount=e.money("discount_total")),
            conversions=e.in_usd(money, "total_usd"),
        )
    ]
    if renewal_of:
        facts.append(
            Fact(
                key=f"{NAME}:subscription-renewal:{object_id}",
                event=c.SUBSCRIPTION_RENEWED,
                time=paid_at,
                identity=identity,
                money=money,
                order_id=e.id,
                properties={c.SUBSCRIPTION_ID: renewal_of},
                ip=ip,
            )
        )
    return facts


def _order_refunded(e: _Event) -> list[Fact | Deferred]:
    return _refund(e, f"order-{e.id}")


def _invoice_refunded(e: _Event) -> list[Fact | Deferred]:
    if e.attributes.get("billing_reason") == "initial":
        return []  # its money was counted (and is refunded) on the subscription's first order
    return _refund(e, f"invoice-{e.id}")


def _refund(e: _Event, object_id: str) -> list[Fact | Deferred]:
    money = e.money("refunded_amount")
    if money is None or money.minor <= 0:
        return []
    identity = e.identity()
    return [
        Fact(
            key=f"{NAME}:refund:{object_id}",
            event=c.REFUND_ISSUED,
            time=e.time("refunded_at", "updated_at"),
            identity=identity,
            money=money,
            order_id=e.id,
            profile=ProfileEffect(refunds=1, revenue=-money),
            identity_from=() if identity.user_id else (payment_ref(NAME, object_id),),
            conversions=e.in_usd(money, "refunded_amount_usd"),
        )
    ]


def _subscription_created(e: _Event) -> list[Fact | Deferred]:
    status = STATUS_BY_SUBSCRIPTION_STATUS.get(str(e.attributes.get("status")))
    if status is None:
        return []
    plan = _plan(e.attributes)
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: e.id, c.STATUS: status}
    if plan:
        properties[c.PLAN] = plan
    variant = as_id(e.attributes.get("variant_id"))
    if variant:
        properties[c.PRICE] = variant
    trial_end = unix_from_iso(e.attributes.get("trial_ends_at")) if status == "trialing" else None
    if trial_end is not None:
        properties[c.TRIAL_END] = iso_utc(trial_end)
    quantity = dig(e.attributes, "first_subscription_item", "quantity")
    if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0:
        properties[c.QUANTITY] = quantity
    return [
        _subscription_fact(
            e,
            f"subscription-start:{e.id}",
            c.SUBSCRIPTION_STARTED,
            e.time("created_at"),
            properties,
            ProfileEffect(status=status, plan=plan),
        )
    ]


def _subscription_cancelled(e: _Event) -> list[Fact | Deferred]:
    """Lemon Squeezy's `cancelled` is a grace period until `ends_at`; `expired` is the end."""
    changed_at = e.time("updated_at")
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: e.id}
    ends_at = unix_from_iso(e.attributes.get("ends_at"))
    if ends_at is not None:
        properties[c.CANCEL_AT] = iso_utc(ends_at)
    return [
        _subscription_fact(
            e,
            f"subscription-cancel-scheduled:{e.id}:{changed_at}",
            c.SUBSCRIPTION_CANCELLATION_SCHEDULED,
            changed_at,
            properties,
            None,
        )
    ]


def _subscription_resumed(e: _Event) -> list[Fact | Deferred]:
    changed_at = e.time("updated_at")
    return [
        _subscription_fact(
            e,
            f"subscription-reactivated:{e.id}:{changed_at}",
            c.SUBSCRIPTION_REACTIVATED,
            changed_at,
            {c.SUBSCRIPTION_ID: e.id},
            ProfileEffect(status="active"),
        )
    ]


def _subscription_expired(e: _Event) -> list[Fact | Deferred]:
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: e.id}
    plan = _plan(e.attributes)
    if plan:
        properties[c.PLAN] = plan
    return [
        _subscription_fact(
            e,
            f"subscription-end:{e.id}",
            c.SUBSCRIPTION_CANCELLED,
            e.time("ends_at", "updated_at"),
            properties,
            ProfileEffect(status="canceled"),
        )
    ]


def _subscription_fact(
    e: _Event, key: str, event: str, time: int, properties: dict[str, Any], profile: ProfileEffect | None
) -> Fact:
    return Fact(
        key=f"{NAME}:{key}",
        event=event,
        time=time,
        identity=e.identity(),
        properties=properties,
        profile=profile,
        ip=buyer_ip(e.settings, [e.custom_data]),
    )


def _plan(attributes: dict[str, Any]) -> str | None:
    product, variant = attributes.get("product_name"), attributes.get("variant_name")
    if not isinstance(product, str) or not product:
        return None
    if isinstance(variant, str) and variant and variant.lower() != "default":
        return f"{product} - {variant}"
    return product


_HANDLERS: dict[str, Callable[[_Event], list[Fact | Deferred]]] = {
    "order_created": _order_created,
    "order_refunded": _order_refunded,
    "subscription_created": _subscription_created,
    "subscription_payment_success": _invoice_paid,
    "subscription_payment_refunded": _invoice_refunded,
    "subscription_cancelled": _subscription_cancelled,
    "subscription_resumed": _subscription_resumed,
    "subscription_expired": _subscription_expired,
}
assert set(_HANDLERS) == set(PRODUCES), "every produced Lemon Squeezy event needs a handler"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """A delivery's headers as Lemon Squeezy signs them (for the tools and tests; it signs no timestamp)."""
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "x-signature": signature}
    try:
        name = json.loads(body).get("meta", {}).get("event_name")
    except (ValueError, AttributeError):
        name = None
    if name:
        headers["x-event-name"] = str(name)
    return headers


SPEC = ProviderSpec(
    route=NAME,
    title="Lemon Squeezy",
    signing=SigningSecret(variable="LEMONSQUEEZY_WEBHOOK_SECRET_ID", resource="LemonSqueezyWebhookSecret"),
    create=create,
    produces=PRODUCES,
    sign=sign,
    user_agent="LemonSqueezy-Hookshot",
)
