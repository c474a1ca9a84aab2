"""Google Play real-time developer notifications: Pub/Sub push, verified by its OIDC token, priced by the API.

A notification is a Pub/Sub push (`{"message": {"data": <base64 DeveloperNotification>, "messageId", ...},
"subscription"}`) whose `Authorization` token must be Google's for the configured push service account and
audience (_google_push.py). It only says that a purchase changed: the receiver checks and queues it, and
the forwarder fetches the subscription, one-time purchase and order from the Play Developer API through
its `PurchaseLookups` port (adapters/google_play.py) before this module maps them, so the receiver stays fast
and an API outage is a retry, not a loss.

Money is the order's `total` (what the buyer paid, tax included), a Money of `units` and `nanos` (10^-9)
converted exactly to minor units, with the order's `tax` (refunds: `refundDetails.tax`) as `Tax`; the
storefront is the purchase's `regionCode`. A subscription's MRR is its order line's total without tax over
the service period that order paid for (a free trial: 0). Google's service fee is not in the order: no `Fee`. The user is
`obfuscatedExternalAccountId`, the id an app passes to the Play Billing Library (`setObfuscatedAccountId`),
so app and server events join. Facts are keyed by order id (`GPA.…`, renewals `GPA.…..0`, `..1`) and
purchase token, never by the Pub/Sub message: redeliveries (same `messageId`) and reordering collapse.
Test purchases (licensed testers) are test events; `MODE` filters them here, since only the API says so.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from ..config import Settings
from ..domain import catalog as c
from ..domain.amounts import Amounts
from ..domain.facts import Deferred, Fact, Identity, ProfileEffect
from ..domain.identity import resolve
from ..domain.lookups import Found, Lookup
from ..domain.money import Money
from ..domain.mrr import Charge, MrrChange, interval_of, monthly_recurring
from ..domain.webhook import QueuedEvent
from . import _google_push as push
from ._common import as_id, iso_utc, obj, scaled_money, unix_from_iso, unix_from_number
from .base import (
    ParsedWebhook,
    PayloadInvalid,
    Provider,
    ProviderSpec,
    SignatureInvalid,
    SigningSecret,
    WebhookRequest,
    parse_json_object,
)

NAME = "googleplay"
NANOS = 9

# subscriptionNotification.notificationType (Google's RTDN reference).
SUBSCRIPTION_TYPES = {
    1: "SUBSCRIPTION_RECOVERED",
    2: "SUBSCRIPTION_RENEWED",
    3: "SUBSCRIPTION_CANCELED",
    4: "SUBSCRIPTION_PURCHASED",
    5: "SUBSCRIPTION_ON_HOLD",
    6: "SUBSCRIPTION_IN_GRACE_PERIOD",
    7: "SUBSCRIPTION_RESTARTED",
    8: "SUBSCRIPTION_PRICE_CHANGE_CONFIRMED",
    9: "SUBSCRIPTION_DEFERRED",
    10: "SUBSCRIPTION_PAUSED",
    11: "SUBSCRIPTION_PAUSE_SCHEDULE_CHANGED",
    12: "SUBSCRIPTION_REVOKED",
    13: "SUBSCRIPTION_EXPIRED",
    19: "SUBSCRIPTION_PRICE_CHANGE_UPDATED",
    20: "SUBSCRIPTION_PENDING_PURCHASE_CANCELED",
}
ONE_TIME_TYPES = {1: "ONE_TIME_PRODUCT_PURCHASED", 2: "ONE_TIME_PRODUCT_CANCELED"}
VOIDED = "VOIDED_PURCHASE"
TEST = "TEST_NOTIFICATION"

PRODUCES: dict[str, tuple[str, ...]] = {
    "SUBSCRIPTION_PURCHASED": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_STARTED),
    "SUBSCRIPTION_RENEWED": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
    "SUBSCRIPTION_RECOVERED": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
    "SUBSCRIPTION_CANCELED": (c.SUBSCRIPTION_CANCELLATION_SCHEDULED,),
    "SUBSCRIPTION_RESTARTED": (c.SUBSCRIPTION_REACTIVATED,),
    "SUBSCRIPTION_IN_GRACE_PERIOD": (c.PAYMENT_FAILED,),
    "SUBSCRIPTION_ON_HOLD": (c.PAYMENT_FAILED,),
    "SUBSCRIPTION_EXPIRED": (c.SUBSCRIPTION_CANCELLED,),
    "SUBSCRIPTION_REVOKED": (c.SUBSCRIPTION_CANCELLED,),
    "ONE_TIME_PRODUCT_PURCHASED": (c.PURCHASE_COMPLETED,),
    VOIDED: (c.REFUND_ISSUED,),
}
# What each lookup kind brings back (adapters/google_play.py): {"purchase": ..., "order": ...}.
SUBSCRIPTION, PRODUCT = "subscription", "product"
VOIDED_PRODUCT_TYPES = {1: SUBSCRIPTION, 2: PRODUCT}  # voidedPurchaseNotification.productType
FULL_REFUND, PARTIAL_REFUND = 1, 2  # voidedPurchaseNotification.refundType


def create(settings: Settings) -> GooglePlayProvider:
    return GooglePlayProvider(settings)


class GooglePlayProvider(Provider):
    name = NAME

    def prepare(self) -> None:
        push.prepare()

    def verify(self, request: WebhookRequest, secrets: Sequence[str]) -> None:
        config = push.verify_push(request.header("authorization"), secrets, self.settings.google_oidc_certs_url)
        notification = _Push.of(request.body).notification
        if notification.get("packageName") not in config.package_names:
            raise SignatureInvalid("notification for a package GooglePlayPushConfig does not name")

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        message = _Push.of(request.body)
        return ParsedWebhook(message.message_id, message.kind, None, message.notification)

    def is_relevant(self, event_type: str) -> bool:
        return event_type in PRODUCES  # the test notification (and unmapped types): acknowledged, ignored

    def lookups(self, event: QueuedEvent) -> tuple[Lookup, ...]:
        message = _Push.of(event.body)
        token, package = message.token, message.notification.get("packageName")
        if not token or not isinstance(package, str) or message.kind not in PRODUCES:
            return ()
        if message.kind == VOIDED:
            detail = obj(message.notification.get("voidedPurchaseNotification"))
            product_type = detail.get("productType")
            kind = VOIDED_PRODUCT_TYPES.get(product_type, PRODUCT) if isinstance(product_type, int) else PRODUCT
            order = as_id(detail.get("orderId"))
            return (Lookup(NAME, kind, (package, token, order)),) if order else ()
        kind = PRODUCT if message.kind in ONE_TIME_TYPES.values() else SUBSCRIPTION
        return (Lookup(NAME, kind, (package, token)),)

    def map(self, event: QueuedEvent) -> list[Fact | Deferred]:
        if self.lookups(event):
            return [Deferred("needs the Play Developer API: the forwarder maps it with map_with")]
        return []

    def map_with(self, event: QueuedEvent, found: Found) -> list[Fact | Deferred]:
        message = _Push.of(event.body)
        (lookup,) = self.lookups(event)
        document = obj(found.get(lookup))
        state = _State(message, lookup, obj(document.get("purchase")), obj(document.get("order")), self.settings)
        if not self.settings.accepts_mode(state.livemode):
            return []  # a licensed tester's purchase in a live deployment (or the reverse)
        handler = _HANDLERS.get(message.kind)
        return handler(state) if handler else []


@dataclass(frozen=True)
class _Push:
    """A Pub/Sub push body and the DeveloperNotification it carries."""

    message_id: str
    notification: dict[str, Any]
    kind: str
    token: str | None

    @classmethod
    def of(cls, body: bytes) -> _Push:
        envelope = parse_json_object(body)
        message = obj(envelope.get("message"))
        message_id = as_id(message.get("messageId") or message.get("message_id"))
        data = message.get("data")
        if not message_id or not isinstance(data, str):
            raise PayloadInvalid("not a Pub/Sub push: message.data and message.messageId are required")
        try:
            notification = parse_json_object(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError, PayloadInvalid):
            raise PayloadInvalid("message.data is not a base64 JSON DeveloperNotification") from None
        kind, token = _kind(notification)
        return cls(message_id, notification, kind, token)


def _kind(notification: dict[str, Any]) -> tuple[str, str | None]:
    """The notification's type name and purchase token (from whichever sub-notification it carries)."""
    for field, names in (
        ("subscriptionNotification", SUBSCRIPTION_TYPES),
        ("oneTimeProductNotification", ONE_TIME_TYPES),
    ):
        detail = notification.get(field)
        if isinstance(detail, dict):
            code = detail.get("notificationType")
            name = names.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
            return name or f"{field}.{code}", as_id(detail.get("purchaseToken"))
    if isinstance(notification.get("voidedPurchaseNotification"), dict):
        return VOIDED, as_id(notification["voidedPurchaseNotification"].get("purchaseToken"))
    if isinstance(notification.get("testNotification"), dict):
        return TEST, None
    raise PayloadInvalid("DeveloperNotification carries no known notification")


