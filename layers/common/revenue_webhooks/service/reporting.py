"""The reporting currency's rate on every fact, chosen before the fact is rendered (domain/fx.py has the rules).

A fact needs a rate when it has money or MRR. The same currency needs none; a provider's own conversion
into the reporting currency comes first; otherwise the reference table of the fact's UTC day: read from the
ledger's rate cache, else fetched (one request for all missing days) and kept there, the first table stored
for a day winning, so every later rendering of the fact (a redrive, a replay, a re-render after Mixpanel
refused it) uses the same rate and renders the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..domain.facts import Fact
from ..domain.fx import RateTable, choose, day_of, table_for, unavailable
from .ports import RateCache, RateSource, RatesUnavailable


class ReportingRates:
    """Attaches the rate into `currency` to facts; raises RatesUnavailable when tables can be neither read nor fetched."""

    def __init__(self, currency: str, cache: RateCache, source: RateSource) -> None:
        self.currency = currency
        self.cache = cache
        self.source = source

    def attach(self, facts: Sequence[Fact], *, fetch: bool = True) -> list[Fact]:
        """`facts` with their rate; without `fetch`, days not cached get no rate (the last attempt's choice)."""
        rated: list[Fact] = []
        waiting: list[int] = []
        for fact in facts:
            currency = fact.currency
            rate = choose(currency, self.currency, day_of(fact.time), fact.conversions) if currency else None
            if currency and rate is None:
                waiting.append(len(rated))
            rated.append(replace(fact, rate=rate) if rate is not None else fact)
        if not waiting:
            return rated
        tables = self._tables({day_of(rated[i].time) for i in waiting}, fetch=fetch)
        for index in waiting:
            fact = rated[index]
            day, currency = day_of(fact.time), fact.currency or ""
            table = tables.get(day)
            rate = (
                table.rate(currency, self.currency)
                if table
                else unavailable(currency, self.currency, day, self.source.name)
            )
            rated[index] = replace(fact, rate=rate)
        return rated

    def _tables(self, days: set[str], *, fetch: bool) -> dict[str, RateTable]:
        try:
            known = self.cache.rate_tables(self.source.name, days)
        except RatesUnavailable:
            raise
        except Exception as error:  # the cache is the ledger: its outage waits like the ledger's
            raise RatesUnavailable(f"rate cache: {type(error).__name__}: {error}") from error
        missing = sorted(days - set(known))
        if not missing or not fetch:
            return known
        published = self.source.tables(missing)
        found = {day: table for day in missing if (table := table_for(day, published)) is not None}
        if found:
            try:
                known.update(self.cache.keep_rate_tables(self.source.name, found))
            except RatesUnavailable:
                raise
            except Exception as error:
                raise RatesUnavailable(f"rate cache: {type(error).__name__}: {error}") from error
        return known
