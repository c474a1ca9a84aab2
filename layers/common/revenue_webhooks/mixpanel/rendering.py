"""Facts and customer totals, rendered as Mixpanel events and profile updates.

Pure functions of their inputs: the same fact always renders the same event, byte for
byte, which is what Mixpanel's deduplication on (event, distinct_id, time, $insert_id) needs.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..config import Settings
from ..domain import catalog as c
from ..domain.facts import Fact
from ..domain.identity import device_id, distinct_id
from ..domain.money import Money
from . import economics

# Fixed namespace: changing it would change every $insert_id and break deduplication of replays.
INSERT_ID_NAMESPACE = uuid.UUID("5b0f8a64-3c1e-4d1b-9a7e-2f8f9b6c1d20")


def insert_id(fact: Fact) -> str:
    """36 characters of `[0-9a-f-]`: valid for Mixpanel, and the same for every webhook about this fact."""
    return str(uuid.uuid5(INSERT_ID_NAMESPACE, f"{fact.key}|{fact.event}"))


def mixpanel_event(fact: Fact, settings: Settings) -> dict[str, Any]:
    """The `/import` event for a fact (names mapped through EVENT_NAMES / PROPERTY_NAMES)."""
    properties: dict[str, Any] = {
        "time": int(fact.time),
        "distinct_id": distinct_id(fact, settings),
        "$insert_id": insert_id(fact),
        "ip": fact.ip or "0",
        c.PROVIDER: fact.provider,
    }
    if settings.id_merge == "simplified":
        if fact.identity.user_id:
            properties["$user_id"] = fact.identity.user_id
        properties["$device_id"] = device_id(fact)
    if fact.money is not None:
        properties[c.REVENUE] = fact.money.revenue()
        properties[c.CURRENCY] = fact.money.currency
    if fact.order_id:
        properties[c.ORDER_ID] = fact.order_id
    if settings.group_key and fact.identity.company:
        properties[settings.group_key] = fact.identity.company  # Group Analytics: the event's company
    for name, value in fact.properties.items():
        if value is not None:
            properties[settings.property_names.get(name, name)] = value
    for name, value in {**economics.event_properties(fact), **economics.reporting_properties(fact, settings)}.items():
        properties[settings.property_names.get(name, name)] = value
    return {"event": settings.event_names.get(fact.event, fact.event), "properties": properties}


def profile_update(totals: dict[str, Any], settings: Settings, token: str) -> dict[str, Any] | None:
    """`/engage` `$set` of a customer's absolute totals; None while no user is known for the customer."""
    distinct = (
        totals.get("user_id") if settings.id_merge == "simplified" else totals.get("user_id") or totals.get("customer")
    )
    if not distinct:
        return None  # properties on a `$device:` profile are lost at merge: wait for the user id
    values = totals_values(totals, settings)
    if settings.send_email and totals.get("email"):
        values["$email"] = totals["email"]
    values = {settings.property_names.get(name, name): value for name, value in values.items()}
    if settings.group_key and totals.get("company"):
        values[settings.group_key] = totals["company"]  # the user's company, as Mixpanel's group docs advise
    return {"$token": token, "$distinct_id": distinct, "$ip": "0", "$ignore_time": True, "$set": values}


def totals_values(totals: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The absolute totals a profile shows, by catalog name: one rule for user and company profiles, so whatever
    the totals rule keeps (domain/totals.py: MRR and the reporting currency, when configured) shows on both."""
    revenue: dict[str, int] = totals.get("revenue") or {}
    values: dict[str, Any] = {
        c.PURCHASE_COUNT: int(totals.get("purchases", 0)),
        c.REFUND_COUNT: int(totals.get("refunds", 0)),
    }
    for currency, minor in sorted(revenue.items()):
        values[f"{c.LIFETIME_REVENUE} {currency}"] = Money(int(minor), currency).revenue()
    if settings.profile_currency:  # deprecated (README, "Reporting currency"): this currency's revenue only
        values[c.LIFETIME_REVENUE] = Money(
            int(revenue.get(settings.profile_currency, 0)), settings.profile_currency
        ).revenue()
    if totals.get("status"):
        values[c.SUBSCRIPTION_STATUS] = totals["status"]
    if totals.get("plan"):
        values[c.PROFILE_PLAN] = totals["plan"]
    if totals.get("last_purchase_at"):
        values[c.LAST_PURCHASE_DATE] = _iso(totals["last_purchase_at"])
    values.update(economics.profile_values(totals, settings))
    return values


def group_update(company: str, totals: dict[str, Any], settings: Settings, token: str) -> dict[str, Any]:
    """`/groups` `$set` of a company's absolute totals (the group profile under GROUP_KEY)."""
    values = totals_values(totals, settings)
    if totals.get("quantity") is not None:
        values[c.SEATS] = int(totals["quantity"])
    if totals.get("first_purchase_at"):
        values[c.FIRST_PURCHASE_DATE] = _iso(totals["first_purchase_at"])
    values = {settings.property_names.get(name, name): value for name, value in values.items()}
    return {"$token": token, "$group_key": settings.group_key, "$group_id": company, "$set": values}


def _iso(seconds: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(seconds)))
