"""Shopify: `X-Shopify-Hmac-Sha256` verification with the standard library, and order, refund and
subscription-contract mapping.

There is no maintained Python verifier for Shopify webhooks (the ShopifyAPI package only checks
OAuth query-string HMACs) and the scheme is one line: base64(HMAC-SHA256(secret, raw body)). The MAC
covers no timestamp, so a captured delivery could be replayed: deliveries whose
`X-Shopify-Triggered-At` is older than SHOPIFY_MAX_AGE_SECONDS are refused, `X-Shopify-Event-Id`
(the same on every retry) is the delivery's dedup id, and every fact is keyed by the order, refund
or contract it describes. The topic is the `X-Shopify-Topic` header; the body has none.

Money is what the customer paid in the currency charged: `total_price_set.presentment_money` when
present (multi-currency stores charge in the presentment currency), else `total_price`/`currency`.
Refunds are the sum of the refund's successful `refund` transactions, keyed by refund id, so
`refunds/create` and the refunds embedded in `orders/cancelled` collapse into one event each.
Subscription-contract and billing-attempt bodies carry no time and no amount: their facts take API
Gateway's receipt time, and subscription money arrives with the renewal order's `orders/paid`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
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
from ._common import as_id, check_window, hmac_sha256, items, major_money, unix_from_iso
from .base import (
    ParsedWebhook,
    PayloadInvalid,
    Provider,
    ProviderSpec,
    SignatureInvalid,
    SigningSecret,
    TimestampOutOfTolerance,
    WebhookRequest,
    dig,
    matches_any,
    parse_json_object,
)

NAME = "shopify"

HMAC_HEADER = "x-shopify-hmac-sha256"
TOPIC_HEADER = "x-shopify-topic"
EVENT_ID_HEADER = "x-shopify-event-id"
WEBHOOK_ID_HEADER = "x-shopify-webhook-id"  # older API versions send no event id; same on retries
TRIGGERED_AT_HEADER = "x-shopify-triggered-at"

PRODUCES: dict[str, tuple[str, ...]] = {
    "orders/paid": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
    "refunds/create": (c.REFUND_ISSUED,),
    "orders/cancelled": (c.REFUND_ISSUED,),
    "subscription_contracts/create": (c.SUBSCRIPTION_STARTED,),
    "subscription_contracts/cancel": (c.SUBSCRIPTION_CANCELLED,),
    "subscription_contracts/expire": (c.SUBSCRIPTION_CANCELLED,),
    "subscription_billing_attempts/failure": (c.PAYMENT_FAILED,),
}

# `source_name` of orders that a subscription billing attempt created (renewals); the second is the
# newer value (observed in public integrations, not in Shopify's reference docs).
SHOP_MONEY_SOURCE = "shopify_shop_money"
RENEWAL_SOURCES = frozenset(["subscription_contract", "subscription_contract_checkout_one"])


def create(settings: Settings) -> ShopifyProvider:
    return ShopifyProvider(settings)


def contract_ref(contract_id: str) -> str:
    """Ledger key under which a contract records its customer, for billing attempts (which name none)."""
    return f"{NAME}:contract-ref:{contract_id}"


class ShopifyProvider(Provider):
    name = NAME

    def verify(self, request: WebhookRequest, secrets: Sequence[str]) -> None:
        given = request.header(HMAC_HEADER)
        if not given:
            raise SignatureInvalid("missing X-Shopify-Hmac-Sha256 header")
        expected = [base64.b64encode(hmac_sha256(secret, request.body)).decode("ascii") for secret in secrets if secret]
        if not matches_any(expected, [given.strip()]):
            raise SignatureInvalid("X-Shopify-Hmac-Sha256 matches no configured secret")
        # Checked after the MAC so that only genuine (possibly replayed) deliveries reach this message.
        triggered_at = unix_from_iso(request.header(TRIGGERED_AT_HEADER))
        if triggered_at is None:
            raise TimestampOutOfTolerance("missing or unreadable X-Shopify-Triggered-At header")
        check_window(
            triggered_at,
            request,
            past_s=self.settings.shopify_max_age_s,
            future_s=self.settings.future_skew_s,
            what="X-Shopify-Triggered-At",
        )

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        topic = (request.header(TOPIC_HEADER) or "").strip()
        event_id = (request.header(EVENT_ID_HEADER) or request.header(WEBHOOK_ID_HEADER) or "").strip()
        if not topic:
            raise PayloadInvalid("missing X-Shopify-Topic header")
        if not event_id:
            raise PayloadInvalid("missing X-Shopify-Event-Id header")
        body = parse_json_object(request.body)
        return ParsedWebhook(event_id, topic, _livemode(body), body)

    def is_relevant(self, event_type: str) -> bool:
        return event_type in PRODUCES

    def map(self, event: QueuedEvent) -> list[Fact | Deferred]:
        handler = _HANDLERS.get(event.event_type)
        if handler is None:
            return []
        return handler(_Event(parse_json_object(event.body), event, self.settings))


class _Event:
    """One Shopify delivery: the body (an order, a refund or a contract) and where it came from."""

    def __init__(self, body: dict[str, Any], queued: QueuedEvent, settings: Any) -> None:
        self.body = body
        self.topic = queued.event_type
        self.settings = settings
        # Contract and billing-attempt bodies carry no time at all: API Gateway's receipt time of
        # this delivery is the only stable one (the fact key is stable, so Shopify's retries collapse).
        self.received_s = queued.received_at_ms // 1000


def _order_paid(e: _Event) -> list[Fact | Deferred]:
    order = e.body
    order_id = as_id(order.get("id"))
    money = _order_money(order)
    if order_id is None or money is None or money.minor <= 0:
        return []  # free orders collect nothing
    paid_at = _time(order, "processed_at", "created_at")
    attributes = _note_attributes(order)
    identity = resolve(e.settings, [attributes], customer=as_id(dig(order, "customer", "id")))
    ip = buyer_ip(e.settings, [attributes])
    renewal = str(order.get("source_name")) in RENEWAL_SOURCES
    facts: list[Fact | Deferred] = [
        Fact(
            key=f"{NAME}:payment:{order_id}",
            event=c.PURCHASE_COMPLETED,
            time=paid_at,
            identity=identity,
            money=money,
            order_id=order_id,
            properties={c.PURCHASE_TYPE: c.SUBSCRIPTION_RENEWAL if renewal else c.ONE_TIME},
            profile=ProfileEffect(purchases=1, revenue=money),
            ip=ip,
            links=(payment_ref(NAME, order_id),),
            amounts=_order_amounts(order, money),
            conversions=_shop_money(order, "total_price_set", money),
        )
    ]
    if renewal:
        facts.append(
            Fact(
                key=f"{NAME}:subscription-renewal:{order_id}",
                event=c.SUBSCRIPTION_RENEWED,
                time=paid_at,
                identity=identity,
                money=money,
                order_id=order_id,
                ip=ip,
            )
        )
    return facts


def _refund_created(e: _Event) -> list[Fact | Deferred]:
    return _refund_facts(e.body, order_id=None, identity=Identity())


def _order_cancelled(e: _Event) -> list[Fact | Deferred]:
    """A cancelled order's money comes back through its refunds; an unpaid cancelled order has none."""
    order = e.body
    identity = resolve(e.settings, [_note_attributes(order)], customer=as_id(dig(order, "customer", "id")))
    facts: list[Fact | Deferred] = []
    for refund in items(order.get("refunds")):
        if isinstance(refund, dict):
            facts += _refund_facts(refund, order_id=as_id(order.get("id")), identity=identity)
    return facts


