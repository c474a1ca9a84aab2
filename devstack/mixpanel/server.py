"""`MixpanelServer`: the local Mixpanel's lifecycle, its route table, the ingestion steps and what it received.

Each endpoint is one entry of the route table, a function from `Request` to `Reply`; the rooms it draws on
(auth, rules, spec check, faults, store, page) know nothing of each other's HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from ..http_server import LocalServer
from . import page
from .auth import DEMO_CREDENTIALS, Credentials
from .bodies import Parsed, parse_engage, parse_import
from .faults import FaultPlan, fault_reply
from .http_adapter import Handler
from .ingestion import import_events, update_profiles
from .messages import Reply, Request
from .page import CATALOG_REVENUE_VIEW, RevenueView
from .rules import INGESTION_PATHS
from .spec import spec_checker
from .store import Store

Route = Callable[[Request], Reply]

_LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1"}


class MixpanelServer(LocalServer):
    """A Mixpanel-compatible `/import` + `/engage` server on 127.0.0.1, with SQLite storage and a page at `/`.

    `latency_s` is added to every ingestion request; `dead_letters` (optional) returns the dead-letter queue's
    messages for the page; `validate_spec=False` skips the OpenAPI checks (benchmarks measuring the client).
    """

    thread_name = "mixpanel"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: str = ":memory:",
        credentials: Credentials = DEMO_CREDENTIALS,
        latency_s: float = 0.0,
        dead_letters: Callable[[], list[dict[str, Any]]] | None = None,
        *,
        revenue: RevenueView = CATALOG_REVENUE_VIEW,
        validate_spec: bool = True,
    ) -> None:
        super().__init__()
        if host not in _LOOPBACK_HOSTS:
            raise ValueError(f"host {host!r}: the local Mixpanel binds 127.0.0.1 only")
        if latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        self.host = _LOOPBACK_HOSTS[host]
        self.port = port
        self.db_path = str(db_path)
        self.credentials = credentials
        self.latency_s = latency_s
        self.dead_letters = dead_letters
        self.revenue_view = revenue
        self.faults = FaultPlan()
        self._store = Store(self.db_path)
        self._spec = spec_checker() if validate_spec else None
        self._routes = self._route_table()

    # lifecycle

    def _handler_and_app(self) -> tuple[type[BaseHTTPRequestHandler], Any]:
        return Handler, self._dispatch

    # what was received

    def events(self, name: str | None = None, distinct_id: str | None = None) -> list[dict[str, Any]]:
        """Stored events as queries see them: deduplicated on (event, distinct_id, time, $insert_id), the most
        recently ingested copy kept, in ingestion order. Each is `{"event": ..., "properties": {...}}`."""
        return self._store.events(name, distinct_id)

    def raw_events(self, name: str | None = None, distinct_id: str | None = None) -> list[dict[str, Any]]:
        """Every event ingested, duplicates included, in order."""
        return self._store.events(name, distinct_id, deduplicated=False)

    def wait_for_events(self, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The deduplicated events once there are at least `count` (for pipelines that deliver asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.events()
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"expected {count} events within {timeout_s}s, got {len(found)}: {found}")
            with self._store.changed:
                self._store.changed.wait(min(remaining, 0.1))

    def profiles(self) -> dict[str, dict[str, Any]]:
        """{distinct_id: properties} after every profile update applied in order."""
        return self._store.profiles()

    def profile_updates(self) -> list[dict[str, Any]]:
        """Every profile update applied, in order (retries included)."""
        return self._store.profile_updates()

    def requests_log(self, path: str | None = None) -> list[dict[str, Any]]:
        """Each ingestion request received, in order: path, query, headers (Authorization redacted), records
        (events or updates parsed), body_bytes, uncompressed_bytes, auth, status answered, fault, response."""
        return self._store.requests(path)

    def spec_violations(self) -> list[dict[str, Any]]:
        """Every departure from Mixpanel's OpenAPI spec seen in received requests (tests assert it is empty)."""
        return self._store.spec_violations()

    def revenue(self) -> list[dict[str, Any]]:
        """Revenue per UTC day and currency from the deduplicated events: gross, refunds, net and event count."""
        return page.daily_revenue(self._store.event_rows(), self.revenue_view)

    def mrr(self) -> dict[str, Any]:
        """MRR per day and currency, and the day's MRR Change by movement (the page's MRR charts)."""
        return page.daily_mrr(self._store.event_rows(), self.revenue_view)

    def reset(self) -> None:
        """Forget everything: events, profiles, requests, spec violations, faults and their counters."""
        self._store.reset()
        self.faults.reset()

    # request handling (called by the HTTP handler threads)

    def _route_table(self) -> dict[tuple[str, str], Route]:
        """Every endpoint by (method, path): Mixpanel's ingestion API, then the local page and the JSON it polls."""
        routes: dict[tuple[str, str], Route] = {("POST", path): self._ingest for path in INGESTION_PATHS}
        routes.update({("GET", path): page.page_file for path in page.PAGE_PATHS})
        page_json: dict[str, Callable[[dict[str, str]], Any]] = {
            "/api/events": lambda q: page.events_json(self._store.event_rows(), q, self.revenue_view),
            "/api/revenue": lambda _q: page.revenue_json(self.revenue()),
            "/api/mrr": lambda _q: self.mrr(),
            "/api/profiles": lambda _q: {"profiles": self._store.recently_updated_profiles()},
            "/api/dead-letters": lambda _q: page.dead_letters_json(self.dead_letters),
            "/api/requests": lambda _q: {
                "requests": self.requests_log()[-50:][::-1],
                "violations": self.spec_violations(),
            },
            "/api/summary": lambda _q: self._summary(),
        }
        routes.update({("GET", path): _json_route(answer) for path, answer in page_json.items()})
        routes["GET", "/favicon.ico"] = lambda _request: Reply(204)
        return routes

    def _dispatch(self, request: Request) -> Reply:
        route = self._routes.get((request.method, request.path))
        if route is not None:
            return route(request)
        if request.method == "GET":
            return Reply.json(404, {"error": f"no such page: {request.path}"})
        if request.path in INGESTION_PATHS:
            return Reply.json(405, {"error": f"{request.method} is not allowed on {request.path}", "status": 0})
        return Reply.json(404, {"error": f"no such endpoint: {request.method} {request.path}", "status": 0})

    def _ingest(self, request: Request) -> Reply:
        """The steps every ingestion request shares: latency, request log, parse, auth, spec check, fault."""
        started = time.monotonic()
        if self.latency_s:
            self._stopping.wait(self.latency_s)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = headers["authorization"].split(" ")[0] + " <redacted>"
        request_id = self._store.begin_request(request.method, request.path, request.query, headers, len(request.body))
        is_import = request.path == "/import"
        parsed = self._parse_import(request) if is_import else self._parse_engage(request)
        params = {**parsed.form, **request.query}
        authorization = request.headers.get("Authorization")
        if is_import:
            auth = self.credentials.authenticate(authorization, request.query.get("project_id"))
        else:
            # Without Basic auth each record's $token authenticates it.
            auth = self.credentials.authenticate(authorization, None, engage=True) if authorization else "$token"
        if self._spec is not None:
            if is_import:
                found = self._spec.check_import(request.query, request.headers, parsed, auth)
            else:
                found = self._spec.check_engage(params, request.headers, parsed)
            self._store.add_violations(request_id, request.path, found)

        strict = params.get("strict", "1") != "0"
        fault = self.faults.take(request.path)
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(fault.seconds)
        if fault is None or fault.kind == "reject" or (fault.kind == "slow" and fault.store):
            reject = fault if fault is not None and fault.kind == "reject" else None
            if is_import:
                reply = import_events(parsed, auth, strict, self._store, request_id, reject)
            else:
                project_token = self.credentials.project_token
                reply = update_profiles(parsed, params, auth, project_token, self._store, request_id, reject)
        elif fault.kind == "disconnect":
            reply = Reply(0, disconnect=True)
        else:
            status = fault.status if fault.kind == "http" else 503
            reply = fault_reply(status, request.path, strict)
        self._store.finish_request(
            request_id,
            uncompressed_bytes=parsed.uncompressed_bytes,
            records=len(parsed.records) if parsed.records is not None else None,
            auth=auth,
            status=reply.status or None,
            fault=fault.name if fault else None,
            response=reply.body.decode(errors="replace"),
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        )
        return reply

    # How bodies are decoded; a subclass may accept more (bench/services.py's SDK-compatible server does).

    def _parse_import(self, request: Request) -> Parsed:
        return parse_import(request)

    def _parse_engage(self, request: Request) -> Parsed:
        return parse_engage(request)

    def _summary(self) -> dict[str, Any]:
        """`/api/summary`: the page header's figures."""
        return {
            "project_id": self.credentials.project_id,
            **self._store.counts(),
            "faults_served": self.faults.served,
            "latency_s": self.latency_s,
        }


def _json_route(answer: Callable[[dict[str, str]], Any]) -> Route:
    """A GET endpoint answering 200 with `answer(query)` as JSON."""
    return lambda request: Reply.json(200, answer(request.query))
