"""The local Stripe API: Stripe's read endpoints over HTTP on 127.0.0.1, for the `stripe` library to call.

    account = StripeAccount(seed=1)
    ...  # write the history
    with StripeApiServer(account) as api:
        client = stripe.StripeClient(api.secret_key, base_addresses={"api": api.url})

What it serves, as Stripe does: `GET /v1/<resource>` lists (newest first; `limit`, `starting_after`,
`ending_before`, `has_more`; `created` as a number or `gt/gte/lt/lte`; each resource's filters) and
`GET /v1/<resource>/<id>`, rendered in the request's `Stripe-Version` (else the account's); `expand`;
`/v1/events` keeps 30 days; API keys (secret or restricted, test or live: each mode is its own account);
Stripe's error shapes; a read rate limit per mode (100/s live, 25/s test) answering Stripe's 429.
It is read-only: history is written through `StripeAccount`, not through the API.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..http_server import LocalServer
from .account import StripeAccount
from .faults import RATE_LIMIT_ERROR, FaultPlan
from .shapes import invoice_payments, render
from .spec import SpecChecker, Violation, spec_checker
from .store import UnknownCursor, page
from .versions import valid

log = logging.getLogger(__name__)

EVENT_RETENTION_S = 30 * 86400  # "List events, going back up to 30 days"
READ_LIMITS = {"live": 100, "test": 25}  # read requests per second (Stripe's documented global limits)
MAX_EXPAND_DEPTH = 4
_LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1"}


@dataclass(frozen=True)
class ApiKey:
    """A secret (`sk_`) or restricted (`rk_`) key; a restricted one reads only `resources` ("charges", ...)."""

    secret: str
    resources: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"(sk|rk)_(test|live)_\w+", self.secret):
            raise ValueError("an API key looks like sk_test_..., sk_live_..., rk_test_... or rk_live_...")
        if self.secret.startswith("rk_") and self.resources is None:
            raise ValueError("a restricted key names the resources it may read")

    @property
    def livemode(self) -> bool:
        return self.secret[3:7] == "live"

    @property
    def mode(self) -> str:
        return "live" if self.livemode else "test"

    def masked(self) -> str:
        """How Stripe quotes a key in an error: the prefix and the last four characters."""
        prefix = self.secret[:8]
        return f"{prefix}{'*' * max(len(self.secret) - 12, 4)}{self.secret[-4:]}"


@dataclass(frozen=True)
class Resource:
    """One list/retrieve resource: its URL, object type, the spec's path templates and the list filters."""

    path: str
    kind: str
    list_spec: str | None
    item_spec: str
    filters: tuple[str, ...]
    unsupported: tuple[str, ...] = ()

    @property
    def read_permission(self) -> str:
        """The resource a restricted key must be allowed to read ("charges", "checkout_sessions", ...)."""
        return self.path.removeprefix("/v1/").replace("/", "_")


_COMMON = ("created", "limit", "starting_after", "ending_before", "expand")
RESOURCES: tuple[Resource, ...] = (
    Resource("/v1/balance_transactions", "balance_transaction", None, "/v1/balance_transactions/{id}", ()),
    Resource(
        "/v1/charges",
        "charge",
        "/v1/charges",
        "/v1/charges/{charge}",
        (*_COMMON, "customer", "payment_intent"),
        ("transfer_group",),
    ),
    Resource(
        "/v1/checkout/sessions",
        "checkout.session",
        "/v1/checkout/sessions",
        "/v1/checkout/sessions/{session}",
        (*_COMMON, "customer", "payment_intent", "status", "subscription"),
        ("customer_account", "customer_details", "payment_link"),
    ),
    Resource(
        "/v1/customers", "customer", "/v1/customers", "/v1/customers/{customer}", (*_COMMON, "email"), ("test_clock",)
    ),
    Resource(
        "/v1/events", "event", "/v1/events", "/v1/events/{id}", (*_COMMON, "type", "types"), ("delivery_success",)
    ),
    Resource(
        "/v1/invoices",
        "invoice",
        "/v1/invoices",
        "/v1/invoices/{invoice}",
        (*_COMMON, "collection_method", "customer", "status", "subscription"),
        ("customer_account", "due_date"),
    ),
    Resource(
        "/v1/payment_intents",
        "payment_intent",
        "/v1/payment_intents",
        "/v1/payment_intents/{intent}",
        (*_COMMON, "customer"),
        ("customer_account",),
    ),
    Resource("/v1/refunds", "refund", "/v1/refunds", "/v1/refunds/{refund}", (*_COMMON, "charge", "payment_intent")),
    Resource(
        "/v1/subscriptions",
        "subscription",
        "/v1/subscriptions",
        "/v1/subscriptions/{subscription_exposed_id}",
        (*_COMMON, "customer", "price", "status"),
        (
            "automatic_tax",
            "collection_method",
            "current_period_end",
            "current_period_start",
            "customer_account",
            "plan",
            "test_clock",
        ),
    ),
)
_INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
_SUBSCRIPTION_STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
_SESSION_STATUSES = ("complete", "expired", "open")


