"""In-memory stand-ins for the forwarder's ports (service/ports.py): a ledger, an event sink, a queue, rates.

The ledger applies the real totals rule (domain/totals.py) and records each fact once, as the DynamoDB
ledger does; what it adds is the ability to fail on demand. The sink answers per event from a script.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from revenue_webhooks.domain.facts import Fact, Identity, PaymentOwner
from revenue_webhooks.domain.fx import RateTable
from revenue_webhooks.domain.identity import payer
from revenue_webhooks.domain.outcomes import DELIVERED, Outcome, Result
from revenue_webhooks.domain.totals import apply, apply_company, company_key, customer_key
from revenue_webhooks.service.ports import Ledger, LedgerUnavailable, LookupUnavailable, RatesUnavailable, Recorded


class InMemoryLedger(Ledger):
    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.rejected: set[str] = set()
        self.totals: dict[str, dict[str, Any]] = {}
        self.company_totals: dict[str, dict[str, Any]] = {}
        self.link_table: dict[str, Identity] = {}
        self.owner_table: dict[str, str] = {}  # payment ref -> the purchase it belongs to
        self.down = False  # every call raises LedgerUnavailable while True
        self.writes = 0

    def _check(self) -> None:
        if self.down:
            raise LedgerUnavailable("the in-memory ledger is down")

    def record_all(
        self,
        items: Sequence[tuple[Fact, dict[str, Any]]],
        written_totals: dict[str, dict[str, Any]] | None = None,
        written_companies: dict[str, dict[str, Any]] | None = None,
    ) -> list[Recorded]:
        if self.down:
            return [LedgerUnavailable("the in-memory ledger is down")] * len(items)
        results: list[Recorded] = []
        for fact, event in items:
            if fact.key in self.events:
                if fact.key in self.rejected:  # Mixpanel refused the stored one: today's rendering replaces it
                    self.events[fact.key] = copy.deepcopy(event)
                    self.rejected.discard(fact.key)
                results.append((copy.deepcopy(self.events[fact.key]), False))
                continue
            twin = next((key for key in fact.same_as if key in self.events), None)
            if twin is not None:  # the same money, counted under its other key first
                results.append((copy.deepcopy(self.events[twin]), False))
                continue
            if any(self.owner_table.get(ref, fact.key) != fact.key for ref in fact.yields_to):
                results.append((None, False))  # another purchase's payment
                continue
            self.writes += 1
            self.events[fact.key] = copy.deepcopy(event)
            for ref in fact.links:
                self.link_table[ref] = payer(fact)
                self.owner_table[ref] = fact.key
            ck = customer_key(fact)
            if ck:
                self.totals[ck] = apply(self.totals.get(ck, {}), fact)
                if written_totals is not None:
                    written_totals[ck] = copy.deepcopy(self.totals[ck])
            co = company_key(fact)
            if co and fact.profile is not None:
                self.company_totals[co] = apply_company(self.company_totals.get(co, {}), fact)
                if written_companies is not None:
                    written_companies[co] = copy.deepcopy(self.company_totals[co])
            results.append((copy.deepcopy(event), True))
        return results

    def facts(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        self._check()
        return {key: copy.deepcopy(self.events[key]) for key in keys if key in self.events}

    def links(self, refs: Iterable[str]) -> dict[str, Identity]:
        self._check()
        return {ref: self.link_table[ref] for ref in refs if ref in self.link_table}

    def link_owners(self, refs: Iterable[str]) -> dict[str, str]:
        self._check()
        return {ref: self.owner_table[ref] for ref in refs if ref in self.owner_table}

    def add_owners(self, owners: Sequence[PaymentOwner]) -> None:
        self._check()
        for owner in owners:
            self.owner_table.setdefault(owner.ref, owner.fact_key)

    def customers(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        self._check()
        return {key: copy.deepcopy(self.totals[key]) for key in keys if key in self.totals}

    def companies(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        self._check()
        return {key: copy.deepcopy(self.company_totals[key]) for key in keys if key in self.company_totals}

    def mark_rejected(self, keys: Iterable[str]) -> None:
        self.rejected.update(key for key in keys if key in self.events)


@dataclass
class ScriptedSink:
    """The event sink: every event delivered unless `answer` says otherwise for its event (by insert id)."""

    answer: Callable[[dict[str, Any]], Result] = lambda event: DELIVERED
    profile_answer: Callable[[dict[str, Any]], Result] = lambda update: DELIVERED
    group_answer: Callable[[dict[str, Any]], Result] = lambda update: DELIVERED
    imported: list[dict[str, Any]] = field(default_factory=list)  # every event sent, with retries
    profiles: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)

    def import_events(self, events: Sequence[dict[str, Any]], *, deadline: float | None = None) -> list[Result]:
        results = [self.answer(event) for event in events]
        self.imported += [json.loads(json.dumps(e)) for e, r in zip(events, results, strict=True) if r == DELIVERED]
        return results

    def update_profiles(self, updates: Sequence[dict[str, Any]], *, deadline: float | None = None) -> list[Result]:
        results = [self.profile_answer(update) for update in updates]
        self.profiles += [u for u, r in zip(updates, results, strict=True) if r == DELIVERED]
        return results

    def update_groups(self, updates: Sequence[dict[str, Any]], *, deadline: float | None = None) -> list[Result]:
        results = [self.group_answer(update) for update in updates]
        self.groups += [u for u, r in zip(updates, results, strict=True) if r == DELIVERED]
        return results

    def delivered(self) -> dict[tuple[str, str, int, str], dict[str, Any]]:
        """What Mixpanel keeps after deduplication: one event per (event, distinct_id, time, $insert_id)."""
        kept: dict[tuple[str, str, int, str], dict[str, Any]] = {}
        for event in self.imported:
            p = event["properties"]
            kept.setdefault((event["event"], p["distinct_id"], p["time"], p["$insert_id"]), event)
        return kept


def transient(reason: str = "mixpanel_429") -> Result:
    return Result(Outcome.TRANSIENT, reason, "scripted")


@dataclass
class ScriptedPayments:
    """A provider's API for payment lookups: `purchases` by payment id; `down` makes every lookup fail."""

    purchases: dict[str, Fact] = field(default_factory=dict)
    configured: bool = True
    down: bool = False
    asked: list[str] = field(default_factory=list)

    def available(self) -> bool:
        return self.configured

    def purchase(self, payment_id: str) -> Fact | None:
        self.asked.append(payment_id)
        if self.down:
            raise LookupUnavailable("429 Too Many Requests (scripted)")
        return self.purchases.get(payment_id)


