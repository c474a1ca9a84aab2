"""One reporting currency: the rate that turns an event's money into it, and where the rate comes from.

A rate is chosen once per fact, before the fact is rendered (service/reporting.py), in this order:
1. the provider's own conversion (`Conversion`: Stripe's balance transaction, Paddle's payout totals,
   Lemon Squeezy's `*_usd` amounts, Shopify's shop money, RevenueCat's USD price) when it is into the
   reporting currency: what the money really became;
2. else a daily reference rate (`RateTable`: the ECB's euro reference rates, crossed through the euro),
   of the newest table published on or before the fact's UTC day, as first fetched and kept in the ledger,
   so a replay or redrive renders the same bytes.
Amounts stay integers in minor units; a conversion rounds once, half up, to the reporting currency's unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from .money import Money, exponent

EURO = "EUR"
ECB = "ecb"
SAME_CURRENCY = "same_currency"
# A reference table older than this for the fact's day means the feed stopped: no rate rather than a stale one
# (the ECB publishes every TARGET business day; Easter's four-day closing is the longest gap).
MAX_TABLE_AGE_DAYS = 7


def day_of(unix_seconds: int) -> str:
    """The UTC day (YYYY-MM-DD) of a fact time: which day's rate converts it."""
    return datetime.fromtimestamp(int(unix_seconds), UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Conversion:
    """A provider's own statement that `original` was `converted` (same payment, another currency)."""

    original: Money
    converted: Money
    source: str  # e.g. "paddle_payout_totals": the provider and the field it comes from


@dataclass(frozen=True, slots=True)
class Rate:
    """1 `base` = `value` `quote`, from `source`, for the rate's `date` (YYYY-MM-DD).

    `value` None: no rate could be had (a currency the reference source does not publish, or the source was
    unreachable on the last attempt); the event then carries no converted amounts and the profile's
    reporting-currency totals are withheld rather than understated.
    """

    base: str
    quote: str
    value: Decimal | None
    date: str
    source: str
    exact: Conversion | None = None

    def convert(self, money: Money) -> Money | None:
        """`money` (in `base`) in `quote`, rounded half up; the provider's own converted amount when it is that one."""
        if self.value is None or money.currency != self.base:
            return None
        if self.exact is not None and money == self.exact.original:
            return self.exact.converted
        if self.exact is not None and money == -self.exact.original:
            return -self.exact.converted
        major = money.major * self.value
        return Money.rounded(major.scaleb(exponent(self.quote)), self.quote)


def same_currency(currency: str, day: str) -> Rate:
    return Rate(currency, currency, Decimal(1), day, SAME_CURRENCY)


def unavailable(base: str, quote: str, day: str, source: str) -> Rate:
    return Rate(base, quote, None, day, source)


def from_conversion(conversion: Conversion, day: str) -> Rate | None:
    """The rate a provider's conversion implies (converted / original, in major units)."""
    if conversion.original.minor == 0:
        return None
    value = conversion.converted.major / conversion.original.major
    return Rate(conversion.original.currency, conversion.converted.currency, value, day, conversion.source, conversion)


@dataclass(frozen=True)
class RateTable:
    """One day's reference rates as a source published them: units of each currency for 1 euro."""

    source: str
    published: str  # YYYY-MM-DD
    per_euro: Mapping[str, Decimal] = field(default_factory=dict)

    def rate(self, base: str, quote: str) -> Rate:
        """`base` -> `quote` crossed through the euro; value None when the table lacks either currency."""
        table = {**self.per_euro, EURO: Decimal(1)}
        if base not in table or quote not in table:
            return unavailable(base, quote, self.published, self.source)
        return Rate(base, quote, table[quote] / table[base], self.published, self.source)

    def to_json(self) -> dict[str, object]:
        """The stored form (the ledger's rate cache): rates as the decimal strings they were published as."""
        return {
            "source": self.source,
            "published": self.published,
            "per_euro": {k: str(v) for k, v in sorted(self.per_euro.items())},
        }

    @classmethod
    def from_json(cls, value: Mapping[str, object]) -> RateTable:
        rates = value.get("per_euro")
        return cls(
            str(value["source"]),
            str(value["published"]),
            {str(k): Decimal(str(v)) for k, v in (rates.items() if isinstance(rates, Mapping) else ())},
        )


def table_for(day: str, tables: Iterable[RateTable]) -> RateTable | None:
    """The newest table published on or before `day`, if not older than MAX_TABLE_AGE_DAYS."""
    wanted = date.fromisoformat(day)
    usable = [t for t in tables if date.fromisoformat(t.published) <= wanted]
    if not usable:
        return None
    newest = max(usable, key=lambda t: t.published)
    if wanted - date.fromisoformat(newest.published) > timedelta(days=MAX_TABLE_AGE_DAYS):
        return None
    return newest


def choose(currency: str, reporting: str, day: str, conversions: Iterable[Conversion]) -> Rate | None:
    """The rate that needs no reference table: the same currency, or the provider's own conversion."""
    if currency == reporting:
        return same_currency(currency, day)
    for conversion in conversions:
        if conversion.original.currency == currency and conversion.converted.currency == reporting:
            rate = from_conversion(conversion, day)
            if rate is not None:
                return rate
    return None
