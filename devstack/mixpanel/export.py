"""`GET /api/2.0/export`: Mixpanel's Raw Event Export API over what this server stored.

As Mixpanel documents it (reference/raw-event-export, docs/export-methods, and the OpenAPI spec beside this
file, `export.openapi.yaml`, a verbatim copy): service-account Basic auth with `project_id`; `from_date` and
`to_date` inclusive days, read as UTC (projects created since 2023); `event` a JSON array of names; `limit` up
to 100000; `time_in_ms`; the answer NDJSON, one raw event per line, gzip-compressed when asked and longer than
1400 bytes; raw, so NOT deduplicated ("deduplication is not applied to raw data exports"); 60 queries an hour,
3 a second and 100 at once, else 429. `where` expressions are not evaluated here (a 400 says so). Each
request is checked against the spec; departures are recorded as spec violations like ingestion's.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from .messages import Reply, Request
from .projects import Project
from .spec import check_parameters
from .store import Store

EXPORT_PATH = "/api/2.0/export"
EXPORT_SPEC_PATH = Path(__file__).with_name("export.openapi.yaml")
MAX_LIMIT = 100_000
GZIP_ABOVE_BYTES = 1400
PER_SECOND, PER_HOUR, CONCURRENT = 3, 60, 100
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@functools.cache
def export_operation(spec_path: Path = EXPORT_SPEC_PATH) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(spec_path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    operation: dict[str, Any] = spec["paths"]["/export"]["get"]
    return operation


class ExportLimits:
    """Mixpanel's export rate limits: per second, per hour and in flight at once."""

    def __init__(self, per_second: int = PER_SECOND, per_hour: int = PER_HOUR, concurrent: int = CONCURRENT) -> None:
        self.per_second, self.per_hour, self.concurrent = per_second, per_hour, concurrent
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self._running = 0

    def enter(self) -> str | None:
        """Admit a query (None), or say which limit it exceeds."""
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0] <= now - 3600:
                self._recent.popleft()
            last_second = sum(1 for t in self._recent if t > now - 1)
            if last_second >= self.per_second:
                return f"rate limit exceeded: {self.per_second} queries per second"
            if len(self._recent) >= self.per_hour:
                return f"rate limit exceeded: {self.per_hour} queries per hour"
            if self._running >= self.concurrent:
                return f"rate limit exceeded: {self.concurrent} concurrent queries"
            self._recent.append(now)
            self._running += 1
            return None

    def leave(self) -> None:
        with self._lock:
            self._running -= 1


class ExportEndpoint:
    """The export route of a local Mixpanel: the project the service account and `project_id` name, the spec
    check, the limits (one set for the server, as Mixpanel's are per project), then that project's raw events."""

    def __init__(self, projects: Sequence[Project], limits: ExportLimits | None = None) -> None:
        self.projects = list(projects)
        self.limits = limits or ExportLimits()
        self.operation = export_operation()

    def __call__(self, request: Request) -> Reply:
        authorization, project_id = request.headers.get("Authorization"), request.query.get("project_id")
        project = next(
            (p for p in self.projects if p.credentials.authenticate(authorization, project_id) == "service_account"),
            None,
        )
        store = (project or self.projects[0])._store
        request_id = store.begin_request(request.method, request.path, request.query, _headers(request), 0)
        found = [
            (self.operation["operationId"], where, message)
            for where, message in check_parameters(self.operation, request.query, request.headers)
        ]
        store.add_violations(request_id, request.path, found)
        if project is None:
            reply = Reply.json(401, {"error": "Invalid service account credentials (project_id, username, secret)"})
        elif (refusal := self.limits.enter()) is not None:
            reply = Reply.json(429, {"error": refusal})
        else:
            try:
                reply = self._export(request, store)
            finally:
                self.limits.leave()
        store.finish_request(
            request_id,
            auth="service_account" if project else None,
            status=reply.status,
            response=reply.body[:200].decode(errors="replace"),
        )
        return reply

    def _export(self, request: Request, store: Store) -> Reply:
        query = request.query
        try:
            start, end = _day(query, "from_date"), _day(query, "to_date") + timedelta(days=1)
            names = _names(query.get("event"))
            limit = int(query.get("limit") or MAX_LIMIT)
        except ValueError as error:
            return Reply.json(400, {"error": str(error)})
        if start >= end:
            return Reply.json(400, {"error": "from_date must not be after to_date"})
        if not 1 <= limit <= MAX_LIMIT:
            return Reply.json(400, {"error": f"limit must be between 1 and {MAX_LIMIT}"})
        if query.get("where"):
            return Reply.json(400, {"error": "the local Mixpanel does not evaluate `where` expressions"})
        in_ms = query.get("time_in_ms", "false").lower() == "true"
        rows = store.raw_between(int(start.timestamp() * 1000), int(end.timestamp() * 1000), names, limit)
        lines = []
        for row in rows:
            properties = json.loads(row["properties"])
            properties["time"] = row["time_ms"] if in_ms else row["time_ms"] // 1000
            properties["mp_processing_time_ms"] = int(row["received_at"] * 1000)
            lines.append(json.dumps({"event": row["event"], "properties": properties}, separators=(",", ":")))
        body = ("\n".join(lines) + "\n").encode() if lines else b""
        headers = {}
        if "gzip" in (request.headers.get("Accept-Encoding") or "") and len(body) > GZIP_ABOVE_BYTES:
            body, headers = gzip.compress(body), {"Content-Encoding": "gzip"}
        return Reply(200, body, "text/plain; charset=utf-8", extra_headers=headers)


def _day(query: dict[str, str], name: str) -> datetime:
    value = query.get(name, "")
    if not _DATE.fullmatch(value):
        raise ValueError(f"{name} must be a date in yyyy-mm-dd format, got {value!r}")
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _names(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError('event must be a JSON array of event names, e.g. ["Purchase Completed"]')
    return names


def _headers(request: Request) -> dict[str, str]:
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "authorization" in headers:
        headers["authorization"] = headers["authorization"].split(" ")[0] + " <redacted>"
    return headers
