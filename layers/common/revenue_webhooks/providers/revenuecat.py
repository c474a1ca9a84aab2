"""RevenueCat: the static `Authorization` header, and the RevenueCat event catalog.

RevenueCat signs nothing: the dashboard sends the exact `Authorization` value you configure, which is
compared in constant time with each configured value (several during rotation). There is no
timestamp; `event.id` is the delivery's dedup id and facts are keyed by store transaction ids.

Money is `price_in_purchased_currency` in major units of `currency` (what the store charged; `price`
is RevenueCat's USD estimate and is not used), rounded to the currency's decimals. A refund is a
CANCELLATION with `cancel_reason=CUSTOMER_SUPPORT` and a negative price; any other CANCELLATION
turns auto-renew off (a scheduled cancellation), EXPIRATION ends the subscription. Times are the
store's `purchased_at_ms` for payments and RevenueCat's `event_timestamp_ms` for the rest.

Identity: `app_user_id` is the app's user unless it is an anonymous `$RCAnonymousID:` id, which
becomes the device id; the `$mixpanelDistinctId` subscriber attribute (set by apps using
RevenueCat's Mixpanel integration) wins over both. `original_app_user_id` keys the customer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from ..config import Settings
from ..domain import catalog as c
from ..domain.amounts import Amounts
from ..domain.facts import Deferred, Fact, Identity, ProfileEffect
from ..domain.fx import Conversion
from ..domain.identity import resolve
from ..domain.money import Money
from ..domain.mrr import Charge, MrrChange, interval_of, monthly_recurring
from ..domain.webhook import QueuedEvent
from ._common import as_id, iso_utc, major_money
from .base import (
    ParsedWebhook,
    PayloadInvalid,
    Provider,
    ProviderSpec,
    SignatureInvalid,
    SigningSecret,
    WebhookRequest,
    matches_any,
    parse_json_object,
)

NAME = "revenuecat"
ANONYMOUS_PREFIX = "$RCAnonymousID:"
MIXPANEL_ATTRIBUTE = "$mixpanelDistinctId"  # RevenueCat's documented attribute for Mixpanel's distinct id

PRODUCES: dict[str, tuple[str, ...]] = {
    "INITIAL_PURCHASE": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_STARTED),
    "NON_RENEWING_PURCHASE": (c.PURCHASE_COMPLETED,),
    "RENEWAL": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
    "CANCELLATION": (c.REFUND_ISSUED, c.SUBSCRIPTION_CANCELLATION_SCHEDULED),
    "UNCANCELLATION": (c.SUBSCRIPTION_REACTIVATED,),
    "EXPIRATION": (c.SUBSCRIPTION_CANCELLED,),
    "PRODUCT_CHANGE": (c.SUBSCRIPTION_CHANGED,),
    "BILLING_ISSUE": (c.PAYMENT_FAILED,),
}
REFUND_REASON = "CUSTOMER_SUPPORT"
USD_SOURCE = "revenuecat_price_usd"


def create(settings: Settings) -> RevenueCatProvider:
    return RevenueCatProvider(settings)


class RevenueCatProvider(Provider):
    name = NAME

    def verify(self, request: WebhookRequest, secrets: Sequence[str]) -> None:
        given = (request.header("authorization") or "").strip()
        if not given:
            raise SignatureInvalid("missing Authorization header")
        if not matches_any([secret.strip() for secret in secrets if secret.strip()], [given]):
            raise SignatureInvalid("Authorization header matches no configured value")

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        body = _parse(request.body)
        event = body["event"]
        environment = event.get("environment")
        livemode = {"PRODUCTION": True, "SANDBOX": False}.get(environment) if isinstance(environment, str) else None
        return ParsedWebhook(event["id"], event["type"], livemode, body)

    def is_relevant(self, event_type: str) -> bool:
        return event_type in PRODUCES

    def map(self, event: QueuedEvent) -> list[Fact | Deferred]:
        body = _parse(event.body)
        handler = _HANDLERS.get(body["event"]["type"])
        if handler is None:
            return []
        return handler(_Event(body["event"], self.settings))


class _Event:
    """One RevenueCat event with the lookups every mapping needs."""

    def __init__(self, event: dict[str, Any], settings: Any) -> None:
        self.event = event
        self.id: str = event["id"]
        self.type: str = event["type"]
        self.transaction = as_id(event.get("transaction_id"))
        # The subscription's id across renewals and resubscriptions; one-time purchases have only theirs.
        self.subscription = as_id(event.get("original_transaction_id")) or self.transaction
        self.product = as_id(event.get("product_id"))
        self.identity = _identity(event, settings)

    def ms(self, field: str) -> int | None:
        """Unix seconds from one of RevenueCat's `*_ms` fields (always milliseconds)."""
        value = self.event.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 10**15:
            return None
        return int(value) // 1000

    def time(self, *fields: str) -> int:
        for field in fields:
            seconds = self.ms(field)
            if seconds is not None:
                return seconds
        raise PayloadInvalid(f"RevenueCat {self.id} has no readable {' or '.join(fields)}")

    def money(self) -> Money | None:
        """The price in the purchased currency, rounded to the currency (negative on refunds)."""
        return major_money(
            self.event.get("price_in_purchased_currency"), self.event.get("currency"), round_to_currency=True
        )

    def share(self, money: Money, field: str) -> Money | None:
        """RevenueCat's estimated share of the price (`tax_percentage`, `commission_percentage`: fractions)."""
        value = self.event.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            return None
        return Money.rounded(Decimal(money.minor) * Decimal(repr(float(value))), money.currency)

    def amounts(self, money: Money) -> Amounts:
        return Amounts(tax=self.share(money, "tax_percentage"), fee=self.share(money, "commission_percentage"))

    def in_usd(self, money: Money) -> tuple[Conversion, ...]:
        """RevenueCat's own USD figure for the transaction (`price`)."""
        usd = major_money(self.event.get("price"), "USD", round_to_currency=True)
        if usd is None or money.currency == "USD" or (usd.minor < 0) != (money.minor < 0):
            return ()
        return (Conversion(money, usd, USD_SOURCE),)

    def mrr(self, money: Money | None, *, trial: bool = False) -> Money | None:
        """The store price normalised to a month, without RevenueCat's estimated tax; 0 in a free trial."""
        currency = (money.currency if money else None) or self.event.get("currency")
        if trial and isinstance(currency, str) and len(currency) == 3:
            return Money(0, currency.upper())
        start, end = self.event.get("purchased_at_ms"), self.event.get("expiration_at_ms")
        if money is None or money.minor <= 0 or not isinstance(start, int) or not isinstance(end, int):
            return None
        period = interval_of(start // 1000, end // 1000)  # a store period is not in the payload, only its dates
        if period is None:
            return None  # sandbox's accelerated periods, or a period this table does not know
        tax = self.share(money, "tax_percentage") or Money(0, money.currency)
        return monthly_recurring([Charge(Decimal((money - tax).minor), *period)], money.currency)


def _purchase(e: _Event, purchase_type: str) -> list[Fact | Deferred]:
    money = e.money()
    if e.transaction is None or money is None or money.minor <= 0:
        return []  # free trials and zero-price periods collect nothing
    paid_at = e.time("purchased_at_ms", "event_timestamp_ms")
    properties: dict[str, Any] = {c.PURCHASE_TYPE: purchase_type}
    subscription = purchase_type != c.ONE_TIME
    if subscription:
        properties[c.SUBSCRIPTION_ID] = e.subscription
    if e.product:
        properties[c.PLAN] = e.product
    facts: list[Fact | Deferred] = [
        Fact(
            key=f"{NAME}:payment:{e.transaction}",
            event=c.PURCHASE_COMPLETED,
            time=paid_at,
            identity=e.identity,
            money=money,
            order_id=e.transaction,
            properties=properties,
            profile=ProfileEffect(purchases=1, revenue=money, plan=e.product if subscription else None),
            amounts=e.amounts(money),
            conversions=e.in_usd(money),
        )
    ]
    if purchase_type == c.SUBSCRIPTION_RENEWAL:
        after = e.mrr(money)
        if e.event.get("is_trial_conversion") is True and e.subscription:
            facts.append(
                Fact(
                    key=f"{NAME}:trial-converted:{e.subscription}",
                    event=c.TRIAL_CONVERTED,
                    time=paid_at,
                    identity=e.identity,
                    properties={c.SUBSCRIPTION_ID: e.subscription, **({c.PLAN: e.product} if e.product else {})},
                    profile=ProfileEffect(status="active"),
                    mrr=MrrChange.started(e.subscription, after),
                )
            )
        facts.append(
            Fact(
                key=f"{NAME}:subscription-renewal:{e.transaction}",
                event=c.SUBSCRIPTION_RENEWED,
                time=paid_at,
                identity=e.identity,
                money=money,
                order_id=e.transaction,
                properties={c.SUBSCRIPTION_ID: e.subscription, **({c.PLAN: e.product} if e.product else {})},
                # A renewal's price is the MRR now; before it the payload does not say (a lapsed subscriber who
                # resubscribes also arrives as RENEWAL), so no change is claimed.
                mrr=MrrChange(e.subscription, after) if after is not None and e.subscription else None,
            )
        )
    return facts


def _initial_purchase(e: _Event) -> list[Fact | Deferred]:
    trialing = e.event.get("period_type") == "TRIAL"
    status = "trialing" if trialing else "active"
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: e.subscription, c.STATUS: status}
    if e.product:
        properties[c.PLAN] = e.product
    expires = e.ms("expiration_at_ms")
    if trialing and expires is not None:
        properties[c.TRIAL_END] = iso_utc(expires)
    started: list[Fact | Deferred] = []
    if e.subscription:
        after = e.mrr(e.money(), trial=trialing)
        started.append(
            Fact(
                key=f"{NAME}:subscription-start:{e.subscription}",
                event=c.SUBSCRIPTION_STARTED,
                time=e.time("purchased_at_ms", "event_timestamp_ms"),
                identity=e.identity,
                properties=properties,
                profile=ProfileEffect(status=status, plan=e.product),
                mrr=MrrChange.started(e.subscription, after),
            )
        )
    return _purchase(e, c.SUBSCRIPTION_INITIAL) + started