def _refund_facts(refund: dict[str, Any], *, order_id: str | None, identity: Identity) -> list[Fact | Deferred]:
    refund_id = as_id(refund.get("id"))
    order_id = as_id(refund.get("order_id")) or order_id
    money = _refunded(refund.get("transactions"))
    if refund_id is None or money is None or money.minor <= 0:
        return []  # a restock-only refund returns no money
    return [
        Fact(
            key=f"{NAME}:refund:{refund_id}",
            event=c.REFUND_ISSUED,
            time=_time(refund, "created_at", "processed_at"),
            identity=identity,
            money=money,
            order_id=order_id,
            properties={c.REFUND_ID: refund_id},
            profile=ProfileEffect(refunds=1, revenue=-money),
            amounts=_refund_amounts(refund, money),
            identity_from=(payment_ref(NAME, order_id),) if order_id else (),
        )
    ]


def _contract_created(e: _Event) -> list[Fact | Deferred]:
    contract = e.body
    contract_id = as_id(contract.get("id"))
    status = contract.get("status")
    if contract_id is None or status != "active":
        return []
    identity = resolve(e.settings, [], customer=as_id(contract.get("customer_id")))
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: contract_id, c.STATUS: status}
    interval = dig(contract, "billing_policy", "interval")
    if isinstance(interval, str) and interval:
        properties[c.INTERVAL] = interval.lower()
    return [
        Fact(
            key=f"{NAME}:subscription-start:{contract_id}",
            event=c.SUBSCRIPTION_STARTED,
            time=e.received_s,
            identity=identity,
            properties=properties,
            profile=ProfileEffect(status="active"),
            links=(contract_ref(contract_id),),
        )
    ]