@dataclass
class RecordingQueue:
    """The dead-letter queue: keeps what was sent; `down` makes every send raise."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False

    def send_message(
        self, *, QueueUrl: str, MessageBody: str, MessageAttributes: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        if self.down:
            raise ConnectionError("the dead-letter queue is unreachable")
        self.sent.append({"QueueUrl": QueueUrl, "MessageBody": MessageBody, "MessageAttributes": MessageAttributes})
        return {"MessageId": f"dl-{len(self.sent)}"}

    def reasons(self) -> list[str]:
        return [m["MessageAttributes"]["dead_letter_reason"]["StringValue"] for m in self.sent]


class InMemoryRateCache:
    """The rate cache (service/ports.RateCache): the first table kept for a day stays, as the conditional put does."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], RateTable] = {}
        self.down = False

    def rate_tables(self, source: str, days: Iterable[str]) -> dict[str, RateTable]:
        if self.down:
            raise RatesUnavailable("the in-memory rate cache is down")
        return {day: self.tables[(source, day)] for day in days if (source, day) in self.tables}

    def keep_rate_tables(self, source: str, tables: Mapping[str, RateTable]) -> dict[str, RateTable]:
        for day, table in tables.items():
            self.tables.setdefault((source, day), table)
        return self.rate_tables(source, tables)


@dataclass
class PublishedRates:
    """The reference source (service/ports.RateSource): the tables of a published file, counted and breakable."""

    published: list[RateTable]
    name: str = "ecb"
    down: bool = False
    requests: list[list[str]] = field(default_factory=list)

    def tables(self, days: Collection[str]) -> list[RateTable]:
        self.requests.append(sorted(days))
        if self.down:
            raise RatesUnavailable("the reference source is unreachable")
        return list(self.published)


@dataclass
class ListedEvents:
    """Stripe's `/v1/events`: `events` filtered by type and `created`, newest first; `fail_after` raises then."""

    events: list[dict[str, Any]] = field(default_factory=list)
    fail_after: int | None = None  # events listed before the API stops answering (LookupUnavailable)
    calls: list[tuple[int, int]] = field(default_factory=list)

    def events_of(self, types: Sequence[str], gte: int, lt: int) -> list[dict[str, Any]]:
        found = [e for e in self.events if e["type"] in types and gte <= e["created"] < lt]
        return sorted(found, key=lambda e: e["created"], reverse=True)

    def list(self, types: Sequence[str], created_gte: int, created_lt: int) -> Iterator[dict[str, Any]]:
        self.calls.append((created_gte, created_lt))
        for position, event in enumerate(self.events_of(types, created_gte, created_lt)):
            if self.fail_after is not None and position >= self.fail_after:
                raise LookupUnavailable("StripeError: 503 (scripted)")
            yield copy.deepcopy(event)


class ScriptedStripeEvents:
    """The `StripeEvents` port over `ListedEvents`."""

    def __init__(self, listed: ListedEvents) -> None:
        self.listed = listed

    def events(
        self, types: Sequence[str], created_gte: int, created_lt: int, *, deadline: float | None = None
    ) -> Iterator[dict[str, Any]]:
        return self.listed.list(types, created_gte, created_lt)


@dataclass
class InMemoryCheckpoints:
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    puts: int = 0

    def get(self, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.values.get(name))

    def put(self, name: str, value: dict[str, Any]) -> None:
        self.puts += 1
        self.values[name] = copy.deepcopy(value)


@dataclass
class ScriptedLookups:
    """The providers' APIs (the `PurchaseLookups` port): documents by lookup, or a scripted failure for all."""

    documents: dict[Any, Any] = field(default_factory=dict)
    failure: Any = None  # a LookupFailed every lookup gets while set
    calls: list[list[Any]] = field(default_factory=list)

    def fetch(self, lookups: Sequence[Any]) -> dict[Any, Any]:
        self.calls.append(list(lookups))
        if self.failure is not None:
            return dict.fromkeys(lookups, self.failure)
        return {lookup: self.documents[lookup] for lookup in lookups if lookup in self.documents}