def _non_renewing_purchase(e: _Event) -> list[Fact | Deferred]:
    return _purchase(e, c.ONE_TIME)


def _renewal(e: _Event) -> list[Fact | Deferred]:
    return _purchase(e, c.SUBSCRIPTION_RENEWAL)


def _cancellation(e: _Event) -> list[Fact | Deferred]:
    reason = e.event.get("cancel_reason")
    money = e.money()
    if reason == REFUND_REASON and money is not None and money.minor < 0:
        return _refund(e, -money)
    expires = e.ms("expiration_at_ms")
    if e.subscription is None or expires is None:
        return []  # nothing was scheduled to renew
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: e.subscription, c.CANCEL_AT: iso_utc(expires)}
    if isinstance(reason, str) and reason:
        properties[c.REASON] = reason
    return [
        _subscription_fact(
            e,
            f"subscription-cancel-scheduled:{e.subscription}:{e.id}",
            c.SUBSCRIPTION_CANCELLATION_SCHEDULED,
            properties,
            None,
        )
    ]


def _refund(e: _Event, money: Money) -> list[Fact | Deferred]:
    if e.transaction is None:
        return []
    return [
        Fact(
            key=f"{NAME}:refund:{e.transaction}",
            event=c.REFUND_ISSUED,
            time=e.time("event_timestamp_ms"),
            identity=e.identity,  # every RevenueCat event names its user: no need to wait for the purchase
            money=money,
            order_id=e.transaction,
            properties={c.REFUND_ID: e.id, c.REASON: REFUND_REASON},
            profile=ProfileEffect(refunds=1, revenue=-money),
            amounts=e.amounts(money),
            conversions=e.in_usd(-money),
        )
    ]