def _contract_ended(e: _Event) -> list[Fact | Deferred]:
    contract = e.body
    contract_id = as_id(contract.get("id"))
    if contract_id is None:
        return []
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: contract_id}
    if e.topic == "subscription_contracts/expire":
        properties[c.REASON] = "expired"
    return [
        Fact(
            key=f"{NAME}:subscription-end:{contract_id}",
            event=c.SUBSCRIPTION_CANCELLED,
            time=e.received_s,
            identity=resolve(e.settings, [], customer=as_id(contract.get("customer_id"))),
            properties=properties,
            profile=ProfileEffect(status="canceled"),
        )
    ]


def _billing_attempt_failed(e: _Event) -> list[Fact | Deferred]:
    attempt = e.body
    contract_id = as_id(attempt.get("subscription_contract_id"))
    attempt_id = (
        as_id(attempt.get("id")) or as_id(attempt.get("idempotency_key")) or as_id(attempt.get("admin_graphql_api_id"))
    )
    if contract_id is None or attempt_id is None:
        return []
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: contract_id}
    reason = attempt.get("error_code") or attempt.get("error_message")
    if isinstance(reason, str) and reason:
        properties[c.REASON] = reason
    return [
        Fact(
            key=f"{NAME}:payment-failed:{contract_id}:{attempt_id}",
            event=c.PAYMENT_FAILED,
            time=e.received_s,
            identity=Identity(),
            order_id=as_id(attempt.get("order_id")),
            properties=properties,
            identity_from=(contract_ref(contract_id),),  # the attempt names no customer; its contract does
        )
    ]


# --- field readers ---------------------------------------------------------------------------


def _order_money(order: dict[str, Any]) -> Money | None:
    presentment = dig(order, "total_price_set", "presentment_money")
    if isinstance(presentment, dict):
        money = major_money(presentment.get("amount"), presentment.get("currency_code"))
        if money is not None:
            return money
    return major_money(order.get("total_price"), order.get("currency"))


def _set_money(obj: dict[str, Any], field: str, currency: str) -> Money | None:
    """A `*_set` amount in `currency` (presentment or shop money, whichever is in it), else the plain field."""
    money_set = obj.get(f"{field}_set")
    if isinstance(money_set, dict):
        for side in ("presentment_money", "shop_money"):
            entry = money_set.get(side)
            if isinstance(entry, dict) and str(entry.get("currency_code", "")).upper() == currency:
                return major_money(entry.get("amount"), currency)
        return None
    return major_money(obj.get(field), currency) if obj.get("currency", currency) == currency else None


def _order_amounts(order: dict[str, Any], money: Money) -> Amounts | None:
    """`total_tax` and `total_discounts`, in the currency the customer paid."""
    tax, discount = _set_money(order, "total_tax", money.currency), _set_money(order, "total_discounts", money.currency)
    return Amounts(tax=tax, discount=discount) if tax is not None or discount is not None else None


def _refund_amounts(refund: dict[str, Any], money: Money) -> Amounts | None:
    """The refunded lines' `total_tax` (newer API versions state it per refund line)."""
    lines = [line for line in items(refund.get("refund_line_items")) if isinstance(line, dict)]
    taxes = [_set_money(line, "total_tax", money.currency) for line in lines]
    if not lines or any(tax is None for tax in taxes):
        return None
    return Amounts(tax=Money(sum(tax.minor for tax in taxes if tax is not None), money.currency))


