"""Customer totals: how one new fact changes a customer's counters and states, whatever the order.

Counters add once per fact (the ledger records the fact and the totals together); states (status,
plan, user id, e-mail) keep the newest event's value, so a late, older event cannot overwrite them;
two facts of the same second settle subscription states by their fact keys, so the order of arrival
never decides.
"""

from __future__ import annotations

from typing import Any

from .facts import Fact
from .mrr import STATE_ORDER


def customer_key(fact: Fact) -> str | None:
    """Whose totals a fact changes: `<provider>:<customer or user id>`, None for a guest with neither."""
    who = fact.identity.customer or fact.identity.user_id
    return f"{fact.provider}:{who}" if who else None


def apply(totals: dict[str, Any], fact: Fact) -> dict[str, Any]:
    """Customer totals after one new fact: counters add, states keep the newest event's value."""
    updated = dict(totals)
    updated["revenue"] = dict(totals.get("revenue") or {})
    effect = fact.profile
    if effect is not None:
        updated["purchases"] = int(totals.get("purchases", 0)) + effect.purchases
        updated["refunds"] = int(totals.get("refunds", 0)) + effect.refunds
        if effect.revenue is not None:
            currency = effect.revenue.currency
            updated["revenue"][currency] = int(updated["revenue"].get(currency, 0)) + effect.revenue.minor
        if effect.purchases:
            updated["last_purchase_at"] = max(int(totals.get("last_purchase_at") or 0), fact.time)
        for state in ("status", "plan", "quantity"):
            value = getattr(effect, state)
            if value and _newer(fact, totals, state):
                updated[state], updated[f"{state}_at"], updated[f"{state}_key"] = value, fact.time, fact.key
    if fact.identity.user_id and fact.time >= int(totals.get("user_id_at") or 0):
        updated["user_id"], updated["user_id_at"] = fact.identity.user_id, fact.time
    if fact.identity.customer:
        updated["customer"] = fact.identity.customer
    if fact.email and fact.time >= int(totals.get("email_at") or 0):
        updated["email"], updated["email_at"] = fact.email, fact.time
    if fact.identity.company and fact.time >= int(totals.get("company_at") or 0):
        updated["company"], updated["company_at"] = fact.identity.company, fact.time
    _apply_economics(updated, fact)
    return updated


# ---- companies (Group Analytics) ---------------------------------------------------------------

# What a company's totals keep of the customer rule: who paid is the members' business, not the company's.
_PERSONAL = ("user_id", "user_id_at", "customer", "email", "email_at", "company", "company_at")


def company_key(fact: Fact) -> str | None:
    """Whose company totals a fact changes: the company id itself (the group id), provider-independent."""
    return fact.identity.company or None


def apply_company(totals: dict[str, Any], fact: Fact) -> dict[str, Any]:
    """Company totals after one new fact: the customer rule (counters, revenue per currency, and states decided
    by (time, fact key), so that two facts of the same second settle the same way in any delivery order) and
    the first purchase."""
    updated = {key: value for key, value in apply(totals, fact).items() if key not in _PERSONAL}
    effect = fact.profile
    if effect is None:
        return updated
    if effect.purchases:
        first = int(totals.get("first_purchase_at") or 0)
        updated["first_purchase_at"] = min(first, fact.time) if first else fact.time
    return updated


def _newer(fact: Fact, totals: dict[str, Any], state: str) -> bool:
    """Whether `fact` sets `state` over the one held: newest wins; a tie goes to the larger fact key."""
    held = (int(totals.get(f"{state}_at") or 0), str(totals.get(f"{state}_key") or ""))
    return (fact.time, fact.key) >= held


def _apply_economics(updated: dict[str, Any], fact: Fact) -> None:
    """MRR: each subscription's newest state (by fact time, then lifecycle step, then key: any delivery order
    gives the same); revenue in the reporting currency, each fact converted at its own rate."""
    if fact.mrr is not None:
        subscriptions = dict(updated.get("subscriptions") or {})
        order = [fact.time, STATE_ORDER.get(fact.event, 2), fact.key]
        current = subscriptions.get(fact.mrr.subscription)
        if current is None or order > current["order"]:
            converted = fact.rate.convert(fact.mrr.after) if fact.rate is not None else None
            subscriptions[fact.mrr.subscription] = {
                "mrr": fact.mrr.after.minor,
                "currency": fact.mrr.after.currency,
                "order": order,
                "reporting": [converted.minor, converted.currency] if converted is not None else None,
            }
        updated["subscriptions"] = subscriptions
    revenue = fact.profile.revenue if fact.profile is not None else None
    if revenue is not None and fact.rate is not None:
        converted = fact.rate.convert(revenue)
        reporting, missing = dict(updated.get("reporting") or {}), dict(updated.get("unconverted") or {})
        if converted is not None:
            reporting[converted.currency] = int(reporting.get(converted.currency, 0)) + converted.minor
        else:
            missing[fact.rate.quote] = int(missing.get(fact.rate.quote, 0)) + 1
        updated["reporting"], updated["unconverted"] = reporting, missing
