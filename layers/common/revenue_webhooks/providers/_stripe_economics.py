"""Stripe's subscription economics from the payload: a subscription's MRR, its state before an update, an
invoice's or Checkout session's tax and discounts.

MRR of a subscription object (domain/mrr.py has the meaning): the licensed per-unit items, each
`unit_amount` x `quantity` (after `transform_quantity`) normalised by `recurring.interval` and
`interval_count`, tax-inclusive prices without their inclusive tax rates, then the subscription's recurring
discounts (`duration` forever or repeating; `once` is not recurring). Statuses that bill count (active,
past_due, unpaid: unpaid ends at deletion); trialing, incomplete, incomplete_expired, paused and canceled
count 0. Unreadable means unknown (None), never a guess: a tiered price, a discount given only as an id.
Old (2018+) and new (2025-03-31.basil+) shapes are read: `plan`/`quantity` on the subscription, `coupon`
on the discount or under `source`.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from ..domain.amounts import Amounts
from ..domain.money import Money
from ..domain.mrr import Charge, Discount, billing_interval, monthly_recurring
from ._common import items, minor_money, obj
from .base import dig

COUNTED_STATUSES = ("active", "past_due", "unpaid")


def subscription_mrr(sub: dict[str, Any]) -> Money | None:
    """The subscription's MRR as this object describes it; None when it cannot be read exactly."""
    lines = _items(sub)
    currency = _currency(sub, lines)
    if currency is None:
        return None
    if sub.get("status") not in COUNTED_STATUSES:
        return Money(0, currency)
    charges: list[Charge] = []
    for item in lines:
        charge = _charge(item, sub)
        if charge is UNREADABLE:
            return None
        if isinstance(charge, Charge):
            charges.append(charge)
    discounts = _discounts(sub, currency)
    if discounts is None:
        return None
    return monthly_recurring(charges, currency, discounts)


