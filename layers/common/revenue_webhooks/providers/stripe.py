"""Stripe: `Stripe-Signature` verification with the official library, and the Stripe event catalog.

Rules (sources in docs/events.md and the Stripe facts): one Purchase Completed per paid payment, keyed by
the business object that carries it: a paid Checkout payment (`mode=payment`), a paid invoice above zero
(`invoice.paid` and `invoice.payment_succeeded` collapse), or a PaymentIntent paid on its own (Payment
Element: neither Checkout's nor an invoice's). Stripe announces one payment several ways (the session or
invoice, and `payment_intent.succeeded` for the PaymentIntent that paid it), in any order, and payloads say
which PaymentIntent belongs to which only in some API versions, so:
- a Checkout's or an invoice's purchase names its PaymentIntent's own fact (`same_as`) and links the
  PaymentIntent; whichever is recorded first counts the money, the other is the same fact;
- a PaymentIntent's own fact yields to the purchase that links it (`yields_to`): before basil a payload
  names its invoice (then it maps to nothing), a Checkout Session always names its PaymentIntent, an
  `invoice_payment.paid` names both (basil and later); the forwarder waits once for such an owner, or asks
  Stripe's API when a key is configured.
Subscription-mode Checkout adds nothing (its money is the first invoice). Refunds are keyed by refund id,
with the refund's own amount, from `refund.created` or from the refund list that older API versions embed
in `charge.refunded`. Payloads are read in old (2018+) and new (2025-03-31.basil+) shapes.

Stripe Connect: an event of a connected account carries `account` (the Connect endpoint's events); every
fact of it gets `Stripe Account`, and an invoice's `application_fee_amount` becomes the payment's
`Platform Fee`. Platform-side fee events (`application_fee.*`) and `account.application.deauthorized`
change no customer's revenue and are not mapped (docs/providers.md, "Stripe Connect").
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache
from typing import Any

from ..config import Settings
from ..domain import catalog as c
from ..domain.facts import Deferred, Fact, Identity, PaymentOwner, ProfileEffect, payment_ref
from ..domain.identity import buyer_ip, resolve
from ..domain.mrr import MrrChange
from ..domain.webhook import QueuedEvent
from ._common import check_window, iso_utc, minor_money
from ._stripe_economics import (
    COUNTED_STATUSES,
    checkout_amounts,
    ended_in_trial,
    invoice_amounts,
    previous_state,
    subscription_mrr,
)
from .base import (
    Mapped,
    ParsedWebhook,
    PayloadInvalid,
    Provider,
    ProviderSpec,
    SignatureInvalid,
    SigningSecret,
    WebhookRequest,
    dig,
    parse_json_object,
)

NAME = "stripe"

PRODUCES: dict[str, tuple[str, ...]] = {
    "checkout.session.completed": (c.PURCHASE_COMPLETED,),
    "checkout.session.async_payment_succeeded": (c.PURCHASE_COMPLETED,),
    "payment_intent.succeeded": (c.PURCHASE_COMPLETED,),
    "invoice_payment.paid": (),  # no event: which invoice a PaymentIntent paid (basil+ payloads say it only here)
    "invoice.paid": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
    "invoice.payment_succeeded": (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_RENEWED),
    "refund.created": (c.REFUND_ISSUED,),
    "charge.refunded": (c.REFUND_ISSUED,),
    "customer.subscription.created": (c.SUBSCRIPTION_STARTED,),
    "customer.subscription.updated": (
        c.SUBSCRIPTION_STARTED,
        c.TRIAL_CONVERTED,
        c.SUBSCRIPTION_CHANGED,
        c.SUBSCRIPTION_CANCELLATION_SCHEDULED,
        c.SUBSCRIPTION_REACTIVATED,
    ),
    "customer.subscription.deleted": (c.SUBSCRIPTION_CANCELLED,),
    "customer.subscription.trial_will_end": (c.TRIAL_ENDING,),
    "invoice.payment_failed": (c.PAYMENT_FAILED,),
    "payment_intent.payment_failed": (c.PAYMENT_FAILED,),
}

PURCHASE_TYPE_BY_BILLING_REASON = {
    "subscription_create": c.SUBSCRIPTION_INITIAL,
    "subscription_cycle": c.SUBSCRIPTION_RENEWAL,
    "subscription": c.SUBSCRIPTION_RENEWAL,  # legacy value, before 2018
    "subscription_threshold": c.SUBSCRIPTION_RENEWAL,
    "subscription_update": c.SUBSCRIPTION_UPDATE,
}
STARTED_STATUSES = ("active", "trialing")


def create(settings: Settings) -> StripeProvider:
    return StripeProvider(settings)


@cache
def _stripe_verifier() -> tuple[Any, type[Exception]]:
    """stripe-python's verifier, imported on the first Stripe webhook (other routes never load stripe).

    Looked up once: stripe resolves each top-level name through `importlib` on every access.
    """
    from stripe import SignatureVerificationError, WebhookSignature

    return WebhookSignature, SignatureVerificationError


class StripeProvider(Provider):
    name = NAME

    def prepare(self) -> None:
        _stripe_verifier()

    def verify(self, request: WebhookRequest, secrets: Sequence[str]) -> None:
        """stripe-python's `verify_header` checks the signature (without its own clock-based tolerance); the
        signed time is then checked like every route's: against API Gateway's request time, both ways."""
        header = request.header("stripe-signature")
        if not header:
            raise SignatureInvalid("missing Stripe-Signature header")
        if not header.isascii():  # stripe-python's compare raises TypeError on non-ASCII text
            raise SignatureInvalid("Stripe-Signature is not ASCII")
        timestamp = _signed_timestamp(header)
        if timestamp is None:
            raise SignatureInvalid("Stripe-Signature has no t=")
        webhook_signature, verification_error = _stripe_verifier()
        payload = request.body.decode("utf-8", errors="surrogateescape")
        for secret in secrets:
            try:
                webhook_signature.verify_header(payload, header, secret, tolerance=None)
                break
            except verification_error:
                continue
            except UnicodeEncodeError:
                raise SignatureInvalid("body is not UTF-8") from None
        else:
            raise SignatureInvalid("no Stripe-Signature v1 entry matches a configured secret")
        check_window(
            timestamp,
            request,
            past_s=self.settings.signature_tolerance_s,
            future_s=self.settings.future_skew_s,
            what="Stripe-Signature t",
        )

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        event = parse_json_object(request.body)
        event_id, event_type = event.get("id"), event.get("type")
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not event_type:
            raise PayloadInvalid("not a Stripe event: id and type are required")
        if not isinstance(dig(event, "data", "object"), dict):
            raise PayloadInvalid("not a Stripe snapshot event: data.object is required")
        livemode = event.get("livemode")
        return ParsedWebhook(event_id, event_type, livemode if isinstance(livemode, bool) else None, event)

    def is_relevant(self, event_type: str) -> bool:
        return event_type in PRODUCES

    def map(self, event: QueuedEvent) -> list[Mapped]:
        payload = parse_json_object(event.body)
        handler = _HANDLERS.get(payload.get("type", ""))
        if handler is None:
            return []
        stripe_event = _Event(payload, self.settings)
        return _on_account(handler(stripe_event), stripe_event.account)


class _Event:
    """One Stripe event with the lookups every mapping needs, across API versions."""

    def __init__(self, payload: dict[str, Any], settings: Any) -> None:
        self.payload = payload
        self.settings = settings
        self.id: str = payload["id"]
        self.obj: dict[str, Any] = payload["data"]["object"]
        self.previous: dict[str, Any] = dig(payload, "data", "previous_attributes") or {}
        self.created = int(payload.get("created") or 0)
        # Stripe Connect: the connected account an event happened on (absent on the platform's own events).
        account = payload.get("account")
        self.account: str | None = account if isinstance(account, str) and account else None

    def identity(self, *metadata: Any, reference_ids: Sequence[Any] = ()) -> Identity:
        return resolve(
            self.settings,
            metadata,
            reference_ids=reference_ids,
            customer=id_of(self.obj.get("customer")),
            account=self.account,
        )

    def ip(self, *metadata: Any) -> str | None:
        return buyer_ip(self.settings, metadata)


def _checkout_completed(e: _Event) -> list[Fact | Deferred]:
    session = e.obj
    if session.get("mode") != "payment" or session.get("payment_status") != "paid":
        return []  # setup mode, subscriptions (counted by their invoice), unpaid delayed methods
    money = minor_money(session.get("amount_total"), session.get("currency"))
    if money is None or money.minor <= 0:
        return []
    metadata = session.get("metadata")
    payment_intent = id_of(session.get("payment_intent"))
    return [
        Fact(
            key=f"{NAME}:payment:{session['id']}",
            event=c.PURCHASE_COMPLETED,
            time=e.created,
            identity=e.identity(metadata, reference_ids=[session.get("client_reference_id")]),
            money=money,
            order_id=session["id"],
            properties={c.PURCHASE_TYPE: c.ONE_TIME},
            profile=ProfileEffect(purchases=1, revenue=money),
            ip=e.ip(metadata),
            email=dig(session, "customer_details", "email") or session.get("customer_email"),
            amounts=checkout_amounts(session, money),
            settlement_ref=payment_intent,
            links=(payment_ref(NAME, payment_intent),) if payment_intent else (),  # what its refunds will name
            same_as=(_payment_key(payment_intent),) if payment_intent else (),
        )
    ]


def _invoice_paid(e: _Event) -> list[Fact | Deferred]:
    invoice = e.obj
    if invoice.get("status") not in (None, "paid") or invoice.get("paid") is False:
        return []
    money = minor_money(_amount_paid(invoice), invoice.get("currency"))
    if money is None or money.minor <= 0:
        return []  # trials and 100%-coupon invoices collect nothing
    subscription = _invoice_subscription(invoice)
    price = _first_price(dig(invoice, "lines", "data") or [])
    purchase_type = (
        PURCHASE_TYPE_BY_BILLING_REASON.get(invoice.get("billing_reason") or "", c.INVOICE)
        if subscription
        else c.INVOICE
    )
    metadata = _invoice_metadata(invoice)
    identity = e.identity(*metadata)
    paid_at = int(dig(invoice, "status_transitions", "paid_at") or e.created)
    properties: dict[str, Any] = {c.PURCHASE_TYPE: purchase_type, **_platform_fee(invoice)}
    if subscription:
        properties.update({c.SUBSCRIPTION_ID: subscription, **_price_properties(price)})
    # What its refunds will name: a refund of a PaymentIntent's charge always names the PaymentIntent, so
    # the charge is linked only for invoices paid without one (each link is a ledger write, 2 WRU).
    intents = _invoice_payment_intents(invoice)
    refs = intents or [ref for ref in [id_of(invoice.get("charge"))] if ref]
    facts: list[Fact | Deferred] = [
        Fact(
            key=f"{NAME}:payment:{invoice['id']}",
            event=c.PURCHASE_COMPLETED,
            time=paid_at,
            identity=identity,
            money=money,
            order_id=invoice["id"],
            properties=properties,
            profile=ProfileEffect(purchases=1, revenue=money, plan=_named_plan(price) if subscription else None),
            ip=e.ip(*metadata),
            email=invoice.get("customer_email"),
            amounts=invoice_amounts(invoice, money),
            settlement_ref=next(iter(refs), invoice["id"]),  # a basil invoice names no payment: Stripe's books do
            links=tuple(payment_ref(NAME, ref) for ref in refs),
            same_as=tuple(_payment_key(intent) for intent in intents),
        )
    ]
    if subscription and purchase_type == c.SUBSCRIPTION_RENEWAL:
        facts.append(
            Fact(
                key=f"{NAME}:subscription-renewal:{invoice['id']}",
                event=c.SUBSCRIPTION_RENEWED,
                time=paid_at,
                identity=identity,
                money=money,
                order_id=invoice["id"],
                properties={c.SUBSCRIPTION_ID: subscription, c.PLAN: _plan(price)}
                if price
                else {c.SUBSCRIPTION_ID: subscription},
                ip=e.ip(*metadata),
            )
        )
    return facts


def _payment_intent_succeeded(e: _Event) -> list[Fact | Deferred]:
    """A PaymentIntent paid: a purchase of its own unless it paid a Checkout Session or an invoice (see above)."""
    intent = e.obj
    if intent.get("status") not in (None, "succeeded") or id_of(intent.get("invoice")):
        return []  # before basil the payload names its invoice, whose invoice.paid counts the money
    received = intent.get("amount_received")
    money = minor_money(intent.get("amount") if received is None else received, intent.get("currency"))
    if money is None or money.minor <= 0:
        return []
    metadata = intent.get("metadata")
    own = payment_ref(NAME, intent["id"])
    return [
        Fact(
            key=_payment_key(intent["id"]),
            event=c.PURCHASE_COMPLETED,
            time=e.created,
            identity=e.identity(metadata),
            money=money,
            order_id=intent["id"],
            properties={c.PURCHASE_TYPE: c.ONE_TIME, **_platform_fee(intent)},
            profile=ProfileEffect(purchases=1, revenue=money),
            ip=e.ip(metadata),
            email=intent.get("receipt_email"),
            settlement_ref=intent["id"],
            links=(own,),
            yields_to=(own,),
        )
    ]


def _invoice_payment_paid(e: _Event) -> list[PaymentOwner]:
    """basil+: which invoice a PaymentIntent paid, which neither's own payload says any more."""
    payment = e.obj
    invoice, intent = id_of(payment.get("invoice")), id_of(dig(payment, "payment", "payment_intent"))
    if payment.get("status") not in (None, "paid") or not invoice or not intent:
        return []
    return [PaymentOwner(payment_ref(NAME, intent), _payment_key(invoice))]