def _shop_money(order: dict[str, Any], field: str, money: Money) -> tuple[Conversion, ...]:
    """Shopify's own conversion of a presentment-currency amount into the shop's currency."""
    shop = dig(order, field, "shop_money")
    converted = major_money(shop.get("amount"), shop.get("currency_code")) if isinstance(shop, dict) else None
    if converted is None or converted.currency == money.currency:
        return ()
    return (Conversion(money, converted, SHOP_MONEY_SOURCE),)


def _refunded(transactions: Any) -> Money | None:
    """Sum of a refund's successful `refund` transactions; None when absent or in several currencies."""
    total: Money | None = None
    for transaction in items(transactions):
        if not isinstance(transaction, dict):
            continue
        if transaction.get("kind") != "refund" or transaction.get("status") != "success":
            continue
        amount = major_money(transaction.get("amount"), transaction.get("currency"))
        if amount is None or (total is not None and total.currency != amount.currency):
            return None
        total = amount if total is None else Money(total.minor + amount.minor, total.currency)
    return total


def _note_attributes(order: dict[str, Any]) -> dict[str, Any]:
    """Cart attributes (`note_attributes`: a list of name/value pairs) as the dict identity rules read."""
    pairs = order.get("note_attributes")
    if not isinstance(pairs, list):
        return {}
    return {
        pair["name"]: pair.get("value")
        for pair in pairs
        if isinstance(pair, dict) and isinstance(pair.get("name"), str)
    }


def _time(obj: dict[str, Any], *fields: str) -> int:
    for field in fields:
        seconds = unix_from_iso(obj.get(field))
        if seconds is not None:
            return seconds
    raise PayloadInvalid(f"Shopify object has no readable {' or '.join(fields)}")


def _livemode(body: dict[str, Any]) -> bool | None:
    """Orders carry `test`; refunds carry it on their transactions; contracts have no flag."""
    if isinstance(body.get("test"), bool):
        return not body["test"]
    flags = [t.get("test") for t in items(body.get("transactions")) if isinstance(t, dict)]
    flags = [flag for flag in flags if isinstance(flag, bool)]
    return (not any(flags)) if flags else None


_HANDLERS: dict[str, Callable[[_Event], list[Fact | Deferred]]] = {
    "orders/paid": _order_paid,
    "refunds/create": _refund_created,
    "orders/cancelled": _order_cancelled,
    "subscription_contracts/create": _contract_created,
    "subscription_contracts/cancel": _contract_ended,
    "subscription_contracts/expire": _contract_ended,
    "subscription_billing_attempts/failure": _billing_attempt_failed,
}
assert set(_HANDLERS) == set(PRODUCES), "every produced Shopify topic needs a handler"


def sign(body: bytes, secret: str, timestamp: int | None = None, *, topic: str = "orders/paid") -> dict[str, str]:
    """A delivery's headers as Shopify sends them (for the tools and tests)."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "content-type": "application/json",
        "x-shopify-hmac-sha256": digest,
        "x-shopify-topic": topic,
        "x-shopify-event-id": str(uuid.uuid5(uuid.NAMESPACE_URL, hashlib.sha256(body).hexdigest() + topic)),
        "x-shopify-triggered-at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts)),
        "x-shopify-webhook-id": str(uuid.uuid5(uuid.NAMESPACE_OID, hashlib.sha256(body).hexdigest())),
        "x-shopify-shop-domain": "demo-shop.myshopify.com",
        "x-shopify-api-version": "2025-07",
    }


SPEC = ProviderSpec(
    route=NAME,
    title="Shopify",
    signing=SigningSecret(variable="SHOPIFY_WEBHOOK_SECRET_ID", resource="ShopifyWebhookSecret"),
    create=create,
    produces=PRODUCES,
    sign=sign,
    user_agent="Shopify-Captain-Hook",
    sample_options=lambda name: {"topic": name.replace(".", "/", 1)},  # orders.paid.json is orders/paid
)