class _State:
    """A notification with the purchase and order the API returned, and the lookups every mapping needs."""

    def __init__(
        self, message: _Push, lookup: Lookup, purchase: dict[str, Any], order: dict[str, Any], settings: Settings
    ) -> None:
        self.message, self.purchase, self.order = message, purchase, order
        self.kind = lookup.kind
        self.token = message.token or ""
        event_ms = unix_from_number(message.notification.get("eventTimeMillis"))
        if event_ms is None:
            raise PayloadInvalid(f"Google Play notification {message.message_id} has no eventTimeMillis")
        self.event_time = event_ms
        self.event_ms = str(message.notification.get("eventTimeMillis"))
        self.line = obj((purchase.get("lineItems") or purchase.get("productLineItem") or [{}])[0])
        self.product = as_id(self.line.get("productId")) or as_id(
            obj(message.notification.get("oneTimeProductNotification")).get("sku")
        )
        accounts = obj(purchase.get("externalAccountIdentifiers")) if self.kind == SUBSCRIPTION else purchase
        account = as_id(accounts.get("obfuscatedExternalAccountId"))
        self.identity: Identity = resolve(
            settings,
            (),
            reference_ids=[account],
            customer=account or as_id(accounts.get("obfuscatedExternalProfileId")),
        )
        region = as_id(purchase.get("regionCode"))
        self.storefront = {c.STOREFRONT: region} if region else {}
        self.order_id = as_id(order.get("orderId"))

    @property
    def livemode(self) -> bool:
        return not (
            self.purchase.get("testPurchase") is not None or self.purchase.get("testPurchaseContext") is not None
        )

    def total(self) -> Money | None:
        return _money(self.order.get("total"))

    def plan(self) -> dict[str, Any]:
        return {c.PLAN: self.product} if self.product else {}

    def mrr(self, *, trialing: bool = False) -> Money | None:
        """The subscription's MRR from its order: the subscription line's total without its tax, over the service
        period the order paid for, normalised to a month; 0 in a free trial (in the recurring price's currency)."""
        if trialing:
            price = obj(obj(self.line.get("autoRenewingPlan")).get("recurringPrice"))
            currency = price.get("currencyCode") or obj(self.order.get("total")).get("currencyCode")
            return Money(0, currency.upper()) if isinstance(currency, str) and len(currency) == 3 else None
        line = next((obj(i) for i in self.order.get("lineItems") or [] if obj(i).get("subscriptionDetails")), {})
        details = obj(line.get("subscriptionDetails"))
        total, tax = _money(line.get("total")), _money(line.get("tax"))
        start = unix_from_iso(details.get("servicePeriodStartTime"))
        end = unix_from_iso(details.get("servicePeriodEndTime"))
        period = interval_of(start, end) if start and end else None
        if total is None or total.minor <= 0 or period is None:
            return None  # no paid order (yet), or a part period (a proration) that says nothing of a month
        net = total - tax if tax is not None and tax.currency == total.currency else total
        return monthly_recurring([Charge(Decimal(net.minor), *period)], total.currency)

    def paid_at(self) -> int:
        return (
            unix_from_iso(self.order.get("createTime"))
            or unix_from_iso(self.purchase.get("purchaseCompletionTime"))
            or unix_from_iso(self.purchase.get("startTime"))
            or self.event_time
        )