def _refund_created(e: _Event) -> list[Fact | Deferred]:
    return _refund_facts(e, e.obj, charge=None)


def _charge_refunded(e: _Event) -> list[Fact | Deferred]:
    charge = e.obj
    refunds = dig(charge, "refunds", "data")
    if not isinstance(refunds, list):
        return []  # API 2022-11-15+ omits the refund list: refund.created carries each refund
    facts: list[Fact | Deferred] = []
    for refund in refunds:
        if isinstance(refund, dict):
            facts += _refund_facts(e, refund, charge=charge)
    return facts


def _refund_facts(e: _Event, refund: dict[str, Any], charge: dict[str, Any] | None) -> list[Fact | Deferred]:
    if refund.get("status") in ("failed", "canceled"):
        return []
    money = minor_money(refund.get("amount"), refund.get("currency"))
    refund_id = refund.get("id")
    if money is None or money.minor <= 0 or not refund_id:
        return []
    charge_id = id_of(refund.get("charge")) or (charge or {}).get("id")
    payment_intent = id_of(refund.get("payment_intent")) or id_of((charge or {}).get("payment_intent"))
    own = charge or {}
    customer = id_of(refund.get("customer")) or id_of(own.get("customer"))  # refunds name it in newer versions
    identity = resolve(
        e.settings,
        [refund.get("metadata"), own.get("metadata")],
        customer=customer,
        account=e.account,
    )
    return [
        Fact(
            key=f"{NAME}:refund:{refund_id}",
            event=c.REFUND_ISSUED,
            time=int(refund.get("created") or e.created),
            identity=identity,
            money=money,
            order_id=payment_intent or charge_id,
            properties={c.REFUND_ID: refund_id, **({c.REASON: refund["reason"]} if refund.get("reason") else {})},
            profile=ProfileEffect(refunds=1, revenue=-money),
            identity_from=tuple(payment_ref(NAME, ref) for ref in (payment_intent, charge_id) if ref),
            settlement_ref=id_of(refund.get("balance_transaction")),
        )
    ]


