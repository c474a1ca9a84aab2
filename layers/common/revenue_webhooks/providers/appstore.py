"""Apple App Store Server Notifications V2: verified with Apple's library, mapped to the catalog.

A notification is `{"signedPayload": "<JWS>"}`: an ES256 JWS whose `x5c` chain must lead to Apple's root
(shipped in the layer, providers/apple_roots/) and whose app and environment must be the ones in the
secret `AppStoreConfig` (_appstore_trust.py). The nested `signedTransactionInfo` and `signedRenewalInfo`
are strings inside the signed payload, so the outer signature covers them.

Money is the transaction's `price` in milli-units of `currency` (10990 = 10.99), converted exactly to minor
units; the storefront (`USA`) goes with it. The user is `appAccountToken`, the UUID an app passes to
StoreKit at purchase, so app and server events join (docs/identity.md). Facts are keyed by the
transaction (`transactionId`) or the subscription (`originalTransactionId`), never by the delivery
(`notificationUUID`, the same on Apple's retries): retries, history backfills and reordering collapse.
Sandbox notifications are test events, Production ones live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..config import Settings
from ..domain import catalog as c
from ..domain.facts import Deferred, Fact, Identity, ProfileEffect
from ..domain.identity import resolve
from ..domain.money import Money, exponent
from ..domain.webhook import QueuedEvent
from . import _appstore_trust as trust
from ._common import as_id, iso_utc, obj, scaled_money
from .base import (
    ParsedWebhook,
    PayloadInvalid,
    Provider,
    ProviderSpec,
    SigningSecret,
    WebhookRequest,
    parse_json_object,
)

NAME = "appstore"
MILLI = 3  # Apple's prices are milli-units of the currency

PRODUCES: dict[str, tuple[str, ...]] = {
    "SUBSCRIBED": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_STARTED),
    "DID_RENEW": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
    "DID_CHANGE_RENEWAL_PREF": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_CHANGED),
    "DID_CHANGE_RENEWAL_STATUS": (c.SUBSCRIPTION_CANCELLATION_SCHEDULED, c.SUBSCRIPTION_REACTIVATED),
    "EXPIRED": (c.SUBSCRIPTION_CANCELLED,),
    "DID_FAIL_TO_RENEW": (c.PAYMENT_FAILED,),
    "GRACE_PERIOD_EXPIRED": (c.PAYMENT_FAILED,),
    "REFUND": (c.REFUND_ISSUED,),
    "REVOKE": (c.SUBSCRIPTION_CANCELLED,),
    "ONE_TIME_CHARGE": (c.PURCHASE_COMPLETED,),
    "OFFER_REDEEMED": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_STARTED, c.SUBSCRIPTION_CHANGED),
    "PRICE_INCREASE": (c.SUBSCRIPTION_CHANGED,),
}
AUTO_RENEWABLE = "Auto-Renewable Subscription"
FREE_TRIAL = "FREE_TRIAL"
PRORATED = "REFUND_PRORATED"
PERCENT_SCALE = 100_000  # revocationPercentage is in milli-percent (50000 = 50 %)


def create(settings: Settings) -> AppStoreProvider:
    return AppStoreProvider(settings)


class AppStoreProvider(Provider):
    name = NAME

    def prepare(self) -> None:
        trust.prepare()

    def verify(self, request: WebhookRequest, secrets: Sequence[str]) -> None:
        trust.verify_notification(_signed_payload(request.body), secrets, self.settings.appstore_root_certificates)

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        payload = trust.decode(_signed_payload(request.body))
        uuid, kind = as_id(payload.get("notificationUUID")), payload.get("notificationType")
        if not uuid or not isinstance(kind, str) or not kind:
            raise PayloadInvalid("not an App Store notification: notificationUUID and notificationType are required")
        environment = next(
            (obj(payload.get(part)).get("environment") for part in ("data", "summary", "appData") if part in payload),
            None,
        )
        livemode = {"Production": True, "Sandbox": False}.get(environment) if isinstance(environment, str) else None
        return ParsedWebhook(uuid, kind, livemode, payload)

    def is_relevant(self, event_type: str) -> bool:
        return event_type in PRODUCES

    def map(self, event: QueuedEvent) -> list[Fact | Deferred]:
        notification = _Notification(trust.decode(_signed_payload(event.body)), self.settings)
        handler = _HANDLERS.get(notification.type)
        return handler(notification) if handler else []


def _signed_payload(body: bytes) -> str:
    payload = parse_json_object(body).get("signedPayload")
    if not isinstance(payload, str) or payload.count(".") != 2:
        raise PayloadInvalid("no signedPayload JWS in the body")
    return payload


@dataclass
class _Notification:
    """One decoded notification with its transaction and renewal info, and the lookups every mapping needs."""

    payload: dict[str, Any]
    settings: Settings

    def __post_init__(self) -> None:
        data = obj(self.payload.get("data"))
        self.type: str = str(self.payload.get("notificationType") or "")
        self.subtype: str = str(self.payload.get("subtype") or "")
        self.uuid: str = str(self.payload.get("notificationUUID") or "")
        signed_transaction, signed_renewal = data.get("signedTransactionInfo"), data.get("signedRenewalInfo")
        self.transaction = trust.decode(signed_transaction) if isinstance(signed_transaction, str) else {}
        self.renewal = trust.decode(signed_renewal) if isinstance(signed_renewal, str) else {}
        self.transaction_id = as_id(self.transaction.get("transactionId"))
        self.subscription = as_id(self.transaction.get("originalTransactionId")) or as_id(
            self.renewal.get("originalTransactionId")
        )
        self.product = as_id(self.transaction.get("productId")) or as_id(self.renewal.get("productId"))
        token = self.transaction.get("appAccountToken") or self.renewal.get("appAccountToken")
        self.identity: Identity = resolve(
            self.settings, (), reference_ids=[token], customer=as_id(token) or self.subscription
        )
        storefront = as_id(self.transaction.get("storefront"))
        self.storefront = {c.STOREFRONT: storefront} if storefront else {}

    def ms(self, source: dict[str, Any], field: str) -> int | None:
        """Unix seconds from one of Apple's millisecond dates."""
        value = source.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10**15:
            return None
        return value // 1000

    @property
    def signed_at(self) -> int:
        seconds = self.ms(self.payload, "signedDate")
        if seconds is None:
            raise PayloadInvalid(f"App Store notification {self.uuid} has no signedDate")
        return seconds

    def price(self) -> Money | None:
        """What the transaction charged: `price` milli-units of `currency`, exactly (None when not whole minor units)."""
        return scaled_money(self.transaction.get("price"), MILLI, self.transaction.get("currency"))

    def plan(self) -> dict[str, Any]:
        return {c.PLAN: self.product} if self.product else {}


