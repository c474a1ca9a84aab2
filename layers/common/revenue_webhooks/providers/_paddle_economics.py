"""Paddle Billing's subscription economics from the payload: a subscription's MRR, a transaction's or
adjustment's tax, discount, fee, payout and conversion.

MRR of a subscription entity: its recurring items, each `price.unit_price.amount` x `quantity` normalised by
`price.billing_cycle` (`interval`, `frequency`). Statuses that bill count (active, past_due); trialing, paused
and canceled count 0. Unreadable is unknown (None): a price whose `tax_mode` is `internal` (tax included: the
rate is not on the subscription), or a discount that still applies after the next bill (Paddle's subscription
names the discount, not its amount). A discount that ends by `next_billed_at` is not recurring and is ignored.
`account_setting` prices are read as tax-exclusive (Paddle's default); docs/providers.md says so.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..domain.amounts import Amounts
from ..domain.fx import Conversion
from ..domain.money import Money
from ..domain.mrr import Charge, billing_interval, monthly_recurring
from ._common import items, minor_money, obj, unix_from_iso
from .base import dig

COUNTED_STATUSES = ("active", "past_due")
PAYOUT_SOURCE = "paddle_payout_totals"


def subscription_mrr(sub: dict[str, Any], *, status: str | None = None) -> Money | None:
    """The MRR this entity describes (with `status`, as if it had that status)."""
    currency = sub.get("currency_code")
    if not isinstance(currency, str) or len(currency) != 3:
        return None
    currency = currency.upper()
    if (status or sub.get("status")) not in COUNTED_STATUSES:
        return Money(0, currency)
    charges = []
    for item in items(sub.get("items")):
        if not isinstance(item, dict) or item.get("recurring") is False:
            continue
        price = obj(item.get("price"))
        cycle = obj(price.get("billing_cycle"))
        interval = billing_interval(cycle.get("interval"), cycle.get("frequency") or 1)
        unit = minor_money(dig(price, "unit_price", "amount"), dig(price, "unit_price", "currency_code") or currency)
        quantity = item.get("quantity", 1)
        if not cycle:
            continue  # a one-time item billed with the subscription: not recurring
        if interval is None or unit is None or unit.currency != currency or price.get("tax_mode") == "internal":
            return None
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            return None
        charges.append(Charge(Decimal(unit.minor * quantity), *interval))
    discount = sub.get("discount")
    if isinstance(discount, dict):
        ends, next_bill = unix_from_iso(discount.get("ends_at")), unix_from_iso(sub.get("next_billed_at"))
        if ends is None or next_bill is None or ends > next_bill:
            return None
    return monthly_recurring(charges, currency)


def was_in_trial(sub: dict[str, Any], at: int | None) -> bool:
    """Whether an item's trial was still running at `at` (a subscription canceled in trial never paid)."""
    for item in items(sub.get("items")):
        ends = unix_from_iso(dig(item, "trial_dates", "ends_at"))
        if ends is not None and (at is None or at < ends):
            return True
    return False


def had_trial(sub: dict[str, Any]) -> bool:
    """Whether the subscription's items carry trial dates: its activation ended a trial."""
    return any(isinstance(dig(item, "trial_dates", "ends_at"), str) for item in items(sub.get("items")))


def totals_amounts(totals: dict[str, Any], payout: dict[str, Any], currency: str) -> Amounts:
    """`totals` (tax, discount, fee in the payment's currency) and `payout_totals` (earnings, what was settled)."""
    return Amounts(
        tax=_money(totals, "tax", currency),
        discount=_money(totals, "discount", currency),
        fee=_money(totals, "fee", currency),
        settlement=_money(payout, "earnings", payout.get("currency_code")),
    )


def payout_conversion(total: Money, payout: dict[str, Any], field: str) -> tuple[Conversion, ...]:
    """Paddle's own conversion of the total into the payout currency (`payout_totals.<field>`)."""
    converted = _money(payout, field, payout.get("currency_code"))
    if converted is None or converted.currency == total.currency:
        return ()
    return (Conversion(total, converted, PAYOUT_SOURCE),)


def _money(totals: dict[str, Any], field: str, currency: Any) -> Money | None:
    value = totals.get(field)
    return minor_money(value, currency) if value is not None else None
