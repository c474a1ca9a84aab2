"""What the local Mixpanel received, in SQLite: requests, events, profiles and their updates, spec violations.

A file keeps what arrived across restarts (`make dev`); `:memory:` serves the tests. The SQL lives here only:
the server's read API and the page ask for rows or JSON, never run queries of their own.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import Any

from .rules import ENGAGE_OPERATIONS, GROUP_OPERATIONS, apply_profile_update, compact_json, event_time_ms

_SCHEMA_VERSION = 2
# Version 1 files gain what version 2 added: the IP Mixpanel would geolocate, and group profiles.
_MIGRATIONS = {
    1: """
ALTER TABLE requests ADD COLUMN client_ip TEXT;
ALTER TABLE events ADD COLUMN geo_ip TEXT;
""",
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
    query TEXT NOT NULL, headers TEXT NOT NULL, body_bytes INTEGER NOT NULL, uncompressed_bytes INTEGER,
    records INTEGER, auth TEXT, status INTEGER, fault TEXT, response TEXT, duration_ms REAL, client_ip TEXT);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL, received_at REAL NOT NULL,
    event TEXT NOT NULL, distinct_id TEXT NOT NULL, time_ms INTEGER NOT NULL, insert_id TEXT NOT NULL,
    properties TEXT NOT NULL, geo_ip TEXT);
CREATE INDEX IF NOT EXISTS events_dedup ON events (event, distinct_id, time_ms, insert_id);
CREATE TABLE IF NOT EXISTS profiles (
    distinct_id TEXT PRIMARY KEY, properties TEXT NOT NULL, last_seen REAL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS profile_updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL, received_at REAL NOT NULL,
    distinct_id TEXT NOT NULL, operation TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS group_profiles (
    group_key TEXT NOT NULL, group_id TEXT NOT NULL, properties TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (group_key, group_id));
CREATE TABLE IF NOT EXISTS group_updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL, received_at REAL NOT NULL,
    group_key TEXT NOT NULL, group_id TEXT NOT NULL, operation TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spec_violations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL, path TEXT NOT NULL,
    operation TEXT NOT NULL, location TEXT NOT NULL, message TEXT NOT NULL);
"""
_DEDUPED_EVENTS = """
SELECT seq, received_at, event, distinct_id, time_ms, insert_id, properties FROM events
WHERE seq IN (SELECT MAX(seq) FROM events GROUP BY event, distinct_id, time_ms, insert_id) ORDER BY seq
"""
_COUNT_DEDUPED_EVENTS = """
SELECT count(*) AS n FROM (SELECT 1 FROM events GROUP BY event, distinct_id, time_ms, insert_id)
"""
_RAW_EVENTS = "SELECT seq, received_at, event, distinct_id, time_ms, insert_id, properties FROM events ORDER BY seq"