def _money(value: Any) -> Money | None:
    """A Google `Money` (units as a string, nanos) in exact minor units; None when unreadable or finer."""
    money = obj(value)
    units, nanos = money.get("units", "0"), money.get("nanos", 0)
    try:
        whole = int(units) if isinstance(units, (str, int)) and not isinstance(units, bool) else None
    except ValueError:
        return None
    if whole is None or isinstance(nanos, bool) or not isinstance(nanos, int):
        return None
    return scaled_money(whole * 10**NANOS + nanos, NANOS, money.get("currencyCode"))


def _amounts(paid: Money, tax_field: Any) -> Amounts | None:
    """The tax Google states on an order or refund, when in the currency paid (then Net Revenue follows)."""
    tax = _money(tax_field)
    return Amounts(tax=tax) if tax is not None and tax.currency == paid.currency else None


def _purchase(s: _State, purchase_type: str) -> list[Fact | Deferred]:
    money = s.total()
    if s.order_id is None or money is None or money.minor <= 0:
        return []  # free trials, and a purchase whose order is not there yet (the order's own notification will come)
    subscription = purchase_type != c.ONE_TIME
    properties: dict[str, Any] = {c.PURCHASE_TYPE: purchase_type, **s.plan(), **s.storefront}
    if subscription:
        properties[c.SUBSCRIPTION_ID] = s.token
    facts: list[Fact | Deferred] = [
        Fact(
            key=f"{NAME}:payment:{s.order_id}",
            event=c.PURCHASE_COMPLETED,
            time=s.paid_at(),
            identity=s.identity,
            money=money,
            order_id=s.order_id,
            properties=properties,
            profile=ProfileEffect(
                purchases=1,
                revenue=money,
                plan=s.product if subscription else None,
                status="active" if subscription else None,
            ),
            amounts=_amounts(money, s.order.get("tax")),
        )
    ]
    if purchase_type == c.SUBSCRIPTION_RENEWAL:
        after = s.mrr()
        facts.append(
            Fact(
                key=f"{NAME}:subscription-renewal:{s.order_id}",
                event=c.SUBSCRIPTION_RENEWED,
                time=s.paid_at(),
                identity=s.identity,
                money=money,
                order_id=s.order_id,
                properties={c.SUBSCRIPTION_ID: s.token, **s.plan()},
                # The renewal's order tells the MRR now, not what it was before (a price change, a lapse): no change.
                mrr=MrrChange(s.token, after) if after is not None else None,
            )
        )
    return facts