def _subscription_created(e: _Event) -> list[Fact | Deferred]:
    if e.obj.get("status") not in STARTED_STATUSES:
        return []  # incomplete: started by the update that activates it
    after = subscription_mrr(e.obj)
    return [replace(_subscription_started(e), mrr=MrrChange.started(e.obj["id"], after))]


def _subscription_updated(e: _Event) -> list[Fact | Deferred]:
    """Every change is read from the event itself (`previous_attributes`), never from what was seen before.

    One webhook's MRR change is carried once: by its Subscription Started, else Trial Converted, else
    Subscription Changed (made for a change nothing else names: a discount, a status); its other facts
    carry the MRR after it with a change of 0.
    """
    sub, previous = e.obj, e.previous
    facts: list[Fact] = []
    old_status, status = previous.get("status", sub.get("status")), sub.get("status")
    if old_status in ("incomplete", "incomplete_expired") and status in STARTED_STATUSES:
        facts.append(_subscription_started(e))
    if old_status == "trialing" and status in COUNTED_STATUSES:
        facts.append(
            _subscription_fact(
                e,
                f"trial-converted:{sub['id']}",
                c.TRIAL_CONVERTED,
                {c.PLAN: _subscription_item(sub)[0]} if _subscription_item(sub)[0] else {},
                ProfileEffect(status=status),
            )
        )
    before, after = _subscription_item(previous), _subscription_item(sub)
    mrr = _mrr_change(sub, previous)
    plan_changed = ("items" in previous or "plan" in previous or "quantity" in previous) and before != after
    status_changed = "status" in previous and old_status != status
    if plan_changed or (not facts and mrr is not None and mrr.change is not None and mrr.change.minor != 0):
        properties: dict[str, Any] = {
            c.FROM_PLAN: before[0],
            c.TO_PLAN: after[0],
            c.FROM_QUANTITY: before[1],
            c.TO_QUANTITY: after[1],
        }
        if status_changed:
            properties[c.STATUS] = status
        facts.append(
            _subscription_fact(
                e,
                f"subscription-change:{sub['id']}:{e.id}",
                c.SUBSCRIPTION_CHANGED,
                properties,
                ProfileEffect(plan=after[0], quantity=after[1], status=status if status_changed else None),
            )
        )
    before_state = {flag: previous.get(flag, sub.get(flag)) for flag in CANCEL_FLAGS}
    was_scheduled, now_scheduled = _cancel_scheduled(before_state), _cancel_scheduled(sub)
    if any(flag in previous for flag in CANCEL_FLAGS) and was_scheduled != now_scheduled:
        if now_scheduled:
            cancel_at = (
                sub.get("cancel_at")
                or sub.get("current_period_end")
                or dig(sub, "items", "data", 0, "current_period_end")
            )
            facts.append(
                _subscription_fact(
                    e,
                    f"subscription-cancel-scheduled:{sub['id']}:{e.id}",
                    c.SUBSCRIPTION_CANCELLATION_SCHEDULED,
                    {c.CANCEL_AT: iso_utc(cancel_at)} if cancel_at else {},
                    None,
                )
            )
        else:
            facts.append(
                _subscription_fact(
                    e, f"subscription-reactivated:{sub['id']}:{e.id}", c.SUBSCRIPTION_REACTIVATED, {}, None
                )
            )
    if mrr is None:
        return list(facts)
    return [replace(fact, mrr=mrr if i == 0 else mrr.without_change()) for i, fact in enumerate(facts)]