class ApiError(Exception):
    """An answer in Stripe's error shape: `{"error": {"type", "message", "code"?, "param"?}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, str] = {"type": type_, "message": message}
        if code:
            self.error["code"] = code
        if param:
            self.error["param"] = param
        self.headers = dict(headers or {})


def _missing(kind: str, object_id: str, param: str = "id") -> ApiError:
    return ApiError(404, f"No such {kind.replace('.', '_')}: '{object_id}'", code="resource_missing", param=param)


def parse_query(query: str) -> dict[str, Any]:
    """Stripe's form encoding: `created[gte]=1`, `types[]=a` or `types[0]=a`, `expand[0]=data.customer`."""
    params: dict[str, Any] = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=True):
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", raw_key)
        if match is None:
            raise ApiError(400, f"Invalid parameter name: {raw_key}")
        name, rest = match.group(1), re.findall(r"\[([^\]]*)\]", match.group(2))
        if not rest:
            params[name] = value
        elif len(rest) == 1 and (rest[0] == "" or rest[0].isdigit()):
            existing = params.setdefault(name, [])
            if not isinstance(existing, list):
                raise ApiError(400, f"Invalid array: {name}", param=name)
            existing.append(value)
        elif len(rest) == 1:
            existing = params.setdefault(name, {})
            if not isinstance(existing, dict):
                raise ApiError(400, f"Invalid hash: {name}", param=name)
            existing[rest[0]] = value
        else:
            raise ApiError(400, f"Invalid parameter: {raw_key} (nested deeper than this stand-in reads)", param=name)
    return params