def previous_state(sub: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """The subscription before an update: `previous_attributes` laid over it (objects merged, arrays whole)."""
    merged = dict(sub)
    for key, value in previous.items():
        if isinstance(value, dict) and isinstance(sub.get(key), dict):
            merged[key] = previous_state(sub[key], value)
        else:
            merged[key] = value
    return merged


def ended_in_trial(sub: dict[str, Any]) -> bool:
    """A subscription deleted before its trial ended was never paying."""
    trial_end, ended = sub.get("trial_end"), sub.get("ended_at") or sub.get("canceled_at")
    return isinstance(trial_end, int) and isinstance(ended, int) and ended <= trial_end


def invoice_amounts(invoice: dict[str, Any], paid: Money) -> Amounts | None:
    """Tax and discounts of a paid invoice (tax only when the whole invoice was paid by this payment)."""
    currency = paid.currency
    tax: Money | None = None
    if invoice.get("total") == invoice.get("amount_paid"):
        if isinstance(invoice.get("total_taxes"), list):  # 2025-03-31.basil and later
            tax = _sum(invoice["total_taxes"], "amount", currency)
        elif isinstance(invoice.get("tax"), int):
            tax = Money.from_minor(invoice["tax"], currency)
        elif isinstance(invoice.get("total_tax_amounts"), list):
            tax = _sum(invoice["total_tax_amounts"], "amount", currency)
    discount = None
    if isinstance(invoice.get("total_discount_amounts"), list):
        discount = _sum(invoice["total_discount_amounts"], "amount", currency)
    if tax is None and discount is None:
        return None
    return Amounts(tax=tax, discount=discount)


def checkout_amounts(session: dict[str, Any], paid: Money) -> Amounts | None:
    """A Checkout session's `total_details`: tax and discount of what the customer paid."""
    details = obj(session.get("total_details"))
    tax = minor_money(details.get("amount_tax"), paid.currency) if "amount_tax" in details else None
    discount = minor_money(details.get("amount_discount"), paid.currency) if "amount_discount" in details else None
    if tax is None and discount is None:
        return None
    return Amounts(tax=tax, discount=discount)


# --- readers -----------------------------------------------------------------------------------


def _items(sub: dict[str, Any]) -> list[dict[str, Any]]:
    lines = [item for item in items(dig(sub, "items", "data")) if isinstance(item, dict)]
    if lines or not isinstance(sub.get("plan"), dict):
        return lines
    return [{"plan": sub["plan"], "quantity": sub.get("quantity")}]  # a single-plan subscription before items


def _currency(sub: dict[str, Any], lines: list[dict[str, Any]]) -> str | None:
    for value in [sub.get("currency"), *[_price(item).get("currency") for item in lines]]:
        if isinstance(value, str) and len(value) == 3:
            return value.upper()
    return None


def _price(item: dict[str, Any]) -> dict[str, Any]:
    return obj(item.get("price")) or obj(item.get("plan"))


UNREADABLE = "unreadable"


def _charge(item: dict[str, Any], sub: dict[str, Any]) -> Charge | str | None:
    """One item's charge per period; None for a metered item (excluded from MRR); UNREADABLE when unreadable."""
    price = _price(item)
    recurring = obj(price.get("recurring"))
    if (recurring.get("usage_type") or price.get("usage_type")) == "metered":
        return None
    if price.get("billing_scheme") == "tiered":
        return UNREADABLE  # the tiers are not in a webhook's price
    interval = billing_interval(
        recurring.get("interval") or price.get("interval"),
        recurring.get("interval_count") or price.get("interval_count") or 1,
    )
    unit = _unit_amount(price)
    quantity = _quantity(item, price)
    if interval is None or unit is None or quantity is None:
        return UNREADABLE
    amount = unit * quantity
    if price.get("tax_behavior") == "inclusive":
        inclusive = [
            Decimal(str(rate["percentage"]))
            for rate in items(item.get("tax_rates")) + items(sub.get("default_tax_rates"))
            if isinstance(rate, dict) and rate.get("inclusive") is True and rate.get("percentage") is not None
        ]
        amount = amount / (1 + sum(inclusive, Decimal(0)) / 100)
    return Charge(amount, *interval)


def _unit_amount(price: dict[str, Any]) -> Decimal | None:
    for field in ("unit_amount_decimal", "unit_amount", "amount_decimal", "amount"):
        value = price.get(field)
        if isinstance(value, bool) or value is None:
            continue
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    return None


def _quantity(item: dict[str, Any], price: dict[str, Any]) -> int | None:
    quantity = item.get("quantity", 1)
    if quantity is None:
        quantity = 1
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        return None
    transform = obj(price.get("transform_quantity") or price.get("transform_usage"))
    divide_by = transform.get("divide_by")
    if isinstance(divide_by, int) and divide_by > 0:
        billed = quantity / divide_by
        quantity = math.floor(billed) if transform.get("round") == "down" else math.ceil(billed)
    return quantity


def _discounts(sub: dict[str, Any], currency: str) -> list[Discount] | None:
    """The recurring discounts; None when one is named but not readable (an id without its object)."""
    objects = [d for d in [sub.get("discount"), *items(sub.get("discounts"))] if isinstance(d, dict)]
    known = {d.get("id") for d in objects}
    named = [d for d in items(sub.get("discounts")) if isinstance(d, str)]
    named += [d for item in items(dig(sub, "items", "data")) for d in items(obj(item).get("discounts"))]
    if any(isinstance(d, str) and d not in known for d in named) or any(isinstance(d, dict) for d in named):
        return None  # item-level discounts, or subscription discounts only as ids: their amounts are not here
    found: dict[Any, Discount] = {}
    for discount in objects:
        coupon = discount.get("coupon") or dig(discount, "source", "coupon")
        if not isinstance(coupon, dict):
            return None
        if coupon.get("duration") == "once":
            continue  # applies to one invoice: not recurring revenue
        if coupon.get("percent_off") is not None:
            found[discount.get("id")] = Discount(percent=Decimal(str(coupon["percent_off"])))
        elif isinstance(coupon.get("amount_off"), int) and str(coupon.get("currency", "")).upper() == currency:
            found[discount.get("id")] = Discount(amount_off=coupon["amount_off"])
        else:
            return None
    return list(found.values())


def _sum(entries: list[Any], field: str, currency: str) -> Money | None:
    total = 0
    for entry in entries:
        value = obj(entry).get(field)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        total += value
    return Money(total, currency)