def _mrr_change(sub: dict[str, Any], previous: dict[str, Any]) -> MrrChange | None:
    after = subscription_mrr(sub)
    if after is None:
        return None
    before = subscription_mrr(previous_state(sub, previous)) if previous else after
    return MrrChange(sub["id"], after, before)


def _subscription_deleted(e: _Event) -> list[Fact | Deferred]:
    sub = e.obj
    reason = dig(sub, "cancellation_details", "reason")
    properties = {c.REASON: reason} if reason else {}
    plan = _subscription_item(sub)[0]
    if plan:
        properties[c.PLAN] = plan
    ended = int(sub.get("ended_at") or e.created)
    fact = _subscription_fact(
        e, f"subscription-end:{sub['id']}", c.SUBSCRIPTION_CANCELLED, properties, ProfileEffect(status="canceled")
    )
    # The deleted object says `canceled`; what it billed until then is its items (none while still in trial).
    was = subscription_mrr({**sub, "status": "active"})
    mrr = MrrChange.ended(sub["id"], was, was_paying=not ended_in_trial(sub))
    return [replace(fact, time=ended, mrr=mrr)]


def _trial_will_end(e: _Event) -> list[Fact | Deferred]:
    trial_end = e.obj.get("trial_end")
    if not trial_end:
        return []
    after = subscription_mrr(e.obj)
    fact = _subscription_fact(
        e, f"trial-ending:{e.obj['id']}:{trial_end}", c.TRIAL_ENDING, {c.TRIAL_END: iso_utc(trial_end)}, None
    )
    return [replace(fact, mrr=MrrChange(e.obj["id"], after, after) if after is not None else None)]


