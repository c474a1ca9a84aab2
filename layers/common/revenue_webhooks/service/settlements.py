"""The processor's fee and what was settled, from its own books, on facts that name a settled payment.

Stripe's webhooks name a PaymentIntent, charge or refund but not its balance transaction's figures; with an
API key configured, the forwarder asks Stripe once per payment before rendering (adapters/stripe_settlements.py)
and the event gets `Fee`, `Settlement Amount` and `Settlement Currency`, and Stripe's own conversion for the
reporting currency. A balance transaction never changes, so a later re-rendering asks again and gets the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..domain.amounts import settled
from ..domain.facts import Fact
from .ports import SettlementLookup


class Settlements:
    """`FactEnricher` for facts with a `settlement_ref` of `provider`."""

    def __init__(self, provider: str, lookup: SettlementLookup) -> None:
        self.provider = provider
        self.lookup = lookup

    def attach(self, facts: Sequence[Fact], *, fetch: bool = True) -> list[Fact]:
        wanted = sorted({f.settlement_ref for f in facts if f.settlement_ref and f.provider == self.provider})
        if not wanted or not fetch:
            return list(facts)
        found = self.lookup.settlements(wanted)
        out = []
        for fact in facts:
            settlement = found.get(fact.settlement_ref or "") if fact.provider == self.provider else None
            if settlement is None or fact.money is None:
                out.append(fact)
                continue
            amounts, conversion = settled(fact.amounts, fact.money, settlement)
            conversions = (*fact.conversions, conversion) if conversion else fact.conversions
            out.append(replace(fact, amounts=amounts, conversions=conversions))
        return out