PENDING_STATES = ("SUBSCRIPTION_STATE_PENDING", "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED")


def _purchased(s: _State) -> list[Fact | Deferred]:
    if s.purchase.get("subscriptionState") in PENDING_STATES:
        return []  # a purchase awaiting payment (cash, slow methods) has not started: its payment will say so
    phase = obj(s.line.get("offerPhase"))
    trialing = "freeTrial" in phase
    status = "trialing" if trialing else "active"
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: s.token, c.STATUS: status, **s.plan(), **s.storefront}
    expires = unix_from_iso(s.line.get("expiryTime"))
    if trialing and expires:
        properties[c.TRIAL_END] = iso_utc(expires)
    started = Fact(
        key=f"{NAME}:subscription-start:{s.token}",
        event=c.SUBSCRIPTION_STARTED,
        time=unix_from_iso(s.purchase.get("startTime")) or s.event_time,
        identity=s.identity,
        properties=properties,
        profile=ProfileEffect(status=status, plan=s.product),
        mrr=MrrChange.started(s.token, s.mrr(trialing=trialing)),
    )
    return [*_purchase(s, c.SUBSCRIPTION_INITIAL), started]


def _renewed(s: _State) -> list[Fact | Deferred]:
    return _purchase(s, c.SUBSCRIPTION_RENEWAL)


