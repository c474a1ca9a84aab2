"""Subscription economics as Mixpanel properties: MRR and its movement, gross and net, the reporting currency.

Pure functions of a fact (or of a customer's totals) and the settings, like rendering.py, which calls them:
the rate is on the fact already (chosen before rendering, kept in the ledger), so a replay renders the
same bytes.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..domain import catalog as c
from ..domain.facts import Fact
from ..domain.fx import SAME_CURRENCY
from ..domain.money import Money


def event_properties(fact: Fact) -> dict[str, Any]:
    """`MRR`, `MRR Change`, `MRR Movement`, and `Tax`, `Discount`, `Net Revenue`, `Fee`, `Settlement *`."""
    properties: dict[str, Any] = {}
    if fact.mrr is not None:
        properties[c.MRR] = fact.mrr.after.revenue()
        change, movement = fact.mrr.change, fact.mrr.movement
        if change is not None:
            properties[c.MRR_CHANGE] = change.revenue()
        if movement is not None:
            properties[c.MRR_MOVEMENT] = movement
        if fact.money is None:
            properties[c.CURRENCY] = fact.mrr.after.currency
    amounts, money = fact.amounts, fact.money
    if amounts is not None and money is not None:
        net = amounts.net(money)
        for name, value in ((c.TAX, amounts.tax), (c.DISCOUNT, amounts.discount), (c.NET_REVENUE, net)):
            if value is not None and value.currency == money.currency:
                properties[name] = value.revenue()
        if amounts.fee is not None and amounts.fee.currency == money.currency:
            properties[c.FEE] = amounts.fee.revenue()
        if amounts.settlement is not None:
            properties[c.SETTLEMENT_AMOUNT] = amounts.settlement.revenue()
            properties[c.SETTLEMENT_CURRENCY] = amounts.settlement.currency
    return properties


def reporting_properties(fact: Fact, settings: Settings) -> dict[str, Any]:
    """Every money property again in REPORTING_CURRENCY, with the rate's value, date and source."""
    rate = fact.rate
    if not settings.reporting_currency or rate is None or rate.value is None:
        return {}
    amounts: dict[str, Money | None] = {}
    if fact.money is not None:
        amounts[c.REVENUE] = fact.money
        if fact.amounts is not None:
            amounts.update({c.TAX: fact.amounts.tax, c.DISCOUNT: fact.amounts.discount, c.FEE: fact.amounts.fee})
            amounts[c.NET_REVENUE] = fact.amounts.net(fact.money)
    converted: dict[str, Money | None] = {name: rate.convert(m) for name, m in amounts.items() if m is not None}
    if fact.mrr is not None:
        after = rate.convert(fact.mrr.after)
        converted[c.MRR] = after
        before = rate.convert(fact.mrr.before) if fact.mrr.change is not None and fact.mrr.before else None
        if after is not None and before is not None:
            converted[c.MRR_CHANGE] = after - before
    properties: dict[str, Any] = {
        c.reporting_name(name, settings.reporting_currency, settings.reporting_format): value.revenue()
        for name, value in converted.items()
        if value is not None
    }
    if properties and rate.source != SAME_CURRENCY:
        properties[c.EXCHANGE_RATE] = float(f"{rate.value:.10g}")
        properties[c.EXCHANGE_RATE_DATE] = rate.date
        properties[c.EXCHANGE_RATE_SOURCE] = rate.source
    return properties


def profile_values(totals: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """`MRR <CUR>` per currency, and lifetime revenue and MRR in the reporting currency when all of it converted."""
    values: dict[str, Any] = {}
    subscriptions: dict[str, dict[str, Any]] = totals.get("subscriptions") or {}
    by_currency: dict[str, int] = {}
    for state in subscriptions.values():
        by_currency[state["currency"]] = by_currency.get(state["currency"], 0) + int(state["mrr"])
    for currency, minor in sorted(by_currency.items()):
        values[f"{c.PROFILE_MRR} {currency}"] = Money(minor, currency).revenue()
    reporting = settings.reporting_currency
    if not reporting:
        return values
    name = c.reporting_name(c.LIFETIME_REVENUE, reporting, settings.reporting_format)
    converted_revenue = (totals.get("reporting") or {}).get(reporting)
    if converted_revenue is not None and not (totals.get("unconverted") or {}).get(reporting):
        values[name] = Money(int(converted_revenue), reporting).revenue()
    paying = [state for state in subscriptions.values() if int(state["mrr"])]
    converted_mrr = [state.get("reporting") for state in paying]
    if subscriptions and all(entry and entry[1] == reporting for entry in converted_mrr):
        total = sum(int(entry[0]) for entry in converted_mrr if entry)
        values[c.reporting_name(c.PROFILE_MRR, reporting, settings.reporting_format)] = Money(
            total, reporting
        ).revenue()
    return values
