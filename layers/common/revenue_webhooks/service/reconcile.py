"""Reconciliation: Stripe's payments and refunds for a period, the ledger's and Mixpanel's, per currency and
per object, and the command that repairs each difference.

Stripe's side comes from its own objects (revenue_webhooks/providers/_stripe_objects.py: `money_in`), each
with the webhook that should have counted it; the webhooks' mapping names the fact it becomes, and so the
ledger entry and the Mixpanel `$insert_id` to look for. Each payment belongs to the period of its Stripe
time (when it was paid), in all three columns alike, so an event time a second off Stripe's never splits a
payment across periods; what Mixpanel holds that Stripe does not (by `$insert_id`) counts in the period of
its Mixpanel time. Mixpanel's events are deduplicated as its queries are (event, distinct_id, time,
$insert_id) before anything is summed. Amounts stay in minor units.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from .. import observability
from ..config import Settings
from ..domain import catalog as c
from ..domain.facts import Fact
from ..domain.money import Money, normalize_currency
from ..domain.webhook import QueuedEvent
from ..mixpanel.export import deduplicated
from ..mixpanel.rendering import insert_id
from ..providers._stripe_objects import StripeMoney, money_in
from ..providers.base import Provider
from .ports import Ledger

SOURCES = ("stripe", "ledger", "mixpanel")
MONEY_EVENTS = {"payment": c.PURCHASE_COMPLETED, "refund": c.REFUND_ISSUED}
# The lists reconcile reads (subscriptions hold no money).
KINDS = ("invoices", "checkout_sessions", "payment_intents", "refunds")
REPAIR = 'make backfill ARGS="--ids {ids}"'


@dataclass(frozen=True)
class Expected:
    """A payment or refund Stripe holds, and where the pipeline should have put it."""

    object_id: str
    kind: str  # payment | refund
    money: Money
    time: int
    fact_key: str | None  # None: the webhooks' mapping counts nothing for it
    insert_id: str | None
    why_not_counted: str = ""


@dataclass(frozen=True)
class Held:
    """A money event as the ledger or Mixpanel holds it."""

    insert_id: str
    kind: str
    money: Money
    time: int
    reference: str  # the Order ID or Refund ID it names


@dataclass
class Difference:
    object_id: str
    kind: str
    currency: str
    stripe: Money | None
    ledger: Money | None
    mixpanel: Money | None
    problem: str
    repair: str | None

    def as_json(self) -> dict[str, Any]:
        def amount(money: Money | None) -> str | None:
            return None if money is None else str(money.major)

        return {
            "object_id": self.object_id,
            "kind": self.kind,
            "currency": self.currency,
            "stripe": amount(self.stripe),
            "ledger": amount(self.ledger),
            "mixpanel": amount(self.mixpanel),
            "problem": self.problem,
            "repair": self.repair,
        }


@dataclass
class Totals:
    """Gross payments and refunds in minor units, and how many of each."""

    gross: int = 0
    refunds: int = 0
    payments_count: int = 0
    refunds_count: int = 0

    @property
    def net(self) -> int:
        return self.gross - self.refunds

    def add(self, kind: str, minor: int) -> None:
        if kind == "refund":
            self.refunds += minor
            self.refunds_count += 1
        else:
            self.gross += minor
            self.payments_count += 1


@dataclass
class Report:
    since: int
    until: int
    ledger_checked: bool
    totals: dict[str, dict[str, Totals]] = field(default_factory=dict)  # currency -> source -> totals
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return not self.differences

    def repair_command(self) -> str | None:
        ids = sorted({d.object_id for d in self.differences if d.repair})
        return REPAIR.format(ids=",".join(ids)) if ids else None

    def as_json(self) -> dict[str, Any]:
        currencies = {}
        for currency, by_source in sorted(self.totals.items()):
            currencies[currency] = {
                source: {
                    "gross": str(Money(t.gross, currency).major),
                    "refunds": str(Money(t.refunds, currency).major),
                    "net": str(Money(t.net, currency).major),
                    "payments": t.payments_count,
                    "refund_count": t.refunds_count,
                }
                for source, t in by_source.items()
            }
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "agree": self.agree,
            "ledger_checked": self.ledger_checked,
            "currencies": currencies,
            "differences": [d.as_json() for d in self.differences],
            "repair": self.repair_command(),
            "notes": list(self.notes),
        }


# ---- Stripe's side ------------------------------------------------------------------------------------


def expected(
    money: Iterable[StripeMoney], provider: Provider, settings: Settings, received_at_ms: int = 0
) -> list[Expected]:
    """Each Stripe payment or refund with the fact the webhooks' mapping makes of its webhook."""
    found = []
    for item in money:
        event = item.event
        queued = QueuedEvent("stripe", event["id"], event["type"], received_at_ms, _body(event))
        wanted = MONEY_EVENTS[item.kind]
        facts = [f for f in provider.map(queued) if isinstance(f, Fact) and f.event == wanted]
        amount = Money(item.minor, item.currency)
        if facts:
            fact = facts[0]
            found.append(Expected(item.object_id, item.kind, amount, fact.time, fact.key, insert_id(fact)))
        else:
            why = f"the pipeline maps no {wanted} from {event['type']}"
            found.append(Expected(item.object_id, item.kind, amount, int(event["created"]), None, None, why))
    return found