def _one_time(s: _State) -> list[Fact | Deferred]:
    state = obj(s.purchase.get("purchaseStateContext")).get("purchaseState")
    if state not in (None, "PURCHASED"):
        return []  # pending (cash) or cancelled before payment
    return _purchase(s, c.ONE_TIME)


def _subscription_fact(
    s: _State, key: str, event: str, properties: dict[str, Any], profile: ProfileEffect | None = None
) -> Fact:
    return Fact(
        key=f"{NAME}:{key}",
        event=event,
        time=s.event_time,
        identity=s.identity,
        properties={c.SUBSCRIPTION_ID: s.token, **properties},
        profile=profile,
    )


def _canceled(s: _State) -> list[Fact | Deferred]:
    """The buyer (or the system) turned renewal off: access lasts until the expiry time."""
    ends = unix_from_iso(s.line.get("expiryTime"))
    properties = {c.CANCEL_AT: iso_utc(ends)} if ends else {}
    context = obj(s.purchase.get("canceledStateContext"))
    reason = next(iter(context), None)
    if reason:
        properties[c.REASON] = reason
    key = f"subscription-cancel-scheduled:{s.token}:{s.event_ms}"
    return [_subscription_fact(s, key, c.SUBSCRIPTION_CANCELLATION_SCHEDULED, properties)]


def _restarted(s: _State) -> list[Fact | Deferred]:
    return [_subscription_fact(s, f"subscription-reactivated:{s.token}:{s.event_ms}", c.SUBSCRIPTION_REACTIVATED, {})]


def _payment_problem(s: _State) -> list[Fact | Deferred]:
    reason = s.message.kind.removeprefix("SUBSCRIPTION_")
    return [
        Fact(
            key=f"{NAME}:payment-failed:{s.token}:{s.event_ms}",
            event=c.PAYMENT_FAILED,
            time=s.event_time,
            identity=s.identity,
            properties={c.SUBSCRIPTION_ID: s.token, c.REASON: reason, **s.plan()},
            profile=ProfileEffect(status="past_due"),
        )
    ]


def _ended(s: _State) -> list[Fact | Deferred]:
    # Revoked then expired is one ending: both are keyed by the purchase token.
    ends = unix_from_iso(s.line.get("expiryTime")) if s.message.kind == "SUBSCRIPTION_EXPIRED" else None
    fact = _subscription_fact(
        s,
        f"subscription-end:{s.token}",
        c.SUBSCRIPTION_CANCELLED,
        {c.REASON: s.message.kind.removeprefix("SUBSCRIPTION_"), **s.plan()},
        ProfileEffect(status="canceled"),
    )
    # From what its last paid order billed a month to zero (Churn); a trial that never paid ends from zero.
    before = s.mrr() or s.mrr(trialing=True)
    paid = s.mrr() is not None
    return [replace(fact, time=ends or fact.time, mrr=MrrChange.ended(s.token, before, was_paying=paid))]


