"""Gross and net: what a payment or a refund was made of, as far as the provider says.

`Revenue` stays what the customer paid (tax included). Beside it, only what the provider states:
`Tax`, `Discount` (what coupons took off before the customer paid), `Net Revenue` = Revenue - Tax,
the processor's `Fee`, and what reached the merchant (`Settlement Amount` in `Settlement Currency`).
Nothing is estimated: a provider that does not state the tax gets no `Tax` and no `Net Revenue`.
"""

from __future__ import annotations

from dataclasses import dataclass

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