def _uncancellation(e: _Event) -> list[Fact | Deferred]:
    if e.subscription is None:
        return []
    return [
        _subscription_fact(
            e,
            f"subscription-reactivated:{e.subscription}:{e.id}",
            c.SUBSCRIPTION_REACTIVATED,
            {c.SUBSCRIPTION_ID: e.subscription},
            None,
        )
    ]


def _expiration(e: _Event) -> list[Fact | Deferred]:
    if e.subscription is None:
        return []
    properties: dict[str, Any] = {c.SUBSCRIPTION_ID: e.subscription}
    reason = e.event.get("expiration_reason")
    if isinstance(reason, str) and reason:
        properties[c.REASON] = reason
    if e.product:
        properties[c.PLAN] = e.product
    # A lapsed App Store subscriber who resubscribes keeps the original transaction: the last
    # transaction tells one ending from the next.
    currency = e.event.get("currency")
    # Expired bills nothing; what it billed before is not in the payload (its price is 0): no change claimed.
    after = Money(0, currency.upper()) if isinstance(currency, str) and len(currency) == 3 else None
    return [
        replace(
            _subscription_fact(
                e,
                f"subscription-end:{e.subscription}:{e.transaction or e.id}",
                c.SUBSCRIPTION_CANCELLED,
                properties,
                ProfileEffect(status="canceled"),
            ),
            time=e.time("expiration_at_ms", "event_timestamp_ms"),
            mrr=MrrChange(e.subscription, after) if after is not None else None,
        )
    ]


def _product_change(e: _Event) -> list[Fact | Deferred]:
    new_product = as_id(e.event.get("new_product_id"))
    if e.subscription is None:
        return []
    return [
        _subscription_fact(
            e,
            f"subscription-change:{e.subscription}:{e.id}",
            c.SUBSCRIPTION_CHANGED,
            {c.SUBSCRIPTION_ID: e.subscription, c.FROM_PLAN: e.product, c.TO_PLAN: new_product},
            ProfileEffect(plan=new_product) if new_product else None,
        )
    ]