def _body(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


# ---- the ledger's and Mixpanel's sides -------------------------------------------------------------------


def held(events: Iterable[dict[str, Any]], settings: Settings) -> list[Held]:
    """Money events (Purchase Completed, Refund Issued, as renamed by EVENT_NAMES/PROPERTY_NAMES) and their amounts."""
    names = {settings.event_names.get(name, name): kind for kind, name in MONEY_EVENTS.items()}
    prop = {name: settings.property_names.get(name, name) for name in (c.REVENUE, c.CURRENCY, c.ORDER_ID, c.REFUND_ID)}
    found = []
    for event in events:
        kind = names.get(str(event.get("event")))
        properties = event.get("properties") or {}
        if kind is None or properties.get(prop[c.REVENUE]) is None:
            continue
        try:
            money = Money.from_major(properties[prop[c.REVENUE]], normalize_currency(properties[prop[c.CURRENCY]]))
        except (KeyError, TypeError, ValueError):
            continue
        reference = properties.get(prop[c.REFUND_ID] if kind == "refund" else prop[c.ORDER_ID]) or "?"
        when = int(float(properties.get("time") or 0))
        when = when // 1000 if when > 100_000_000_000 else when
        found.append(
            Held(
                str(properties.get("$insert_id") or ""),
                kind,
                Money(abs(money.minor), money.currency),
                when,
                str(reference),
            )
        )
    return found


# ---- the comparison -------------------------------------------------------------------------------------


def compare(
    stripe: Sequence[Expected],
    ledger: Mapping[str, Held] | None,
    mixpanel: Sequence[Held],
    since: int,
    until: int,
) -> Report:
    """Per currency and per object; `stripe` may reach beyond the period (its margin), only what is in it counts."""
    report = Report(since, until, ledger_checked=ledger is not None)
    by_insert: dict[str, list[Held]] = defaultdict(list)
    for event in mixpanel:
        by_insert[event.insert_id].append(event)
    known = {item.insert_id for item in stripe if item.insert_id}

    def totals(currency: str, source: str) -> Totals:
        return report.totals.setdefault(currency, {s: Totals() for s in SOURCES})[source]

    for item in sorted(stripe, key=lambda e: (e.time, e.object_id)):
        if not since <= item.time < until:
            continue
        currency = item.money.currency
        totals(currency, "stripe").add(item.kind, item.money.minor)
        in_ledger = ledger.get(item.fact_key) if ledger is not None and item.fact_key else None
        if in_ledger is not None:
            totals(currency, "ledger").add(item.kind, in_ledger.money.minor)
        copies = by_insert.get(item.insert_id or "", [])
        for copy in copies:
            totals(copy.money.currency, "mixpanel").add(item.kind, copy.money.minor)
        seen = _sum(copies)
        problems = []
        if item.fact_key is None:
            problems.append(item.why_not_counted)
        else:
            if not copies:
                problems.append("not in Mixpanel")
            elif len(copies) > 1:
                problems.append(f"{len(copies)} events in Mixpanel (different time or user)")
            elif seen != item.money:
                problems.append(f"Mixpanel has {_show(seen)}")
            if ledger is not None and in_ledger is None:
                problems.append("not in the ledger")
            elif in_ledger is not None and in_ledger.money != item.money:
                problems.append(f"the ledger has {_show(in_ledger.money)}")
        if problems:
            report.differences.append(
                Difference(
                    item.object_id,
                    item.kind,
                    currency,
                    item.money,
                    in_ledger.money if in_ledger else None,
                    seen,
                    "; ".join(problems),
                    f"revenue-webhooks backfill --ids {item.object_id}" if item.fact_key else None,
                )
            )
    for event in sorted(mixpanel, key=lambda e: (e.time, e.reference)):
        if event.insert_id in known or not since <= event.time < until:
            continue
        totals(event.money.currency, "mixpanel").add(event.kind, event.money.minor)
        report.differences.append(
            Difference(
                event.reference,
                event.kind,
                event.money.currency,
                None,
                None,
                event.money,
                f"in Mixpanel (at {_iso(event.time)}) but not in Stripe's {event.kind}s of the period",
                None,
            )
        )
    return report


def _sum(copies: Sequence[Held]) -> Money | None:
    if not copies:
        return None
    return Money(sum(copy.money.minor for copy in copies), copies[0].money.currency)


def _show(money: Money | None) -> str:
    return "nothing" if money is None else f"{money.major} {money.currency}"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the run ---------------------------------------------------------------------------------------------

StripeHistory = Callable[[int, int], tuple[Mapping[str, list[dict[str, Any]]], str | None]]
MixpanelExport = Callable[[int, int, Sequence[str]], Iterable[dict[str, Any]]]


class Reconciler:
    """Reads the three sides for a period and compares them.

    `stripe(since, until)` lists the money kinds created in that window (objects by kind, API version);
    `export(since, until, names)` returns Mixpanel's raw events of the days covering it; `ledger` is optional.
    """

    MARGIN_BEFORE_S = 2 * 86400  # a Checkout Session lives a day; an invoice is drafted an hour before payment
    MARGIN_AFTER_S = 86400

    def __init__(
        self,
        settings: Settings,
        provider: Provider,
        stripe: StripeHistory,
        export: MixpanelExport,
        ledger: Ledger | None,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.stripe = stripe
        self.export = export
        self.ledger = ledger

    def run(self, since: int, until: int) -> Report:
        objects, version = self.stripe(since - self.MARGIN_BEFORE_S, until + self.MARGIN_AFTER_S)
        stripe_side = expected(money_in(objects, version), self.provider, self.settings)
        names = [self.settings.event_names.get(name, name) for name in MONEY_EVENTS.values()]
        raw = self.export(since - self.MARGIN_AFTER_S, until + self.MARGIN_AFTER_S, names)
        mixpanel_side = held(deduplicated(raw), self.settings)
        ledger_side: dict[str, Held] | None = None
        if self.ledger is not None:
            keys = [item.fact_key for item in stripe_side if item.fact_key and since <= item.time < until]
            stored = self.ledger.facts(keys)
            ledger_side = {}
            for key, event in stored.items():
                found = held([event], self.settings)
                if found:
                    ledger_side[key] = found[0]
        report = compare(stripe_side, ledger_side, mixpanel_side, since, until)
        if self.ledger is None:
            report.notes.append("the ledger was not read (no LEDGER_TABLE): its column is empty")
        return report

    def recent(self, days: int, now: float) -> Report:
        """The last `days` whole UTC days (today's payments are left to their webhooks and catch-up)."""
        until = int(now) - int(now) % 86400
        return self.run(until - days * 86400, until)


def publish(report: Report, most: int = 50) -> None:
    """The daily run's outcome: metrics (its alarm watches ReconcileDifferences) and one log line with the report.

    `ReconcileDifferences` counts the objects that differ; `ReconcileNetDifference` (per Currency, in major units)
    is how far Mixpanel's net is from Stripe's. The log line holds the first `most` differences and the repair.
    """
    observability.add("ReconcileDifferences", len(report.differences))
    for currency, sources in sorted(report.totals.items()):
        gap = Money(abs(sources["mixpanel"].net - sources["stripe"].net), currency)
        with single_metric(
            name="ReconcileNetDifference",
            unit=MetricUnit.NoUnit,
            value=float(gap.major),
            namespace=observability.NAMESPACE,
        ) as metric:
            metric.add_dimension(name="Currency", value=currency)
    document = report.as_json()
    document["differences"] = document["differences"][:most]
    log = observability.logger.info if report.agree else observability.logger.warning
    log("reconciled", extra={"reconcile": document, "differences_total": len(report.differences)})