def _invoice_payment_failed(e: _Event) -> list[Fact | Deferred]:
    invoice = e.obj
    attempt = int(invoice.get("attempt_count") or 0)
    money = minor_money(invoice.get("amount_due"), invoice.get("currency"))
    metadata = _invoice_metadata(invoice)
    properties: dict[str, Any] = {c.ATTEMPT: attempt}
    subscription = _invoice_subscription(invoice)
    if subscription:
        properties[c.SUBSCRIPTION_ID] = subscription
    return [
        Fact(
            key=f"{NAME}:payment-failed:{invoice['id']}:{attempt}",
            event=c.PAYMENT_FAILED,
            time=e.created,
            identity=e.identity(*metadata),
            money=money,
            order_id=invoice["id"],
            properties=properties,
            ip=e.ip(*metadata),
        )
    ]


def _payment_intent_failed(e: _Event) -> list[Fact | Deferred]:
    intent = e.obj
    if intent.get("invoice"):
        return []  # invoice.payment_failed reports it, with the attempt number
    error = intent.get("last_payment_error") or {}
    attempt_ref = id_of(error.get("charge")) or id_of(intent.get("latest_charge")) or e.id
    properties: dict[str, Any] = {}
    reason = error.get("decline_code") or error.get("code")
    if reason:
        properties[c.REASON] = reason
    metadata = intent.get("metadata")
    return [
        Fact(
            key=f"{NAME}:payment-failed:{intent['id']}:{attempt_ref}",
            event=c.PAYMENT_FAILED,
            time=e.created,
            identity=e.identity(metadata),
            money=minor_money(intent.get("amount"), intent.get("currency")),
            order_id=intent["id"],
            properties=properties,
            ip=e.ip(metadata),
        )
    ]


