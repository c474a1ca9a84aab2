"""Gross and net: what a payment or a refund was made of, as far as the provider says.

`Revenue` stays what the customer paid (tax included). Beside it, only what the provider states:
`Tax`, `Discount` (what coupons took off before the customer paid), `Net Revenue` = Revenue - Tax,
the processor's `Fee`, and what reached the merchant (`Settlement Amount` in `Settlement Currency`).
Nothing is estimated: a provider that does not state the tax gets no `Tax` and no `Net Revenue`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from .fx import Conversion
from .money import Money


@dataclass(frozen=True, slots=True)
class Amounts:
    """The parts of one payment or refund the provider states; every one optional.

    `tax`, `discount` and `fee` are in the payment's currency; `settlement` in the currency the provider
    settled in (Paddle's payout currency, Stripe's balance currency).
    """

    tax: Money | None = None
    discount: Money | None = None
    fee: Money | None = None
    settlement: Money | None = None

    def net(self, revenue: Money) -> Money | None:
        """Revenue without tax; None when the tax is not stated (or in another currency)."""
        if self.tax is None or self.tax.currency != revenue.currency:
            return None
        return revenue - self.tax


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the processor's own books say of a payment or refund (Stripe's balance transaction): the amount
    as it entered the merchant's balance, the processor's fee and what was left, in the balance's currency."""

    gross: Money
    fee: Money
    net: Money
    source: str  # e.g. "stripe_balance_transaction"


def settled(amounts: Amounts | None, paid: Money, settlement: Settlement) -> tuple[Amounts, Conversion | None]:
    """`amounts` with the processor's fee (in the payment's currency, at the processor's own rate when it
    settled in another one) and the settled amount; and the processor's conversion of the payment, if any."""
    base = amounts or Amounts()
    gross, fee = abs(settlement.gross.minor), abs(settlement.fee.minor)
    if settlement.gross.currency == paid.currency:
        return replace(base, fee=Money(fee, paid.currency), settlement=_abs(settlement.net)), None
    if gross == 0:
        return replace(base, settlement=_abs(settlement.net)), None
    fee_paid = Money.rounded(Decimal(fee) * Decimal(abs(paid.minor)) / Decimal(gross), paid.currency)
    conversion = Conversion(_abs(paid), Money(gross, settlement.gross.currency), settlement.source)
    return replace(base, fee=fee_paid, settlement=_abs(settlement.net)), conversion


def _abs(money: Money) -> Money:
    return Money(abs(money.minor), money.currency)