# --- money -------------------------------------------------------------------------------------


def _purchase(n: _Notification, purchase_type: str) -> list[Fact | Deferred]:
    money = n.price()
    if n.transaction_id is None or money is None or money.minor <= 0:
        return []  # free trials and offers at no cost collect nothing
    paid_at = n.ms(n.transaction, "purchaseDate") or n.signed_at
    subscription = purchase_type != c.ONE_TIME
    properties: dict[str, Any] = {c.PURCHASE_TYPE: purchase_type, **n.plan(), **n.storefront}
    if subscription:
        properties[c.SUBSCRIPTION_ID] = n.subscription
    quantity = n.transaction.get("quantity")
    if not subscription and isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 1:
        properties[c.QUANTITY] = quantity
    facts: list[Fact | Deferred] = [
        Fact(
            key=f"{NAME}:payment:{n.transaction_id}",
            event=c.PURCHASE_COMPLETED,
            time=paid_at,
            identity=n.identity,
            money=money,
            order_id=n.transaction_id,
            properties=properties,
            profile=ProfileEffect(
                purchases=1,
                revenue=money,
                plan=n.product if subscription else None,
                status="active" if subscription else None,
            ),
        )
    ]
    if purchase_type == c.SUBSCRIPTION_RENEWAL:
        facts.append(
            Fact(
                key=f"{NAME}:subscription-renewal:{n.transaction_id}",
                event=c.SUBSCRIPTION_RENEWED,
                time=paid_at,
                identity=n.identity,
                money=money,
                order_id=n.transaction_id,
                properties={c.SUBSCRIPTION_ID: n.subscription, **n.plan()},
            )
        )
    return facts


def _subscribed(n: _Notification) -> list[Fact | Deferred]:
    """SUBSCRIBED (and OFFER_REDEEMED) INITIAL_BUY or RESUBSCRIBE: a subscription (re)starts, perhaps paid."""
    if n.subscription is None or n.transaction_id is None:
        return []
    trialing = n.transaction.get("offerDiscountType") == FREE_TRIAL
    status = "trialing" if trialing else "active"
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: n.subscription, c.STATUS: status, **n.plan(), **n.storefront}
    expires = n.ms(n.transaction, "expiresDate")
    if trialing and expires is not None:
        properties[c.TRIAL_END] = iso_utc(expires)
    # A resubscription keeps the original transaction: its own transaction tells this start from the first.
    which = n.subscription if n.subtype != "RESUBSCRIBE" else f"{n.subscription}:{n.transaction_id}"
    started = Fact(
        key=f"{NAME}:subscription-start:{which}",
        event=c.SUBSCRIPTION_STARTED,
        time=n.ms(n.transaction, "purchaseDate") or n.signed_at,
        identity=n.identity,
        properties=properties,
        profile=ProfileEffect(status=status, plan=n.product),
    )
    return [*_purchase(n, c.SUBSCRIPTION_INITIAL), started]