def _subscription_started(e: _Event) -> Fact:
    sub = e.obj
    item = _first_item(sub)
    price = (item or {}).get("price") or (item or {}).get("plan") or sub.get("plan")
    properties: dict[str, Any] = {c.STATUS: sub.get("status"), **_price_properties(price)}
    quantity = (item or {}).get("quantity") or sub.get("quantity")
    if quantity:
        properties[c.QUANTITY] = quantity
    if sub.get("status") == "trialing" and sub.get("trial_end"):
        properties[c.TRIAL_END] = iso_utc(sub["trial_end"])
    return _subscription_fact(
        e,
        f"subscription-start:{sub['id']}",
        c.SUBSCRIPTION_STARTED,
        properties,
        ProfileEffect(status=sub.get("status"), plan=_plan(price) if price else None, quantity=quantity or None),
    )


def _subscription_fact(
    e: _Event, key: str, event: str, properties: dict[str, Any], profile: ProfileEffect | None
) -> Fact:
    sub = e.obj
    metadata = sub.get("metadata")
    return Fact(
        key=f"{NAME}:{key}",
        event=event,
        time=e.created,
        identity=e.identity(metadata),
        properties={c.SUBSCRIPTION_ID: sub["id"], **properties},
        profile=profile,
        ip=e.ip(metadata),
    )


