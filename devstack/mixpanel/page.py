"""The local page at `/`: its files (package data beside this module) and the JSON its script polls.

The HTML, CSS and JavaScript are real files, read once at import so a missing one fails at start-up; the
page loads nothing from outside the server, and its JSON only reads what the store holds.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from .messages import Reply, Request
from .rules import is_number
from .store import event_json

log = logging.getLogger(__name__)

# URL path -> (file beside this module, Content-Type).
_FILES = {
    "/": ("page.html", "text/html; charset=utf-8"),
    "/static/page.css": ("page.css", "text/css; charset=utf-8"),
    "/static/page.js": ("page.js", "text/javascript; charset=utf-8"),
}
_CONTENT = {path: resources.files(__package__).joinpath(name).read_bytes() for path, (name, _) in _FILES.items()}
PAGE_PATHS = tuple(_FILES)


def page_file(request: Request) -> Reply:
    """The page or one of its files, never cached so a reload shows an edited file."""
    content_type = _FILES[request.path][1]
    return Reply(200, _CONTENT[request.path], content_type, extra_headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class RevenueView:
    """Which event properties the page's revenue chart reads; the defaults are the event catalog's names."""

    amount_property: str = "Revenue"
    currency_property: str = "Currency"
    refund_events: tuple[str, ...] = ("Refund Issued",)
    # MRR (docs/events.md "MRR, movements and the reporting currency")
    mrr_property: str = "MRR"
    mrr_change_property: str = "MRR Change"
    movement_property: str = "MRR Movement"
    subscription_property: str = "Subscription ID"
    provider_property: str = "Provider"


CATALOG_REVENUE_VIEW = RevenueView()


def daily_revenue(rows: Iterable[sqlite3.Row], view: RevenueView) -> list[dict[str, Any]]:
    """Revenue per UTC day and currency from stored events: gross, refunds, net and event count."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        props = json.loads(row["properties"])
        amount, currency = props.get(view.amount_property), props.get(view.currency_property)
        if not is_number(amount) or not isinstance(currency, str) or not currency:
            continue
        day = datetime.fromtimestamp(row["time_ms"] / 1000, UTC).date().isoformat()
        entry = totals.setdefault(
            (day, currency.upper()),
            {"day": day, "currency": currency.upper(), "gross": 0.0, "refunds": 0.0, "net": 0.0, "events": 0},
        )
        refund = row["event"] in view.refund_events
        entry["refunds" if refund else "gross"] += abs(amount) if refund else amount
        entry["net"] += -abs(amount) if refund else amount
        entry["events"] += 1
    return [totals[key] for key in sorted(totals)]


def daily_mrr(rows: Iterable[sqlite3.Row], view: RevenueView) -> dict[str, Any]:
    """MRR at the end of each UTC day per currency (each subscription's newest `MRR`, summed), and the day's
    `MRR Change` by `MRR Movement`; from the deduplicated events, in event-time order."""
    events = []
    for row in rows:
        props = json.loads(row["properties"])
        mrr, currency = props.get(view.mrr_property), props.get(view.currency_property)
        subscription = props.get(view.subscription_property)
        if not is_number(mrr) or not isinstance(currency, str) or not currency or subscription is None:
            continue
        events.append((row["time_ms"], row["seq"], props, currency.upper()))
    state: dict[str, dict[tuple[Any, Any], float]] = {}
    totals: dict[tuple[str, str], float] = {}
    movements: dict[tuple[str, str, str], dict[str, Any]] = {}
    for time_ms, _, props, currency in sorted(events, key=lambda e: (e[0], e[1])):
        day = datetime.fromtimestamp(time_ms / 1000, UTC).date().isoformat()
        subscriptions = state.setdefault(currency, {})
        subscriptions[(props.get(view.provider_property), props[view.subscription_property])] = props[view.mrr_property]
        totals[(day, currency)] = sum(subscriptions.values())
        change, movement = props.get(view.mrr_change_property), props.get(view.movement_property)
        if is_number(change) and isinstance(movement, str) and movement:
            entry = movements.setdefault(
                (day, currency, movement), {"day": day, "currency": currency, "movement": movement, "change": 0.0}
            )
            entry["change"] += change
    return {
        "mrr": [{"day": d, "currency": cur, "mrr": round(v, 6)} for (d, cur), v in sorted(totals.items())],
        "movements": [movements[key] for key in sorted(movements)],
        "currencies": sorted(state),
    }


def events_json(rows: list[sqlite3.Row], query: dict[str, str], view: RevenueView) -> dict[str, Any]:
    """`/api/events`: the deduplicated events newest first, filtered by `name` and `user` (a substring).

    Newest by event time, the time the event says it happened (as Mixpanel lists events), not by arrival:
    webhooks arrive late and out of order; events of the same time are listed last-arrived first.
    """
    name, user = query.get("name") or None, (query.get("user") or "").strip().lower()
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else 200
    names = sorted({r["event"] for r in rows})
    matched = [
        r
        for r in sorted(rows, key=lambda r: (r["time_ms"], r["seq"]), reverse=True)
        if (name is None or r["event"] == name) and (not user or user in r["distinct_id"].lower())
    ]
    return {
        "events": [
            {"seq": r["seq"], "received_at": r["received_at"], "time_ms": r["time_ms"], **event_json(r)}
            for r in matched[:limit]
        ],
        "names": names,
        "amount_property": view.amount_property,
        "currency_property": view.currency_property,
        "refund_events": list(view.refund_events),
        "matched": len(matched),
        "total": len(rows),
    }


def revenue_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """`/api/revenue`: `daily_revenue`'s rows and the currencies they use (one chart each)."""
    return {"rows": rows, "currencies": sorted({r["currency"] for r in rows})}


def dead_letters_json(dead_letters: Callable[[], list[dict[str, Any]]] | None) -> dict[str, Any]:
    """`/api/dead-letters`: the queue's messages, or why not (no queue connected, or it failed)."""
    if dead_letters is None:
        return {"connected": False, "items": []}
    try:
        items = dead_letters()
    except Exception as exc:  # the page must keep working when the queue is unreachable
        log.warning("dead letters unavailable: %s", exc)
        return {"connected": True, "items": [], "error": f"{type(exc).__name__}: {exc}"}
    return {"connected": True, "items": json.loads(json.dumps(list(items), default=str))}