def _did_renew(n: _Notification) -> list[Fact | Deferred]:
    return _purchase(n, c.SUBSCRIPTION_RENEWAL)  # BILLING_RECOVERY included: a renewal that was late


def _one_time_charge(n: _Notification) -> list[Fact | Deferred]:
    return _purchase(n, c.ONE_TIME)


def _refund(n: _Notification) -> list[Fact | Deferred]:
    price = n.price()
    if n.transaction_id is None or price is None or price.minor <= 0:
        return []
    money: Money | None = price
    percentage = n.transaction.get("revocationPercentage")
    if (
        n.transaction.get("revocationType") == PRORATED
        and isinstance(percentage, int)
        and 0 < percentage < PERCENT_SCALE
    ):
        # Apple says which share it refunded, not the amount: the share of the price, rounded half up.
        money = scaled_money(price.minor * percentage, 5 + exponent(price.currency), price.currency, round_half_up=True)
    if money is None or money.minor <= 0:
        return []
    properties: dict[str, Any] = {c.REFUND_ID: n.transaction_id, **n.storefront}
    reason = n.transaction.get("revocationReason")
    if reason is not None:
        properties[c.REASON] = {0: "other", 1: "app_issue"}.get(reason, str(reason))
    return [
        Fact(
            key=f"{NAME}:refund:{n.transaction_id}",
            event=c.REFUND_ISSUED,
            time=n.ms(n.transaction, "revocationDate") or n.signed_at,
            identity=n.identity,  # the refunded transaction carries its appAccountToken
            money=money,
            order_id=n.transaction_id,
            properties=properties,
            profile=ProfileEffect(refunds=1, revenue=-money),
        )
    ]


# --- subscription state ------------------------------------------------------------------------


def _subscription_fact(
    n: _Notification, key: str, event: str, properties: dict[str, Any], profile: ProfileEffect | None = None
) -> Fact:
    return Fact(
        key=f"{NAME}:{key}",
        event=event,
        time=n.signed_at,
        identity=n.identity,
        properties={c.SUBSCRIPTION_ID: n.subscription, **properties},
        profile=profile,
    )


def _renewal_preference(n: _Notification) -> list[Fact | Deferred]:
    """UPGRADE takes effect now and is charged now; DOWNGRADE (and a withdrawn one) at the next renewal."""
    if n.subscription is None:
        return []
    next_product = as_id(n.renewal.get("autoRenewProductId"))
    if n.subtype == "UPGRADE":
        to_plan, from_plan = n.product, None  # the notification's transaction is the upgraded one
    else:
        to_plan, from_plan = next_product, n.product
    properties: dict[str, Any] = {c.FROM_PLAN: from_plan, c.TO_PLAN: to_plan}
    if not n.subtype:
        properties[c.REASON] = "pending_change_withdrawn"
    changed = _subscription_fact(
        n,
        f"subscription-change:{n.subscription}:{n.uuid}",
        c.SUBSCRIPTION_CHANGED,
        properties,
        ProfileEffect(plan=to_plan) if n.subtype == "UPGRADE" and to_plan else None,
    )
    paid = _purchase(n, c.SUBSCRIPTION_UPDATE) if n.subtype == "UPGRADE" else []
    return [*paid, changed]


def _renewal_status(n: _Notification) -> list[Fact | Deferred]:
    if n.subscription is None:
        return []
    if n.subtype == "AUTO_RENEW_DISABLED":
        ends = n.ms(n.transaction, "expiresDate") or n.ms(n.renewal, "renewalDate")
        properties = {c.CANCEL_AT: iso_utc(ends)} if ends else {}
        key = f"subscription-cancel-scheduled:{n.subscription}:{n.uuid}"
        return [_subscription_fact(n, key, c.SUBSCRIPTION_CANCELLATION_SCHEDULED, properties)]
    if n.subtype == "AUTO_RENEW_ENABLED":
        key = f"subscription-reactivated:{n.subscription}:{n.uuid}"
        return [_subscription_fact(n, key, c.SUBSCRIPTION_REACTIVATED, {})]
    return []