# --- Stripe Connect ----------------------------------------------------------------------------


def _on_account(mapped: Sequence[Mapped], account: str | None) -> list[Mapped]:
    """Facts of a connected account's event carry the account (`Stripe Account`), whatever they are."""
    if account is None:
        return list(mapped)
    return [
        replace(f, properties={**f.properties, c.STRIPE_ACCOUNT: account}) if isinstance(f, Fact) else f for f in mapped
    ]


def _platform_fee(payment: dict[str, Any]) -> dict[str, Any]:
    """`Platform Fee`: the application fee a platform takes from a connected account's invoice or PaymentIntent,
    in major units of its currency (`application_fee_amount`, set when the platform created it, or the
    invoice's subscription, with a fee)."""
    fee = minor_money(payment.get("application_fee_amount"), payment.get("currency"))
    return {c.PLATFORM_FEE: fee.revenue()} if fee is not None and fee.minor > 0 else {}


# --- field readers, old and new API shapes -------------------------------------------------


def id_of(value: Any) -> str | None:
    """A Stripe reference is an id string, or the expanded object with an `id`."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    return None


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    return (
        id_of(invoice.get("subscription"))  # before 2025-03-31.basil
        or id_of(dig(invoice, "parent", "subscription_details", "subscription"))  # basil and later
        or id_of(dig(invoice, "lines", "data", 0, "subscription"))
        or id_of(dig(invoice, "lines", "data", 0, "parent", "subscription_item_details", "subscription"))
    )


def _payment_key(object_id: str) -> str:
    """The fact key of the purchase a Checkout Session, an invoice or a PaymentIntent of its own is."""
    return f"{NAME}:payment:{object_id}"


def _amount_paid(invoice: dict[str, Any]) -> Any:
    """What a paid invoice collected: `amount_paid`; versions from before it (early 2018) have only
    `amount_due`, which a paid invoice has paid in full."""
    return invoice["amount_paid"] if invoice.get("amount_paid") is not None else invoice.get("amount_due")


def _invoice_payment_intents(invoice: dict[str, Any]) -> list[str]:
    """The PaymentIntents that paid an invoice: `payment_intent` before basil, the (expanded) `payments` list after."""
    found = [id_of(invoice.get("payment_intent"))]
    found += [id_of(dig(p, "payment", "payment_intent")) for p in dig(invoice, "payments", "data") or []]
    return list(dict.fromkeys(intent for intent in found if intent))


def _invoice_metadata(invoice: dict[str, Any]) -> list[Any]:
    """Where an app's ids may sit on an invoice: its own, its subscription's (old and new shape), its lines'."""
    lines = dig(invoice, "lines", "data") or []
    return [
        invoice.get("metadata"),
        dig(invoice, "subscription_details", "metadata"),
        dig(invoice, "parent", "subscription_details", "metadata"),
        dig(invoice, "subscription", "metadata"),
        *[line.get("metadata") for line in lines if isinstance(line, dict)],
    ]


def _first_price(lines: list[Any]) -> dict[str, Any] | None:
    """The first line's price: `price` (or `plan`) before basil, `pricing.price_details` (ids only) after."""
    for line in lines:
        if not isinstance(line, dict):
            continue
        price = line.get("price") or line.get("plan")
        if isinstance(price, dict):
            return price
        details = dig(line, "pricing", "price_details")
        if isinstance(details, dict) and id_of(details.get("price")):
            expanded = details["price"] if isinstance(details["price"], dict) else {}
            return {**expanded, "id": id_of(details["price"]), "product": details.get("product")}
    return None


