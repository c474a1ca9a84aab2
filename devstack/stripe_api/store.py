"""The account's objects with their history, its events, and Stripe's list semantics over them.

Stripe lists newest first (by `created`; objects created in the same second keep their creation order), pages
with `starting_after` (older than the cursor) and `ending_before` (newer than it), and says `has_more`.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .shapes import Record


@dataclass(frozen=True)
class Event:
    """One Stripe event: the snapshot `/v1/events` lists and a webhook delivers (same id, same bytes)."""

    id: str
    type: str
    created: int
    api_version: str
    livemode: bool
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None
    pending_webhooks: int = 1

    @property
    def object_id(self) -> str:
        return str(self.object["id"])

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"object": copy.deepcopy(self.object)}
        if self.previous_attributes is not None:
            data["previous_attributes"] = copy.deepcopy(self.previous_attributes)
        return {
            "id": self.id,
            "object": "event",
            "api_version": self.api_version,
            "created": self.created,
            "data": data,
            "livemode": self.livemode,
            "pending_webhooks": self.pending_webhooks,
            "request": {"id": None, "idempotency_key": None},
            "type": self.type,
        }

    def body(self) -> bytes:
        """The webhook body: sign these exact bytes."""
        return json.dumps(self.payload(), separators=(",", ":")).encode()


@dataclass
class _Entry:
    seq: int
    versions: list[tuple[int, Record]] = field(default_factory=list)  # (time of the change, record)

    @property
    def record(self) -> Record:
        return self.versions[-1][1]


class Store:
    """Records by id, each with every version it had; events in creation order. Safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._events: list[Event] = []
        self._seq = 0
        self._changes = 0  # every put: what the sorted lists below were made at
        self._sorted: dict[str, tuple[int, list[Record]]] = {}

    def put(self, record: Record, at: int) -> Record:
        """Store a new version of `record` (a copy), changed at `at`."""
        snapshot = copy.deepcopy(record)
        with self._lock:
            entry = self._entries.get(record["id"])
            if entry is None:
                self._seq += 1
                entry = self._entries[record["id"]] = _Entry(self._seq)
            entry.versions.append((at, snapshot))
            self._changes += 1
        return snapshot

    def get(self, object_id: str) -> Record | None:
        with self._lock:
            entry = self._entries.get(object_id)
            return copy.deepcopy(entry.record) if entry else None

    def peek(self, object_id: str) -> Record | None:
        """The stored record itself, for readers that only look (render copies what it uses); never change it."""
        with self._lock:
            entry = self._entries.get(object_id)
            return entry.record if entry else None

    def history(self, object_id: str) -> list[tuple[int, Record]]:
        """Every version of the object: (when it changed, the record then), oldest first."""
        with self._lock:
            entry = self._entries.get(object_id)
            return copy.deepcopy(entry.versions) if entry else []

    def objects(self, kind: str, *, copies: bool = True) -> list[Record]:
        """The current version of every object of `kind`, newest first (Stripe's list order).

        `copies=False` returns the stored records themselves, for readers that only look (a list request
        filters thousands and renders a page); a stored version is never changed, only replaced.
        """
        with self._lock:
            made, records = self._sorted.get(kind, (-1, []))
            if made != self._changes:  # the list is made again after any change, once per kind
                entries = [e for e in self._entries.values() if e.record["object"] == kind]
                entries.sort(key=lambda e: (e.record["created"], e.seq), reverse=True)
                records = [e.record for e in entries]
                self._sorted[kind] = (self._changes, records)
        return [copy.deepcopy(record) for record in records] if copies else list(records)

    def add_event(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def events(self) -> list[Event]:
        """Every event, newest first (Stripe's list order)."""
        with self._lock:
            indexed = list(enumerate(self._events))
        indexed.sort(key=lambda pair: (pair[1].created, pair[0]), reverse=True)
        return [event for _, event in indexed]

    def event(self, event_id: str) -> Event | None:
        with self._lock:
            return next((e for e in self._events if e.id == event_id), None)

    def count(self) -> int:
        with self._lock:
            return len(self._entries)


class UnknownCursor(LookupError):
    """`starting_after`/`ending_before` names no object of the listed kind."""

    def __init__(self, param: str, object_id: str) -> None:
        super().__init__(object_id)
        self.param = param
        self.object_id = object_id


def page(
    items: list[Any],
    ids: Callable[[Any], str],
    *,
    limit: int,
    starting_after: str | None = None,
    ending_before: str | None = None,
    universe: Iterable[Any] | None = None,
) -> tuple[list[Any], bool]:
    """One page of `items` (already filtered, newest first) and whether more follow in that direction.

    A cursor is looked up in `universe` (the unfiltered list in the same order, default `items`), since a
    client may page from an object that the filters exclude.
    """
    order = list(universe) if universe is not None else items
    position = {ids(item): index for index, item in enumerate(order)}
    rank = [position[ids(item)] for item in items]
    if starting_after is not None:
        if starting_after not in position:
            raise UnknownCursor("starting_after", starting_after)
        after = position[starting_after]
        later = [item for item, r in zip(items, rank, strict=True) if r > after]
        return later[:limit], len(later) > limit
    if ending_before is not None:
        if ending_before not in position:
            raise UnknownCursor("ending_before", ending_before)
        before = position[ending_before]
        earlier = [item for item, r in zip(items, rank, strict=True) if r < before]
        return earlier[-limit:], len(earlier) > limit
    return items[:limit], len(items) > limit