class Store:
    """SQLite behind one lock: one connection shared by the handler threads, so writes never interleave."""

    def __init__(self, db_path: str) -> None:
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._db = sqlite3.connect(db_path, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        with self._lock, self._db:
            if db_path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            has_tables = self._db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'events'").fetchone()[0]
            if has_tables and version in _MIGRATIONS:
                self._db.executescript(_MIGRATIONS[version])
            elif has_tables and version != _SCHEMA_VERSION:
                raise RuntimeError(f"{db_path}: schema version {version}, expected {_SCHEMA_VERSION}; delete the file")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def begin_request(
        self, method: str, path: str, query: Mapping[str, str], headers: dict[str, str], size: int
    ) -> int:
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO requests (received_at, method, path, query, headers, body_bytes) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), method, path, json.dumps(dict(query)), json.dumps(headers), size),
            )
            return int(cursor.lastrowid or 0)

    def finish_request(self, request_id: int, **columns: Any) -> None:
        allowed = {"uncompressed_bytes", "records", "auth", "status", "fault", "response", "duration_ms", "client_ip"}
        names = sorted(set(columns) & allowed)
        assignments = ", ".join(f"{name} = ?" for name in names)
        with self._lock, self._db:
            self._db.execute(
                f"UPDATE requests SET {assignments} WHERE id = ?",  # noqa: S608 - names from the allow-list above
                [*(columns[name] for name in names), request_id],
            )

    def add_violations(self, request_id: int, path: str, violations: list[tuple[str, str, str]]) -> None:
        if not violations:
            return
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO spec_violations (request_id, path, operation, location, message) VALUES (?, ?, ?, ?, ?)",
                [(request_id, path, op, where, message) for op, where, message in violations],
            )

    def add_events(
        self, request_id: int, events: list[dict[str, Any]], geo_ips: list[str | None] | None = None
    ) -> None:
        """Store events; `geo_ips` is the IP Mixpanel would geolocate for each (kept beside, never a property)."""
        now = time.time()
        rows = [
            (
                request_id,
                now,
                e["event"],
                str(e["properties"].get("distinct_id", "")),
                event_time_ms(e["properties"].get("time", now)),
                str(e["properties"].get("$insert_id", "")),
                compact_json(e["properties"]),
                geo_ip,
            )
            for e, geo_ip in zip(events, geo_ips or [None] * len(events), strict=True)
        ]
        with self.changed, self._db:
            self._db.executemany(
                "INSERT INTO events (request_id, received_at, event, distinct_id, time_ms, insert_id, properties,"
                " geo_ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.changed.notify_all()

    def apply_profile_updates(self, request_id: int, records: list[dict[str, Any]]) -> None:
        now = time.time()
        with self.changed, self._db:
            for record in records:
                distinct_id = record["$distinct_id"]
                operation = next(op for op in ENGAGE_OPERATIONS if op in record)
                row = self._db.execute(
                    "SELECT properties, last_seen FROM profiles WHERE distinct_id = ?", (distinct_id,)
                ).fetchone()
                current = json.loads(row["properties"]) if row else None
                updated = apply_profile_update(current, record)
                self._db.execute(
                    "INSERT INTO profile_updates (request_id, received_at, distinct_id, operation, record)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (request_id, now, distinct_id, operation, compact_json(record)),
                )
                if updated is None:
                    self._db.execute("DELETE FROM profiles WHERE distinct_id = ?", (distinct_id,))
                    continue
                # "$ignore_time": true skips updating $last_seen (docs: default-properties).
                ignore_time = record.get("$ignore_time") is True
                last_seen = (row["last_seen"] if row else None) if ignore_time else now
                self._db.execute(
                    "INSERT INTO profiles (distinct_id, properties, last_seen, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (distinct_id) DO UPDATE SET properties = excluded.properties,"
                    " last_seen = excluded.last_seen, updated_at = excluded.updated_at",
                    (distinct_id, compact_json(updated), last_seen, now),
                )
            self.changed.notify_all()

    def apply_group_updates(self, request_id: int, records: list[dict[str, Any]]) -> None:
        """Group profile updates in order, with the profile operations' meaning (`$add`/`$append` never reach here)."""
        now = time.time()
        with self.changed, self._db:
            for record in records:
                key = (record["$group_key"], record["$group_id"])
                operation = next(op for op in GROUP_OPERATIONS if op in record)
                row = self._db.execute(
                    "SELECT properties FROM group_profiles WHERE group_key = ? AND group_id = ?", key
                ).fetchone()
                updated = apply_profile_update(json.loads(row["properties"]) if row else None, record)
                self._db.execute(
                    "INSERT INTO group_updates (request_id, received_at, group_key, group_id, operation, record)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (request_id, now, *key, operation, compact_json(record)),
                )
                if updated is None:
                    self._db.execute("DELETE FROM group_profiles WHERE group_key = ? AND group_id = ?", key)
                    continue
                self._db.execute(
                    "INSERT INTO group_profiles (group_key, group_id, properties, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (group_key, group_id) DO UPDATE SET properties = excluded.properties,"
                    " updated_at = excluded.updated_at",
                    (*key, compact_json(updated), now),
                )
            self.changed.notify_all()

    # what was received, for the server's read API and the page

    def event_rows(self, *, deduplicated: bool = True) -> list[sqlite3.Row]:
        """Stored events in ingestion order; `deduplicated` as queries see them (the latest copy of each key)."""
        return self._query(_DEDUPED_EVENTS if deduplicated else _RAW_EVENTS)

    def events(
        self, name: str | None = None, distinct_id: str | None = None, *, deduplicated: bool = True
    ) -> list[dict[str, Any]]:
        rows = self.event_rows(deduplicated=deduplicated)
        return [event_json(r) for r in rows if _matches(r, name, distinct_id)]

    def raw_between(
        self, start_ms: int, end_ms: int, names: list[str] | None = None, limit: int | None = None
    ) -> list[sqlite3.Row]:
        """Every stored event (duplicates included) with start_ms <= time < end_ms, in time order: the export's."""
        sql = "SELECT * FROM events WHERE time_ms >= ? AND time_ms < ?"
        params: list[Any] = [start_ms, end_ms]
        if names is not None:
            sql += f" AND event IN ({', '.join('?' for _ in names)})"
            params += names
        sql += " ORDER BY time_ms, seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def profiles(self) -> dict[str, dict[str, Any]]:
        rows = self._query("SELECT distinct_id, properties FROM profiles ORDER BY distinct_id")
        return {r["distinct_id"]: json.loads(r["properties"]) for r in rows}

    def recently_updated_profiles(self) -> list[dict[str, Any]]:
        """Profiles with when they were last seen and updated, the most recently updated first."""
        rows = self._query("SELECT * FROM profiles ORDER BY updated_at DESC")
        return [
            {
                "distinct_id": r["distinct_id"],
                "properties": json.loads(r["properties"]),
                "last_seen": r["last_seen"],
                "updated_at": r["updated_at"],
            }
            for r in rows
        ]

    def groups(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._query("SELECT group_key, group_id, properties FROM group_profiles ORDER BY group_key, group_id")
        return {(r["group_key"], r["group_id"]): json.loads(r["properties"]) for r in rows}

    def recently_updated_groups(self) -> list[dict[str, Any]]:
        """Group profiles with when they were last updated, the most recently updated first."""
        rows = self._query("SELECT * FROM group_profiles ORDER BY updated_at DESC")
        return [
            {
                "group_key": r["group_key"],
                "group_id": r["group_id"],
                "properties": json.loads(r["properties"]),
                "updated_at": r["updated_at"],
            }
            for r in rows
        ]

    def group_updates(self) -> list[dict[str, Any]]:
        return [json.loads(r["record"]) for r in self._query("SELECT record FROM group_updates ORDER BY seq")]

    def geolocated(self) -> list[dict[str, Any]]:
        """Per stored event (in order): its name, distinct_id, $insert_id and the IP Mixpanel would geolocate."""
        rows = self._query("SELECT event, distinct_id, insert_id, geo_ip FROM events ORDER BY seq")
        return [dict(r) for r in rows]

    def profile_updates(self) -> list[dict[str, Any]]:
        return [json.loads(r["record"]) for r in self._query("SELECT record FROM profile_updates ORDER BY seq")]

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM requests ORDER BY id")
        return [_request_json(r) for r in rows if path is None or r["path"] == path]

    def spec_violations(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM spec_violations ORDER BY id")
        return [
            {
                "request_id": r["request_id"],
                "path": r["path"],
                "operation": r["operation"],
                "where": r["location"],
                "message": r["message"],
            }
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        """How many events (deduplicated and as ingested), profiles, requests and spec violations are stored."""
        return {
            "events": self._query(_COUNT_DEDUPED_EVENTS)[0]["n"],
            "raw_events": self._query("SELECT count(*) AS n FROM events")[0]["n"],
            "profiles": self._query("SELECT count(*) AS n FROM profiles")[0]["n"],
            "groups": self._query("SELECT count(*) AS n FROM group_profiles")[0]["n"],
            "requests": self._query("SELECT count(*) AS n FROM requests")[0]["n"],
            "spec_violations": self._query("SELECT count(*) AS n FROM spec_violations")[0]["n"],
        }

    def _query(self, sql: str) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql).fetchall()

    def reset(self) -> None:
        with self._lock, self._db:
            for table in (
                "requests",
                "events",
                "profiles",
                "profile_updates",
                "group_profiles",
                "group_updates",
                "spec_violations",
            ):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    def close(self) -> None:
        with self._lock:
            self._db.close()


def event_json(row: sqlite3.Row) -> dict[str, Any]:
    return {"event": row["event"], "properties": json.loads(row["properties"])}


def _matches(row: sqlite3.Row, name: str | None, distinct_id: str | None) -> bool:
    return (name is None or row["event"] == name) and (distinct_id is None or row["distinct_id"] == distinct_id)


def _request_json(row: sqlite3.Row) -> dict[str, Any]:
    response: Any = row["response"]
    with contextlib.suppress(TypeError, ValueError):
        response = json.loads(response)
    return {
        "id": row["id"],
        "received_at": row["received_at"],
        "method": row["method"],
        "path": row["path"],
        "query": json.loads(row["query"]),
        "headers": json.loads(row["headers"]),
        "body_bytes": row["body_bytes"],
        "uncompressed_bytes": row["uncompressed_bytes"],
        "records": row["records"],
        "auth": row["auth"],
        "status": row["status"],
        "fault": row["fault"],
        "response": response,
        "duration_ms": row["duration_ms"],
        "client_ip": row["client_ip"],
    }