def _integer(value: Any, param: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise ApiError(400, f"Invalid integer: {value}", param=param)
    return int(value)


def _created_filter(value: Any) -> Callable[[int], bool]:
    if isinstance(value, str):
        exact = _integer(value, "created")
        return lambda created: created == exact
    if not isinstance(value, dict) or not value or set(value) - {"gt", "gte", "lt", "lte"}:
        raise ApiError(400, "Invalid created: expected an integer or a hash of gt, gte, lt, lte", param="created")
    bounds = {op: _integer(v, f"created[{op}]") for op, v in value.items()}
    checks = {
        "gt": lambda c, b: c > b,
        "gte": lambda c, b: c >= b,
        "lt": lambda c, b: c < b,
        "lte": lambda c, b: c <= b,
    }
    return lambda created: all(checks[op](created, bound) for op, bound in bounds.items())


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    disconnect: bool = False


class StripeApiServer(LocalServer):
    """A Stripe-compatible read API on 127.0.0.1 over one account per mode (test, and optionally live).

    `keys`: the API keys it accepts (default: one generated test secret key, `secret_key`). `latency_s` is
    added to every request and `list_latency_s` to every list request (the benchmark's 300 ms).
    `read_limits`: requests per second per mode before Stripe's 429 (None: unlimited). `validate_spec`: check
    every answer against Stripe's spec (`spec_violations()`). `now`: the clock of `/v1/events`' 30 days.
    """

    thread_name = "stripe-api"

    def __init__(
        self,
        test: StripeAccount | None = None,
        live: StripeAccount | None = None,
        *,
        keys: tuple[ApiKey, ...] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        list_latency_s: float = 0.0,
        read_limits: Mapping[str, int] | None = READ_LIMITS,
        validate_spec: bool = False,
        spec: SpecChecker | None = None,
        now: Callable[[], float] = time.time,
        event_retention_s: int = EVENT_RETENTION_S,
    ) -> None:
        super().__init__()
        if host not in _LOOPBACK_HOSTS:
            raise ValueError(f"host {host!r}: the local Stripe API binds 127.0.0.1 only")
        if latency_s < 0 or list_latency_s < 0:
            raise ValueError("latencies must be >= 0")
        self.accounts = {"test": test or StripeAccount(), "live": live or StripeAccount(livemode=True)}
        if self.accounts["test"].livemode or not self.accounts["live"].livemode:
            raise ValueError("the test account must be in test mode and the live one in live mode")
        self.keys = keys if keys is not None else (ApiKey("sk_test_" + secrets.token_hex(12)),)
        self.host, self.port = _LOOPBACK_HOSTS[host], port
        self.latency_s, self.list_latency_s = latency_s, list_latency_s
        self.read_limits = dict(read_limits) if read_limits else None
        self.spec = spec if spec is not None else (spec_checker() if validate_spec else None)
        self.now = now
        self.event_retention_s = event_retention_s
        self.faults = FaultPlan()
        self._recent: dict[str, deque[float]] = {"live": deque(), "test": deque()}
        self._lock = threading.Lock()
        self._log: list[dict[str, Any]] = []
        self._violations: list[dict[str, Any]] = []

    # ---------------------------------------------------------------------------------------- lifecycle

    @property
    def secret_key(self) -> str:
        """The first test-mode secret key (what a test hands to the `stripe` library)."""
        return next(k.secret for k in self.keys if k.secret.startswith("sk_test_"))

    def environment(self) -> dict[str, str]:
        """What the project's tools read to use this API instead of Stripe's."""
        return {"STRIPE_API_BASE": self.url, "STRIPE_API_KEY": self.secret_key}

    def _handler_and_app(self) -> tuple[type[BaseHTTPRequestHandler], Any]:
        return _Handler, self

    # ------------------------------------------------------------------------------------ what happened

    def requests_log(self) -> list[dict[str, Any]]:
        """Each request: method, path, query, mode, Stripe-Version, status, fault, duration_ms, at."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def spec_violations(self, include_allowed: bool = False) -> list[dict[str, Any]]:
        """Departures from Stripe's spec in what was served (allowed ones: later API versions, see `spec`)."""
        with self._lock:
            return [dict(v) for v in self._violations if include_allowed or not v["allowed"]]

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._violations.clear()

    # --------------------------------------------------------------------------------------- answering

    def _dispatch(self, method: str, target: str, headers: Mapping[str, str]) -> _Reply:
        started = time.monotonic()
        split = urlsplit(target)
        entry: dict[str, Any] = {"method": method, "path": split.path, "query": split.query, "at": time.time()}
        fault = None
        spec_path: str | None = None
        try:
            key = self._authenticate(headers.get("Authorization"))
            entry["mode"] = key.mode
            if self.latency_s:
                self._stopping.wait(self.latency_s)
            if method != "GET":
                raise ApiError(
                    405, f"{method} {split.path}: the local Stripe API is read-only; write history with StripeAccount"
                )
            self._admit(key.mode)
            fault = self.faults.take(split.path)
            if fault is not None and fault.kind == "slow":
                self._stopping.wait(fault.seconds)
                fault = None if self._stopping.is_set() else fault
            elif fault is not None and fault.kind == "disconnect":
                return _Reply(0, disconnect=True)
            elif fault is not None:
                raise ApiError(
                    fault.status,
                    fault.error["message"],
                    type_=fault.error["type"],
                    code=fault.error.get("code"),
                    headers=fault.headers,
                )
            account = self.accounts[key.mode]
            version = headers.get("Stripe-Version") or account.api_version
            if not valid(version):
                raise ApiError(400, f"Invalid Stripe API version: {version}", param="Stripe-Version")
            entry["stripe_version"] = version
            resource, object_id = self._route(split.path)
            spec_path = resource.item_spec if object_id else resource.list_spec
            if key.resources is not None and resource.read_permission not in key.resources:
                raise ApiError(
                    403,
                    f"The provided key '{key.masked()}' does not have the required permissions for this endpoint on account "
                    f"'{account.id}'. Having the '{resource.read_permission}' read permission would allow this request to continue.",
                )
            params = parse_query(split.query)
            if object_id is None:
                if self.list_latency_s:
                    self._stopping.wait(self.list_latency_s)
                body = self._list(resource, params, account, version)
            else:
                body = self._retrieve(resource, object_id, params, account, version)
            reply_status, payload, extra = 200, body, {"Stripe-Version": version}
        except ApiError as error:
            reply_status, payload, extra = error.status, {"error": error.error}, error.headers
        entry.update(
            status=reply_status,
            fault=fault.name if fault else None,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        )
        if self.spec is not None and spec_path is not None:
            self._record_violations(len(self._log), spec_path, self.spec.check_answer(spec_path, reply_status, payload))
        with self._lock:
            self._log.append(entry)
        request_id = "req_" + secrets.token_hex(7)
        return _Reply(reply_status, json.dumps(payload, indent=2).encode(), {"Request-Id": request_id, **extra})

    def _record_violations(self, request_index: int, path: str, found: list[Violation]) -> None:
        with self._lock:
            self._violations.extend({"request": request_index, "path": path, **v.as_json()} for v in found)

    def _authenticate(self, authorization: str | None) -> ApiKey:
        given = _api_key(authorization)
        if not given:
            raise ApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, using "
                "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication "
                "for details, or we can help at https://support.stripe.com/.",
            )
        if given.startswith("pk_"):
            raise ApiError(401, "This API call cannot be made with a publishable API key. Please use a secret API key.")
        for key in self.keys:
            if hmac.compare_digest(given.encode(), key.secret.encode()):
                return key
        shown = given[:8] + "*" * max(len(given) - 12, 4) + given[-4:]
        raise ApiError(401, f"Invalid API Key provided: {shown}")

    def _admit(self, mode: str) -> None:
        """Stripe's read limiter: at most N requests in any one-second window per mode, else its 429."""
        if self.read_limits is None:
            return
        limit = self.read_limits[mode]
        now = time.monotonic()
        with self._lock:
            recent = self._recent[mode]
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= limit:
                raise ApiError(
                    429,
                    RATE_LIMIT_ERROR["message"],
                    code="rate_limit",
                    headers={"Stripe-Rate-Limited-Reason": "global-rate"},
                )
            recent.append(now)

    @staticmethod
    def _route(path: str) -> tuple[Resource, str | None]:
        for resource in RESOURCES:
            if path == resource.path and resource.list_spec is not None:
                return resource, None
            prefix = resource.path + "/"
            if path.startswith(prefix) and "/" not in path[len(prefix) :] and path[len(prefix) :]:
                return resource, path[len(prefix) :]
        raise ApiError(
            404,
            f"Unrecognized request URL (GET: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )

    # ------------------------------------------------------------------------------------------ reading

    def _retrieve(
        self, resource: Resource, object_id: str, params: dict[str, Any], account: StripeAccount, version: str
    ) -> dict[str, Any]:
        unknown = set(params) - {"expand"}
        if unknown:
            raise ApiError(400, f"Received unknown parameter: {sorted(unknown)[0]}", param=sorted(unknown)[0])
        if resource.kind == "event":
            event = account.store.event(object_id)
            if event is None or event.created < self.now() - self.event_retention_s:
                raise _missing("event", object_id)
            obj = event.payload()
        else:
            record = account.store.get(object_id)
            if record is None or record["object"] != resource.kind:
                raise _missing(resource.kind, object_id)
            obj = render(record, version, account.store.peek)
        for path in _expansions(params):
            self._expand(obj, path.split("."), account, version)
        return obj

    def _list(self, resource: Resource, params: dict[str, Any], account: StripeAccount, version: str) -> dict[str, Any]:
        for name in params:
            if name in resource.unsupported:
                raise ApiError(
                    400,
                    f"The local Stripe API does not filter by {name!r} (Stripe does): add it if you need it",
                    param=name,
                )
            if name not in resource.filters:
                raise ApiError(400, f"Received unknown parameter: {name}", param=name)
        limit = _integer(params.get("limit", "10"), "limit")
        if not 1 <= limit <= 100:
            raise ApiError(
                400, "This value must be greater than or equal to 1 and less than or equal to 100.", param="limit"
            )
        if "starting_after" in params and "ending_before" in params:
            raise ApiError(
                400,
                "You may only specify one of these parameters: ending_before, starting_after.",
                param="ending_before",
            )
        # Filter and page the stored records (or events), then render only the page.
        if resource.kind == "event":
            oldest = self.now() - self.event_retention_s
            events = [e for e in account.store.events() if e.created >= oldest]
            universe: list[Any] = [{"id": e.id, "created": e.created, "type": e.type, "_event": e} for e in events]
        else:
            universe = account.store.objects(resource.kind, copies=False)
        keep = _filters(resource, params)
        items = [obj for obj in universe if all(check(obj) for check in keep)]
        try:
            chosen, has_more = page(
                items,
                lambda obj: obj["id"],
                limit=limit,
                starting_after=params.get("starting_after"),
                ending_before=params.get("ending_before"),
                universe=universe,
            )
        except UnknownCursor as missing:
            raise _missing(resource.kind, missing.object_id, missing.param) from None
        if resource.kind == "event":
            data = [obj["_event"].payload() for obj in chosen]
        else:
            data = [render(record, version, account.store.peek) for record in chosen]
        for path in _expansions(params):
            parts = path.split(".")
            if parts[0] != "data" or len(parts) < 2:
                raise ApiError(
                    400,
                    f"This property cannot be expanded ({path}). Expand list items with data.<field>.",
                    param="expand",
                )
            for obj in data:
                self._expand(obj, parts[1:], account, version)
        return {"object": "list", "data": data, "has_more": has_more, "url": resource.path}

    def _expand(
        self, obj: dict[str, Any], parts: list[str], account: StripeAccount, version: str, depth: int = 1
    ) -> None:
        if depth > MAX_EXPAND_DEPTH:
            raise ApiError(400, "You cannot expand more than 4 levels of a property.", param="expand")
        name, rest = parts[0], parts[1:]
        if obj.get("object") == "invoice" and name == "payments" and not rest:
            record = account.store.get(obj["id"])
            obj["payments"] = invoice_payments(record) if record else None
            return
        value = obj.get(name)
        if isinstance(value, str):
            record = account.store.peek(value)
            if record is None:
                raise ApiError(400, f"This property cannot be expanded ({name}).", param="expand")
            value = obj[name] = render(record, version, account.store.peek)
        elif name not in obj:
            raise ApiError(400, f"This property cannot be expanded ({name}).", param="expand")
        if rest and isinstance(value, dict):
            self._expand(value, rest, account, version, depth + 1)


def _expansions(params: Mapping[str, Any]) -> list[str]:
    expand = params.get("expand", [])
    if not isinstance(expand, list):
        raise ApiError(400, "Invalid array: expand", param="expand")
    return expand


def _filters(resource: Resource, params: Mapping[str, Any]) -> list[Callable[[dict[str, Any]], bool]]:
    """The list filters of this request, each a predicate on a rendered object."""
    keep: list[Callable[[dict[str, Any]], bool]] = []
    if "created" in params:
        created = _created_filter(params["created"])
        keep.append(lambda obj: created(obj["created"]))
    for name in ("customer", "payment_intent", "charge", "subscription", "email", "collection_method"):
        if name in params and name in resource.filters:
            wanted = params[name]
            field = "_subscription" if resource.kind == "invoice" and name == "subscription" else name
            keep.append(_field_equals(field, wanted))
    status = params.get("status")
    allowed: tuple[str, ...]
    if resource.kind == "subscription":
        allowed = _SUBSCRIPTION_STATUSES
        if status is None:
            keep.append(
                lambda obj: obj["status"] != "canceled"
            )  # "By default, returns subscriptions that have not been canceled"
        elif status == "ended":
            keep.append(lambda obj: obj["status"] in ("canceled", "incomplete_expired"))
        elif status != "all":
            keep.append(lambda obj: obj["status"] == status)
    elif status is not None:
        keep.append(lambda obj: obj["status"] == status)
        allowed = _INVOICE_STATUSES if resource.kind == "invoice" else _SESSION_STATUSES
    else:
        allowed = ()
    if status is not None and status not in allowed:
        raise ApiError(400, f"Invalid status: must be one of {', '.join(allowed)}", param="status")
    if "price" in params:
        keep.append(lambda obj: any(item["price"]["id"] == params["price"] for item in obj["items"]))
    types: list[str] = []
    if "type" in params:
        types.append(params["type"])
    if "types" in params:
        if "type" in params:
            raise ApiError(400, "You may only specify one of these parameters: type, types.", param="types")
        types = list(params["types"]) if isinstance(params["types"], list) else []
        if not types:
            raise ApiError(400, "Invalid array: types", param="types")
    if types:
        keep.append(lambda obj: any(_type_matches(obj["type"], t) for t in types))
    return keep


def _type_matches(event_type: str, wanted: str) -> bool:
    """`type` accepts `*` wildcards (`invoice.*`)."""
    return re.fullmatch(re.escape(wanted).replace(r"\*", ".*"), event_type) is not None


def _api_key(authorization: str | None) -> str | None:
    """The key from `Bearer <key>` or Basic auth with the key as the user name."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            return base64.b64decode(value, validate=True).decode().split(":", 1)[0] or None
    return None


class _Handler(BaseHTTPRequestHandler):
    """Thin adapter: HTTP in, `StripeApiServer._dispatch`, HTTP out."""

    protocol_version = "HTTP/1.1"
    server_version = "devstack-stripe/1"
    timeout = 120
    server: Any

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        try:
            reply = self.server.app._dispatch(self.command, self.path, self.headers)
        except Exception:
            log.exception("local Stripe API failed on %s %s", self.command, self.path)
            body = {"error": {"type": "api_error", "message": "the local Stripe API failed; see its log"}}
            reply = _Reply(500, json.dumps(body).encode())
        if reply.disconnect:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True  # the client gave up (its timeout during a slow fault)

    # http.server calls do_<METHOD>: these methods are served, the others answered 501.
    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _field_equals(name: str, wanted: Any) -> Callable[[dict[str, Any]], bool]:
    """A list filter: the object's `name` is `wanted`."""
    return lambda obj: obj.get(name) == wanted