def _ended(n: _Notification, reason: str) -> list[Fact | Deferred]:
    if n.subscription is None:
        return []
    # A lapsed subscriber who resubscribes keeps the original transaction: the last one tells endings apart.
    fact = _subscription_fact(
        n,
        f"subscription-end:{n.subscription}:{n.transaction_id or n.uuid}",
        c.SUBSCRIPTION_CANCELLED,
        {c.REASON: reason, **n.plan()},
        ProfileEffect(status="canceled"),
    )
    ended_at = n.ms(n.transaction, "expiresDate") if n.type == "EXPIRED" else n.ms(n.transaction, "revocationDate")
    return [replace(fact, time=ended_at or fact.time)]


def _expired(n: _Notification) -> list[Fact | Deferred]:
    return _ended(n, n.subtype or "EXPIRED")


def _revoke(n: _Notification) -> list[Fact | Deferred]:
    """Family Sharing withdrew a shared purchase: for a subscription, the family member's access ends."""
    if n.transaction.get("type") != AUTO_RENEWABLE:
        return []
    return _ended(n, "REVOKE")


def _payment_failed(n: _Notification) -> list[Fact | Deferred]:
    if n.subscription is None:
        return []
    grace_expired = n.type == "GRACE_PERIOD_EXPIRED"
    money = scaled_money(n.renewal.get("renewalPrice"), MILLI, n.renewal.get("currency"))
    # The period whose renewal failed is the one after the notification's (last paid) transaction.
    period = n.transaction_id or n.uuid
    return [
        Fact(
            key=f"{NAME}:payment-failed:{n.subscription}:{period}" + (":grace-period-expired" if grace_expired else ""),
            event=c.PAYMENT_FAILED,
            time=n.signed_at,
            identity=n.identity,
            money=money if money is not None and money.minor > 0 else None,
            order_id=n.transaction_id,
            properties={
                c.SUBSCRIPTION_ID: n.subscription,
                c.REASON: "GRACE_PERIOD_EXPIRED" if grace_expired else (n.subtype or "BILLING_RETRY"),
                **n.plan(),
            },
            profile=ProfileEffect(status="past_due"),
        )
    ]


def _offer_redeemed(n: _Notification) -> list[Fact | Deferred]:
    if n.subtype in ("INITIAL_BUY", "RESUBSCRIBE"):
        return _subscribed(n)
    if n.subtype in ("UPGRADE", "DOWNGRADE"):
        return _renewal_preference(n)
    return []  # an offer for an active subscription applies from its next renewal (DID_RENEW counts it)


def _price_increase(n: _Notification) -> list[Fact | Deferred]:
    """ACCEPTED: the subscription renews at the new price; PENDING (not answered yet) changes nothing."""
    if n.subtype != "ACCEPTED" or n.subscription is None:
        return []
    return [
        _subscription_fact(
            n,
            f"subscription-change:{n.subscription}:{n.uuid}",
            c.SUBSCRIPTION_CHANGED,
            {
                c.FROM_PLAN: n.product,
                c.TO_PLAN: as_id(n.renewal.get("autoRenewProductId")) or n.product,
                c.REASON: "price_increase_accepted",
            },
        )
    ]


_HANDLERS: dict[str, Callable[[_Notification], list[Fact | Deferred]]] = {
    "SUBSCRIBED": _subscribed,
    "DID_RENEW": _did_renew,
    "DID_CHANGE_RENEWAL_PREF": _renewal_preference,
    "DID_CHANGE_RENEWAL_STATUS": _renewal_status,
    "EXPIRED": _expired,
    "DID_FAIL_TO_RENEW": _payment_failed,
    "GRACE_PERIOD_EXPIRED": _payment_failed,
    "REFUND": _refund,
    "REVOKE": _revoke,
    "ONE_TIME_CHARGE": _one_time_charge,
    "OFFER_REDEEMED": _offer_redeemed,
    "PRICE_INCREASE": _price_increase,
}
assert set(_HANDLERS) == set(PRODUCES), "every produced App Store type needs a handler"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """A delivery's headers: Apple signs the body itself (the JWS), so a delivery carries only its type.

    (The local stack and the tests make signed bodies with a test chain: devstack/stores/apple.py.)
    """
    return {"content-type": "application/json"}


SPEC = ProviderSpec(
    route=NAME,
    title="App Store",
    signing=SigningSecret(variable="APPSTORE_CONFIG_ID", resource="AppStoreConfig", prefix="", whole=True),
    create=create,
    produces=PRODUCES,
    sign=sign,
    user_agent="App Store Server Notifications",
)
