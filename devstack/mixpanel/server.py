"""`MixpanelServer`: the local Mixpanel's lifecycle, its route table, the ingestion steps and its projects.

Each endpoint is one entry of the route table, a function from `Request` to `Reply`; the rooms it draws on
(auth, rules, spec check, faults, store, page) know nothing of each other's HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

from ..http_server import LocalServer
from . import page
from .auth import DEMO_CREDENTIALS, Credentials
from .bodies import Parsed, parse_engage, parse_import, parse_track
from .export import EXPORT_PATH, ExportEndpoint, ExportLimits
from .faults import FaultPlan, fault_reply
from .http_adapter import Handler
from .ingestion import ENGAGE, GROUPS, import_events, track_events, update
from .messages import Reply, Request
from .page import CATALOG_REVENUE_VIEW, RevenueView
from .projects import Project, project_db_path
from .rules import INGESTION_PATHS
from .spec import spec_checker
from .store import Store

Route = Callable[[Request], Reply]

_LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1"}


class MixpanelServer(LocalServer, Project):
    """A Mixpanel-compatible ingestion server on 127.0.0.1 (`/import`, `/engage`, `/groups`, and the browser SDK's
    `/track`), with SQLite storage and a page at `/`.

    It hosts the project of `credentials` (which it is: `server.events()` reads it) and those of `more_projects`
    (`server.project(project_id)`); a request lands in the project its credentials or tokens name, as on the real
    service. `latency_s` is added to every ingestion request; `dead_letters` (optional) returns the dead-letter
    queue's messages for the page; `validate_spec=False` skips the OpenAPI checks (benchmarks measuring the client).
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
        more_projects: Sequence[Credentials] = (),
        export_limits: ExportLimits | None = None,
        reconcile: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        LocalServer.__init__(self)
        if host not in _LOOPBACK_HOSTS:
            raise ValueError(f"host {host!r}: the local Mixpanel binds 127.0.0.1 only")
        if latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        ids = [c.project_id for c in (credentials, *more_projects)]
        if len(set(ids)) != len(ids):
            raise ValueError(f"every project needs its own project_id, got {ids}")
        self.host = _LOOPBACK_HOSTS[host]
        self.port = port
        self.db_path = str(db_path)
        self.latency_s = latency_s
        self.dead_letters = dead_letters
        self.faults = FaultPlan()
        Project.__init__(self, credentials, Store(self.db_path), revenue)
        self._projects: dict[str, Project] = {credentials.project_id: self}
        for more in more_projects:
            store = Store(project_db_path(self.db_path, more.project_id, first=False))
            self._projects[more.project_id] = Project(more, store, revenue)
        self.export_limits = export_limits or ExportLimits()  # Mixpanel's: 3 queries a second, 60 an hour
        # The page's reconcile panel: the last report shown, and how to run one (the local stack's tools).
        self.reconcile = reconcile
        self._reconcile_lock = threading.Lock()
        self._reconciled: dict[str, Any] | None = None
        self._spec = spec_checker() if validate_spec else None
        self._routes = self._route_table()

    # lifecycle

    def _handler_and_app(self) -> tuple[type[BaseHTTPRequestHandler], Any]:
        return Handler, self._dispatch

    # projects

    def project(self, project_id: str) -> Project:
        """One hosted project's data (the first one is this server itself)."""
        try:
            return self._projects[project_id]
        except KeyError:
            raise KeyError(f"no project {project_id!r}: this server hosts {sorted(self._projects)}") from None

    @property
    def projects(self) -> list[Project]:
        return list(self._projects.values())

    def show_reconcile(self, report: dict[str, Any]) -> None:
        """Put a reconcile report (`revenue-webhooks reconcile --json`) on the page."""
        with self._reconcile_lock:
            self._reconciled = {"at": time.time(), "report": report}

    def _reconcile_json(self, run: bool) -> dict[str, Any]:
        """`/api/reconcile`: the last report; POST runs one first (when the stack connected its tools)."""
        if run and self.reconcile is not None:
            try:
                self.show_reconcile(self.reconcile())
            except Exception as exc:  # the page says why instead of failing
                self.show_reconcile({"error": f"{type(exc).__name__}: {exc}"})
        with self._reconcile_lock:
            shown = dict(self._reconciled) if self._reconciled else {}
        return {"connected": self.reconcile is not None, **shown}

    def reset(self) -> None:
        """Forget everything: events, profiles, groups, requests, spec violations, faults and their counters."""
        for project in self._projects.values():
            project._store.reset()
        self.faults.reset()

    # request handling (called by the HTTP handler threads)

    def _route_table(self) -> dict[tuple[str, str], Route]:
        """Every endpoint by (method, path): Mixpanel's ingestion API, then the local page and the JSON it polls
        (`?project=<id>` chooses the project, the first one by default)."""
        routes: dict[tuple[str, str], Route] = {("POST", path): self._ingest for path in INGESTION_PATHS}
        routes.update({("GET", path): page.page_file for path in page.PAGE_PATHS})
        page_json: dict[str, Callable[[Project, dict[str, str]], Any]] = {
            "/api/events": lambda p, q: page.events_json(p._store.event_rows(), q, self.revenue_view),
            "/api/revenue": lambda p, _q: page.revenue_json(p.revenue()),
            "/api/mrr": lambda p, _q: p.mrr(),
            "/api/profiles": lambda p, _q: {"profiles": p._store.recently_updated_profiles()},
            "/api/groups": lambda p, _q: {"groups": p._store.recently_updated_groups()},
            "/api/dead-letters": lambda _p, _q: page.dead_letters_json(self.dead_letters),
            "/api/requests": lambda p, _q: {
                "requests": p.requests_log()[-50:][::-1],
                "violations": p.spec_violations(),
            },
            "/api/summary": lambda p, _q: self._summary(p),
        }
        routes.update({("GET", path): self._json_route(answer) for path, answer in page_json.items()})
        routes["GET", "/api/reconcile"] = lambda _request: Reply.json(200, self._reconcile_json(run=False))
        routes["POST", "/api/reconcile"] = lambda _request: Reply.json(200, self._reconcile_json(run=True))
        routes["GET", EXPORT_PATH] = ExportEndpoint(self.projects, self.export_limits)
        routes["GET", "/favicon.ico"] = lambda _request: Reply(204)
        return routes

    def _json_route(self, answer: Callable[[Project, dict[str, str]], Any]) -> Route:
        """A GET endpoint answering 200 with `answer(project, query)` as JSON."""

        def route(request: Request) -> Reply:
            chosen = self._projects.get(request.query.get("project") or "", self)
            return Reply.json(200, answer(chosen, request.query))

        return route

    def _dispatch(self, request: Request) -> Reply:
        if request.method == "POST" and request.path.endswith("/") and request.path.rstrip("/") in INGESTION_PATHS:
            request.path = request.path.rstrip("/")  # the browser SDK posts to `track/`, `engage/`, `groups/`
        route = self._routes.get((request.method, request.path))
        if route is not None:
            return route(request)
        if request.method == "GET":
            return Reply.json(404, {"error": f"no such page: {request.path}"})
        if request.path in INGESTION_PATHS:
            return Reply.json(405, {"error": f"{request.method} is not allowed on {request.path}", "status": 0})
        return Reply.json(404, {"error": f"no such endpoint: {request.method} {request.path}", "status": 0})

    def _ingest(self, request: Request) -> Reply:
        """The steps every ingestion request shares: latency, parse, the project, request log, auth, spec check,
        fault; then what the endpoint does."""
        started = time.monotonic()
        if self.latency_s:
            self._stopping.wait(self.latency_s)
        path = request.path
        parsed = self._parse(request)
        params = {**parsed.form, **request.query}
        project, auth = self._project_of(request, parsed)
        store = project._store
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = headers["authorization"].split(" ")[0] + " <redacted>"
        request_id = store.begin_request(request.method, path, request.query, headers, len(request.body))
        client_ip = _client_ip(request)
        if self._spec is not None:
            checks = {
                "/import": lambda: self._spec.check_import(request.query, request.headers, parsed, auth),
                "/engage": lambda: self._spec.check_engage(params, request.headers, parsed),
                "/groups": lambda: self._spec.check_groups(params, request.headers, parsed),
                "/track": lambda: self._spec.check_track(request.query, request.headers, parsed),
            }
            store.add_violations(request_id, path, checks[path]())

        strict = params.get("strict", "1") != "0"
        fault = self.faults.take(path)
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(fault.seconds)
        if fault is None or fault.kind == "reject" or (fault.kind == "slow" and fault.store):
            reject = fault if fault is not None and fault.kind == "reject" else None
            token = project.credentials.project_token
            if path == "/import":
                reply = import_events(parsed, auth, strict, store, request_id, reject, client_ip)
            elif path == "/groups":
                reply = update(GROUPS, parsed, params, auth, token, store, request_id, reject)
            elif path == "/track":
                reply = track_events(parsed, params, token, store, request_id, client_ip)
            else:
                reply = update(ENGAGE, parsed, params, auth, token, store, request_id, reject)
        elif fault.kind == "disconnect":
            reply = Reply(0, disconnect=True)
        else:
            status = fault.status if fault.kind == "http" else 503
            reply = fault_reply(status, path, strict)
        store.finish_request(
            request_id,
            uncompressed_bytes=parsed.uncompressed_bytes,
            records=len(parsed.records) if parsed.records is not None else None,
            auth=auth,
            status=reply.status or None,
            fault=fault.name if fault else None,
            response=reply.body.decode(errors="replace"),
            duration_ms=round((time.monotonic() - started) * 1000, 3),
            client_ip=client_ip,
        )
        return reply

    def _project_of(self, request: Request, parsed: Parsed) -> tuple[Project, str | None]:
        """The project a request is for, and how it authenticated (None: it did not).

        `/import` proves a project with its Basic credentials (and `project_id`); the other endpoints with Basic
        credentials when given, else with the project token in each record (`$token`, or `properties.token` on
        `/track`): the first record's token chooses the project, and records of another project fail its check.
        """
        authorization = request.headers.get("Authorization")
        if request.path == "/import":
            for project in self._projects.values():
                auth = project.credentials.authenticate(authorization, request.query.get("project_id"))
                if auth is not None:
                    return project, auth
            return self, None
        if authorization:
            for project in self._projects.values():
                auth = project.credentials.authenticate(authorization, None, engage=True)
                if auth is not None:
                    return project, auth
            return self, None
        token = _first_token(parsed.records)
        chosen = next((p for p in self._projects.values() if token and p.credentials.project_token == token), self)
        return chosen, "$token"

    # How bodies are decoded; a subclass may accept more (bench/services.py's SDK-compatible server does).

    def _parse(self, request: Request) -> Parsed:
        if request.path == "/import":
            return self._parse_import(request)
        if request.path == "/track":
            return parse_track(request)
        return self._parse_engage(request)

    def _parse_import(self, request: Request) -> Parsed:
        return parse_import(request)

    def _parse_engage(self, request: Request) -> Parsed:
        return parse_engage(request)

    def _summary(self, project: Project) -> dict[str, Any]:
        """`/api/summary`: the page header's figures, and the projects it can show."""
        return {
            "project_id": project.project_id,
            "projects": [p.project_id for p in self._projects.values()],
            **project._store.counts(),
            "faults_served": self.faults.served,
            "latency_s": self.latency_s,
        }


def _first_token(records: list[Any] | None) -> str:
    """The project token the first record carries (`$token` of a profile or group update, `token` of an event)."""
    first = records[0] if records else None
    if not isinstance(first, dict):
        return ""
    token = first.get("$token")
    if token is None and isinstance(first.get("properties"), dict):
        token = first["properties"].get("token")
    return token if isinstance(token, str) else ""


def _client_ip(request: Request) -> str | None:
    """The IP a request came from as Mixpanel reads it behind a proxy: X-Real-IP (the header Mixpanel's
    tracking-proxy sets), else the first X-Forwarded-For entry, else the connection's peer."""
    real = (request.headers.get("X-Real-IP") or "").strip()
    if real:
        return real
    forwarded = (request.headers.get("X-Forwarded-For") or "").split(",")[0].strip()
    return forwarded or request.client_ip or None