def _billing_issue(e: _Event) -> list[Fact | Deferred]:
    if e.subscription is None:
        return []
    money = e.money()
    return [
        Fact(
            key=f"{NAME}:payment-failed:{e.subscription}:{e.id}",
            event=c.PAYMENT_FAILED,
            time=e.time("event_timestamp_ms"),
            identity=e.identity,
            money=money if money is not None and money.minor > 0 else None,
            order_id=e.transaction,
            properties={c.SUBSCRIPTION_ID: e.subscription},
        )
    ]


def _subscription_fact(
    e: _Event, key: str, event: str, properties: dict[str, Any], profile: ProfileEffect | None
) -> Fact:
    return Fact(
        key=f"{NAME}:{key}",
        event=event,
        time=e.time("event_timestamp_ms"),
        identity=e.identity,
        properties=properties,
        profile=profile,
    )


# --- field readers ---------------------------------------------------------------------------


def _parse(raw: bytes) -> dict[str, Any]:
    body = parse_json_object(raw)
    event = body.get("event")
    if not isinstance(event, dict):
        raise PayloadInvalid("not a RevenueCat webhook: event is required")
    if not as_id(event.get("id")) or not isinstance(event.get("type"), str) or not event["type"]:
        raise PayloadInvalid("not a RevenueCat webhook: event.id and event.type are required")
    event["id"] = as_id(event["id"])
    return body


def _identity(event: dict[str, Any], settings: Any) -> Identity:
    """App user (never an anonymous id), anonymous id as the device, original app user as the customer."""
    app_user = as_id(event.get("app_user_id"))
    original = as_id(event.get("original_app_user_id"))
    given = event.get("aliases")
    raw_aliases = given if isinstance(given, list) else []
    aliases = [alias for alias in (as_id(a) for a in raw_aliases) if alias]
    candidates = [app_user, original, *aliases]
    known = [value for value in candidates if value and not value.startswith(ANONYMOUS_PREFIX)]
    anonymous = next((value for value in candidates if value and value.startswith(ANONYMOUS_PREFIX)), None)
    # The event's own user; else one identified alias, only when it is unambiguous.
    reference: str | None
    if app_user and not app_user.startswith(ANONYMOUS_PREFIX):
        reference = app_user
    else:
        distinct = sorted(set(known))
        reference = distinct[0] if len(distinct) == 1 else None
    attributes = _attributes(event.get("subscriber_attributes"), tuple(settings.user_id_keys))
    identity = resolve(settings, [attributes], reference_ids=[reference], customer=original or app_user)
    return identity if identity.device_id or not anonymous else replace(identity, device_id=anonymous)


def _attributes(raw: Any, user_id_keys: Sequence[str]) -> dict[str, Any]:
    """Subscriber attributes (`{"name": {"value": ...}}`) flattened, with `$mixpanelDistinctId` read as
    the first configured user-id key, so that it outranks `app_user_id` as in RevenueCat's own integration."""
    if not isinstance(raw, dict):
        return {}
    flat = {name: entry.get("value") for name, entry in raw.items() if isinstance(entry, dict)}
    mixpanel_id = flat.get(MIXPANEL_ATTRIBUTE)
    if mixpanel_id is not None and user_id_keys and user_id_keys[0] not in flat:
        flat[user_id_keys[0]] = mixpanel_id
    return flat


_HANDLERS: dict[str, Callable[[_Event], list[Fact | Deferred]]] = {
    "INITIAL_PURCHASE": _initial_purchase,
    "NON_RENEWING_PURCHASE": _non_renewing_purchase,
    "RENEWAL": _renewal,
    "CANCELLATION": _cancellation,
    "UNCANCELLATION": _uncancellation,
    "EXPIRATION": _expiration,
    "PRODUCT_CHANGE": _product_change,
    "BILLING_ISSUE": _billing_issue,
}
assert set(_HANDLERS) == set(PRODUCES), "every produced RevenueCat type needs a handler"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """A delivery's headers as RevenueCat sends them: the configured Authorization value, nothing signed."""
    return {"content-type": "application/json", "authorization": secret}


SPEC = ProviderSpec(
    route=NAME,
    title="RevenueCat",
    signing=SigningSecret(
        variable="REVENUECAT_WEBHOOK_SECRET_ID", resource="RevenueCatWebhookSecret", prefix="Bearer rc_local_"
    ),
    create=create,
    produces=PRODUCES,
    sign=sign,
    user_agent="RevenueCat",
)
