"""Monthly recurring revenue: one subscription's MRR from its own payload, and the movement an event makes.

The meanings are ChartMogul's (help.chartmogul.com, "Metric: Monthly Recurring Revenue (MRR)" and "Data Table
and MRR Movements"): MRR is the recurring amount normalised to a month (a yearly price / 12, a price billed
every 3 months / 3), after recurring discounts, without tax, one-time and metered charges; a free trial
counts 0 until it is paid. The five movements:

- New: a subscription starts paying (ChartMogul: "the MRR at the moment a lead converts" to paying).
- Expansion: a paying subscription's MRR grows (more seats, a higher plan, a discount ending).
- Contraction: it shrinks but stays above zero (fewer seats, a lower plan, a discount added).
- Churn: it stops paying (cancelled, ended).
- Reactivation: a subscription that had paid and stopped pays again.

One difference, and why: ChartMogul classifies per customer (a second subscription of a paying customer
is Expansion; ending one of two is Contraction). Here every event is classified per subscription, from
its own payload, because an event's properties must not depend on which other webhooks arrived first
(deliveries come in any order; a replay must render the same bytes). docs/recipes.md shows how to get
the customer-level view in Mixpanel.

Amounts are exact fractions of minor units until one rounding, half up, per subscription state; an
event's `MRR Change` is the difference of two rounded states, so the changes of a history add up exactly
to its final MRR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from . import catalog as c
from .money import Money

# How many billing periods of one interval fit in a month (a week: 52 per year / 12 months).
PERIODS_PER_MONTH = {
    "day": Decimal(365) / Decimal(12),
    "week": Decimal(52) / Decimal(12),
    "month": Decimal(1),
    "year": Decimal(1) / Decimal(12),
}

# Movement names (the values of `MRR Movement`).
NEW = "New"
EXPANSION = "Expansion"
CONTRACTION = "Contraction"
CHURN = "Churn"
REACTIVATION = "Reactivation"
MOVEMENTS = (NEW, EXPANSION, CONTRACTION, CHURN, REACTIVATION)
# What each means here (docs/events.md): ChartMogul's meanings, applied to one subscription.
MOVEMENT_MEANINGS = (
    (NEW, "The subscription starts paying: created paying, or a trial converted. MRR Change = its MRR."),
    (EXPANSION, "A paying subscription's MRR grows: more seats, a higher plan, a discount ending."),
    (CONTRACTION, "It shrinks and stays above zero: fewer seats, a lower plan, a discount added."),
    (CHURN, "It stops paying: cancelled and ended, paused. MRR Change = minus its MRR before."),
    (REACTIVATION, "A subscription that had paid and stopped pays again (Paddle's resume)."),
)

# When two events about one subscription carry the same second, the later step of a lifecycle is its
# newer state (a subscription created and upgraded in one second ends upgraded): the order of facts
# within one second, whatever order they were delivered in.
STATE_ORDER = {
    c.SUBSCRIPTION_STARTED: 0,
    c.TRIAL_ENDING: 0,
    c.TRIAL_CONVERTED: 1,
    c.SUBSCRIPTION_RENEWED: 2,
    c.SUBSCRIPTION_CHANGED: 2,
    c.SUBSCRIPTION_CANCELLATION_SCHEDULED: 2,
    c.SUBSCRIPTION_REACTIVATED: 2,
    c.SUBSCRIPTION_CANCELLED: 3,
}


@dataclass(frozen=True, slots=True)
class Charge:
    """One recurring line of a subscription: what it bills each period for its whole quantity.

    `amount` is in minor units, without tax, after the line's own recurring discounts (a Decimal: tax-inclusive
    prices divided by 1 + rate are fractions).
    """

    amount: Decimal
    interval: str
    count: int = 1

    def monthly(self) -> Decimal:
        """Minor units per month, exact."""
        return self.amount * PERIODS_PER_MONTH[self.interval] / Decimal(self.count)


@dataclass(frozen=True, slots=True)
class Discount:
    """A recurring discount on the whole subscription: a percentage, or an amount off each billing period."""

    percent: Decimal = Decimal(0)
    amount_off: int = 0


def billing_interval(interval: object, count: object = 1) -> tuple[str, int] | None:
    """(interval, count) when readable: day, week, month or year, every `count` (1 or more) of them."""
    name = interval.lower() if isinstance(interval, str) else None
    if isinstance(count, str) and count.strip().isdigit():
        count = int(count)
    if name not in PERIODS_PER_MONTH or isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return None
    return name, count


# Store periods (App Store, Google Play, RevenueCat) are not stated as an interval, only as a period's start and
# end: whole days read as the interval they are (a month is 28 to 31 days).
PERIODS_BY_DAYS = (
    (range(6, 9), ("week", 1)),
    (range(28, 32), ("month", 1)),
    (range(59, 63), ("month", 2)),
    (range(89, 93), ("month", 3)),
    (range(180, 185), ("month", 6)),
    (range(364, 367), ("year", 1)),
)


def interval_of(start_s: int, end_s: int) -> tuple[str, int] | None:
    """The billing interval a period from `start_s` to `end_s` (Unix seconds) is; None for one it does not know
    (sandbox's accelerated periods, a prorated part period)."""
    days = round((end_s - start_s) / 86_400)
    return next((interval for span, interval in PERIODS_BY_DAYS if days in span), None)


def monthly_recurring(charges: Sequence[Charge], currency: str, discounts: Sequence[Discount] = ()) -> Money:
    """The MRR of these charges: each normalised to a month, discounts applied in order, never below zero.

    An amount off is per billing period, so it is normalised with the first charge's interval (providers
    bill one subscription on one interval).
    """
    total = sum((charge.monthly() for charge in charges), Decimal(0))
    for discount in discounts:
        total -= total * discount.percent / Decimal(100)
        if discount.amount_off and charges:
            first = charges[0]
            total -= Charge(Decimal(discount.amount_off), first.interval, first.count).monthly()
    return Money.rounded(max(total, Decimal(0)), currency)


def movement(before: int, after: int, *, was_paying: bool = False) -> str | None:
    """The movement from one MRR to another (same currency, minor units); None when nothing moved."""
    if before == after:
        return None
    if before == 0:
        return REACTIVATION if was_paying else NEW
    if after == 0:
        return CHURN
    return EXPANSION if after > before else CONTRACTION


@dataclass(frozen=True, slots=True)
class MrrChange:
    """What one event says of one subscription's MRR: after the event, and before it when the payload says.

    `before` is None when the payload does not carry the previous state (Paddle's `subscription.updated`
    has no previous values); the event then has `MRR` but no `MRR Change` and no movement.
    `was_paying` tells a Reactivation from a New when the MRR leaves zero (a subscription that had paid
    before its MRR fell to zero).
    """

    subscription: str
    after: Money
    before: Money | None = None
    was_paying: bool = False

    @property
    def change(self) -> Money | None:
        if self.before is None or self.before.currency != self.after.currency:
            return None
        return self.after - self.before

    @property
    def movement(self) -> str | None:
        if self.change is None or self.before is None:
            return None
        return movement(self.before.minor, self.after.minor, was_paying=self.was_paying)

    @classmethod
    def started(cls, subscription: str, after: Money | None) -> MrrChange | None:
        """A subscription's first state: from zero (None when its MRR could not be read)."""
        return cls(subscription, after, Money(0, after.currency)) if after is not None else None

    @classmethod
    def ended(cls, subscription: str, before: Money | None, *, was_paying: bool = True) -> MrrChange | None:
        """A subscription's end: to zero, from what it billed (from zero when it never paid)."""
        if before is None:
            return None
        zero = Money(0, before.currency)
        return cls(subscription, zero, before if was_paying else zero)

    def without_change(self) -> MrrChange:
        """The same state carrying no change: for a second fact of one webhook (its change counts once)."""
        return MrrChange(self.subscription, self.after, self.after, False)