def _first_item(sub: dict[str, Any]) -> dict[str, Any] | None:
    item = dig(sub, "items", "data", 0)
    return item if isinstance(item, dict) else None


def _subscription_item(sub: dict[str, Any]) -> tuple[str | None, int | None]:
    """(plan, quantity) of a subscription or of its previous_attributes."""
    item = _first_item(sub)
    price = (item or {}).get("price") or (item or {}).get("plan") or sub.get("plan")
    quantity = (item or {}).get("quantity") or sub.get("quantity")
    return (_plan(price) if isinstance(price, dict) else None, quantity)


def _plan(price: Any) -> str | None:
    if not isinstance(price, dict):
        return None
    return price.get("nickname") or price.get("lookup_key") or id_of(price.get("product")) or price.get("id")


def _named_plan(price: Any) -> str | None:
    """The plan a profile keeps: named (nickname, lookup key) or, from a full price, its product; None for basil
    invoice lines, which give ids only, so that a subscription event's name is not replaced by an id."""
    if isinstance(price, dict) and set(price) <= {"id", "product"}:
        return None
    return _plan(price)


def _price_properties(price: Any) -> dict[str, Any]:
    if not isinstance(price, dict):
        return {}
    properties = {c.PLAN: _plan(price), c.PRICE: price.get("id")}
    interval = dig(price, "recurring", "interval") or price.get("interval")
    if interval:
        properties[c.INTERVAL] = interval
    return {key: value for key, value in properties.items() if value}


CANCEL_FLAGS = ("cancel_at_period_end", "cancel_at")


def _cancel_scheduled(state: dict[str, Any]) -> bool:
    """Whether a subscription state has a cancellation scheduled (either Stripe flag)."""
    return any(bool(state.get(flag)) for flag in CANCEL_FLAGS)


def _signed_timestamp(header: str) -> int | None:
    """The `t` that stripe-python verifies: the first item whose key is exactly `t`, read as it reads it.

    Parsed the library's way (no trimming, `split("=", 2)`), so that a padded ` t=<now>` in front of a
    future-signed `t=` cannot pass this check while the library verifies the future one.
    """
    for item in header.split(","):
        parts = item.split("=", 2)
        if parts[0] == "t" and len(parts) > 1:
            try:
                return int(parts[1])
            except ValueError:
                return None
    return None


_HANDLERS: dict[str, Callable[[_Event], Sequence[Mapped]]] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "payment_intent.succeeded": _payment_intent_succeeded,
    "invoice_payment.paid": _invoice_payment_paid,
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,
    "refund.created": _refund_created,
    "charge.refunded": _charge_refunded,
    "customer.subscription.created": _subscription_created,
    "customer.subscription.updated": _subscription_updated,
    "customer.subscription.deleted": _subscription_deleted,
    "customer.subscription.trial_will_end": _trial_will_end,
    "invoice.payment_failed": _invoice_payment_failed,
    "payment_intent.payment_failed": _payment_intent_failed,
}
assert set(_HANDLERS) == set(PRODUCES), "every produced Stripe type needs a handler"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """A delivery's headers signed as Stripe signs (for the tools and tests; `verify` uses stripe's own library)."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json; charset=utf-8", "stripe-signature": f"t={ts},v1={signature}"}


SPEC = ProviderSpec(
    route=NAME,
    title="Stripe",
    signing=SigningSecret(variable="STRIPE_WEBHOOK_SECRET_ID", resource="StripeWebhookSecret", prefix="whsec_"),
    create=create,
    produces=PRODUCES,
    sign=sign,
    user_agent="Stripe/1.0 (+https://stripe.com/docs/webhooks)",
)