def _voided(s: _State) -> list[Fact | Deferred]:
    """A refund or chargeback: the order's refund events, each with its own amount."""
    detail = obj(s.message.notification.get("voidedPurchaseNotification"))
    history = obj(s.order.get("orderHistory"))
    # (refund id, time, amount, reason, tax)
    refunds: list[tuple[str, int, Money | None, str | None, Any]] = []
    full = obj(history.get("refundEvent"))
    if full:
        details = obj(full.get("refundDetails"))
        refunds.append(
            (
                s.order_id or "",
                unix_from_iso(full.get("eventTime")) or s.event_time,
                _money(details.get("total")) or s.total(),
                as_id(full.get("refundReason")),
                details.get("tax") if details.get("total") else s.order.get("tax"),
            )
        )
    for partial in history.get("partialRefundEvents") or []:
        partial = obj(partial)
        if partial.get("state") != "PROCESSED_SUCCESSFULLY":
            continue
        when = partial.get("processTime") or partial.get("createTime")
        refunds.append(
            (
                f"{s.order_id}:{when}",
                unix_from_iso(when) or s.event_time,
                _money(obj(partial.get("refundDetails")).get("total")),
                None,
                obj(partial.get("refundDetails")).get("tax"),
            )
        )
    if not refunds and detail.get("refundType") == FULL_REFUND and s.order_id:
        # The order's history not updated yet: the whole order.
        refunds.append((s.order_id, s.event_time, s.total(), None, s.order.get("tax")))
    facts: list[Fact | Deferred] = []
    for refund_id, when, money, reason, tax in refunds:
        if money is None or money.minor <= 0:
            continue
        properties: dict[str, Any] = {c.REFUND_ID: refund_id, **s.storefront}
        if reason:
            properties[c.REASON] = reason
        facts.append(
            Fact(
                key=f"{NAME}:refund:{refund_id}",
                event=c.REFUND_ISSUED,
                time=when,
                identity=s.identity,  # the purchase names its account
                money=money,
                order_id=s.order_id,
                properties=properties,
                profile=ProfileEffect(refunds=1, revenue=-money),
                amounts=_amounts(money, tax),
            )
        )
    if not facts and detail.get("refundType") == PARTIAL_REFUND:
        return [Deferred(f"order {s.order_id} shows no processed partial refund yet")]
    return facts


_HANDLERS: dict[str, Callable[[_State], list[Fact | Deferred]]] = {
    "SUBSCRIPTION_PURCHASED": _purchased,
    "SUBSCRIPTION_RENEWED": _renewed,
    "SUBSCRIPTION_RECOVERED": _renewed,
    "SUBSCRIPTION_CANCELED": _canceled,
    "SUBSCRIPTION_RESTARTED": _restarted,
    "SUBSCRIPTION_IN_GRACE_PERIOD": _payment_problem,
    "SUBSCRIPTION_ON_HOLD": _payment_problem,
    "SUBSCRIPTION_EXPIRED": _ended,
    "SUBSCRIPTION_REVOKED": _ended,
    "ONE_TIME_PRODUCT_PURCHASED": _one_time,
    VOIDED: _voided,
}
assert set(_HANDLERS) == set(PRODUCES), "every produced Google Play type needs a handler"


def push_body(notification: dict[str, Any], message_id: str, publish_time: str, subscription: str) -> bytes:
    """The body Pub/Sub pushes for a DeveloperNotification (for the local stack and the tests)."""
    data = base64.b64encode(json.dumps(notification).encode()).decode()
    message = {
        "data": data,
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": publish_time,
        "publish_time": publish_time,
        "attributes": {},
    }
    return json.dumps({"message": message, "subscription": subscription}).encode()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """A push's headers: `secret` is the OIDC token Google mints per push (devstack/stores/google.py mints
    local ones); the body itself is not signed."""
    return {"content-type": "application/json", "authorization": f"Bearer {secret}"}


SPEC = ProviderSpec(
    route=NAME,
    title="Google Play",
    signing=SigningSecret(variable="GOOGLEPLAY_PUSH_CONFIG_ID", resource="GooglePlayPushConfig", prefix="", whole=True),
    create=create,
    produces=PRODUCES,
    sign=sign,
    user_agent="APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
)
