"""A local Mixpanel: `/import` and `/engage` over real HTTP, validating the way Mixpanel documents.

One server, three uses, so what the tests check is what the local stack and the benchmarks run:
- the Mixpanel test server (tests reach Mixpanel only over HTTP, never by patching `requests`);
- the local stack's Mixpanel (`make dev`, port 3001), with a page at `/` to see what arrived;
- the benchmarks' Mixpanel, with a constant `latency_s`.

Every rule below comes from Mixpanel's docs and OpenAPI spec (`devstack/mixpanel/`), as collected with
sources in the team's Mixpanel facts file; where the docs contradict each other the strictest reading wins,
so code that passes here does not fail against the real service.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import functools
import hmac
import json
import logging
import math
import random
import re
import signal
import socket
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import yaml
from openapi_schema_validator import OAS30WriteValidator

log = logging.getLogger(__name__)

# Limits and rules of POST /import (docs.mixpanel.com/reference/import-events).
MAX_EVENTS_PER_REQUEST = 2000
# The spec's 413 example says 2,097,152 bytes; the prose now says 10MB. The stricter one is enforced.
MAX_REQUEST_BYTES = 2_097_152
MAX_EVENT_BYTES = 1024 * 1024  # "Each event must be smaller than 1MB of uncompressed JSON"
MAX_PROPERTIES = 255  # "fewer than 255 properties" (and keys per nested object)
MAX_ARRAY_ITEMS = 255  # "fewer than 255 elements"
MAX_NESTING_DEPTH = 3
MAX_STRING_CHARS = 255  # "We truncate all strings down to 255 characters"
MAX_INSERT_ID_BYTES = 36
EARLIEST_TIME_S = 31_536_000  # 1971-01-01T00:00:00Z
MAX_FUTURE_S = 3600
# A time at or above this is milliseconds (it is year 5138 in seconds, 1973 in milliseconds).
MILLISECONDS_FROM = 100_000_000_000
# Placeholder ids Mixpanel rejects as distinct_id and as $insert_id (compared case-insensitively here).
BLOCKED_IDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "anon",
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "na",
        "undefined",
        "unknown",
        "<nil>",
        "0",
        "-1",
        "true",
        "false",
        "[]",
        "{}",
    }
)
INSERT_ID_PATTERN = re.compile(r"[A-Za-z0-9-]+")

# POST /engage (docs.mixpanel.com/docs/data-structure/user-profiles, reference/user-profile-limits).
ENGAGE_OPERATIONS = ("$set", "$set_once", "$add", "$union", "$append", "$remove", "$unset", "$delete")
MAX_PROFILE_UPDATES_PER_REQUEST = 2000
MAX_PROFILE_UPDATE_BYTES = 1024 * 1024
# Operations that create a missing profile; $unset and $remove on a missing profile change nothing.
_CREATING_OPERATIONS = frozenset({"$set", "$set_once", "$add", "$union", "$append"})

SPEC_PATH = Path(__file__).with_name("mixpanel") / "ingestion.openapi.yaml"
# Bodies larger than this are not even read: the connection is answered 413 and closed.
_READ_CAP_BYTES = 64 * 1024 * 1024
_LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1"}
_INGESTION_PATHS = ("/import", "/engage")
_JSON_TYPES = ("application/json", "")
_NDJSON_TYPE = "application/x-ndjson"
_FORM_TYPE = "application/x-www-form-urlencoded"


# --------------------------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """Who may send to the project: a service account (`/import`'s documented auth) and/or the project token."""

    project_id: str = ""
    username: str = ""
    secret: str = ""
    project_token: str = ""

    def __post_init__(self) -> None:
        if bool(self.username) != bool(self.secret):
            raise ValueError("a service account needs both a username and a secret")
        if self.username and not self.project_id:
            raise ValueError("a service account needs the project_id it belongs to")
        if not self.username and not self.project_token:
            raise ValueError("give a service account (project_id, username, secret) and/or a project_token")

    def secret_value(self) -> dict[str, str]:
        """These credentials as the `MixpanelCredentials` secret holds them for the forwarder (its set fields)."""
        fields = {
            "project_id": self.project_id,
            "service_account_username": self.username,
            "service_account_secret": self.secret,
            "project_token": self.project_token,
        }
        return {name: value for name, value in fields.items() if value}

    def authenticate(self, authorization: str | None, project_id: str | None, *, engage: bool = False) -> str | None:
        """The auth method a request used ("service_account" or "project_token"), or None when it is not valid.

        `/import` ties a service account to the `project_id` query parameter; with the token as Basic username
        and an empty password, project_id may be omitted. `/engage` has no project_id.
        """
        pair = _basic_credentials(authorization)
        if pair is None:
            return None
        user, password = pair
        if self.username and _same(user, self.username) and _same(password, self.secret):
            if engage or (project_id is not None and _same(project_id, self.project_id)):
                return "service_account"
            return None
        token_ok = bool(self.project_token) and _same(user, self.project_token) and password == ""
        # A project_id sent alongside the token must still be this project's.
        if token_ok and (project_id is None or engage or not self.project_id or _same(project_id, self.project_id)):
            return "project_token"
        return None


# What the local stack uses unless told otherwise; service account usernames look like this in Mixpanel.
DEMO_CREDENTIALS = Credentials(
    project_id="1",
    username="devstack.1.mp-service-account",
    secret="devstack-demo-secret",
    project_token="devstack-demo-token",
)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) from a Basic header; Mixpanel accepts base64 or plain text after `Basic `."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    value = value.strip()
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = value
    if ":" not in decoded:
        return decoded, ""
    user, _, password = decoded.partition(":")
    return user, password


# -------------------------------------------------------------------------------------------------- faults

HTTP_FAULT_STATUSES = (500, 502, 503, 429, 413, 401)
FaultKind = Literal["http", "reject", "slow", "disconnect"]
RANDOM_FAULT_NAMES = ("500", "502", "503", "429", "413", "401", "slow", "disconnect")


@dataclass(frozen=True)
class Fault:
    """One scripted failure for the next matching ingestion request (`path` None matches /import and /engage).

    Build them with the class methods: `Fault.http(503)`, `Fault.rate_limited()`, `Fault.reject(insert_ids=...)`,
    `Fault.slow(30)`, `Fault.disconnect()`. Only `reject` stores anything (the events it does not reject), and
    `slow(..., store=True)` which models "Mixpanel stored it, the client gave up waiting".
    """

    kind: FaultKind
    status: int = 0
    seconds: float = 0.0
    insert_ids: frozenset[str] = frozenset()
    predicate: Callable[[Any], bool] | None = None
    field: str = "properties"
    message: str = "'properties' is invalid: rejected by an injected fault"
    store: bool = False
    path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "insert_ids", frozenset(self.insert_ids))
        if self.kind == "http" and self.status not in HTTP_FAULT_STATUSES:
            raise ValueError(f"http fault status {self.status}: expected one of {HTTP_FAULT_STATUSES}")
        if self.kind == "reject" and not (self.insert_ids or self.predicate):
            raise ValueError("a reject fault needs insert_ids or a predicate choosing the records to fail")
        if self.kind == "slow" and self.seconds <= 0:
            raise ValueError("a slow fault needs seconds > 0")
        if self.path is not None and self.path not in _INGESTION_PATHS:
            raise ValueError(f"fault path {self.path!r}: expected None or one of {_INGESTION_PATHS}")

    @property
    def name(self) -> str:
        """The counter key: the HTTP status for http faults, else the kind."""
        return str(self.status) if self.kind == "http" else self.kind

    @classmethod
    def http(cls, status: int, *, path: str | None = None) -> Fault:
        """Answer `status` (500/502/503/429/413/401) with Mixpanel's body for it, storing nothing."""
        return cls("http", status=status, path=path)

    @classmethod
    def rate_limited(cls, *, path: str | None = None) -> Fault:
        return cls.http(429, path=path)

    @classmethod
    def reject(
        cls,
        *,
        insert_ids: Iterable[str] = (),
        predicate: Callable[[Any], bool] | None = None,
        field: str = "properties",
        message: str = "'properties' is invalid: rejected by an injected fault",
        path: str | None = None,
    ) -> Fault:
        """A 400 failing the chosen records (by `$insert_id`, or `predicate(record)`), storing the others."""
        return cls(
            "reject", insert_ids=frozenset(insert_ids), predicate=predicate, field=field, message=message, path=path
        )

    @classmethod
    def slow(cls, seconds: float, *, store: bool = False, path: str | None = None) -> Fault:
        """Wait `seconds` before answering (to outlast a client timeout); then 503, or process it if `store`."""
        return cls("slow", seconds=seconds, store=store, path=path)

    @classmethod
    def disconnect(cls, *, path: str | None = None) -> Fault:
        """Read the request, then close the connection without an answer."""
        return cls("disconnect", path=path)

    def rejects(self, record: Any) -> bool:
        if self.predicate is not None and self.predicate(record):
            return True
        if self.insert_ids and isinstance(record, dict):
            props = record.get("properties")
            return isinstance(props, dict) and props.get("$insert_id") in self.insert_ids
        return False


class FaultPlan:
    """The faults a test scripts: a queue consumed one per matching request, then an optional random mode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self._rng: random.Random | None = None
        self._rates: list[tuple[str, float]] = []
        self._random_path: str | None = None
        self._slow_s = 0.0
        self._served: dict[str, int] = {}

    def push(self, *faults: Fault) -> None:
        """Queue faults; each is used by the next request to its path (or to any ingestion path)."""
        with self._lock:
            self._queue.extend(faults)

    def random(self, seed: int, rates: Mapping[str, float], *, path: str | None = None, slow_s: float = 5.0) -> None:
        """Fail requests at random but reproducibly: `rates` maps "500"/"502"/"503"/"429"/"413"/"401"/"slow"/
        "disconnect" to a probability per request. Queued faults still come first."""
        unknown = set(rates) - set(RANDOM_FAULT_NAMES)
        if unknown:
            raise ValueError(f"unknown fault names {sorted(unknown)}: expected some of {RANDOM_FAULT_NAMES}")
        if any(rate < 0 for rate in rates.values()) or sum(rates.values()) > 1:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        if path is not None and path not in _INGESTION_PATHS:
            raise ValueError(f"fault path {path!r}: expected None or one of {_INGESTION_PATHS}")
        with self._lock:
            self._rng = random.Random(seed)  # noqa: S311 - reproducible test faults, not cryptography
            self._rates = list(rates.items())
            self._random_path = path
            self._slow_s = slow_s

    def clear(self) -> None:
        """Drop queued faults and the random mode; the served counters stay."""
        with self._lock:
            self._queue.clear()
            self._rng = None
            self._rates = []

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._queue)

    @property
    def served(self) -> dict[str, int]:
        """How many of each fault were served, keyed by `Fault.name` ("503", "reject", "slow", ...)."""
        with self._lock:
            return dict(self._served)

    def reset(self) -> None:
        self.clear()
        with self._lock:
            self._served.clear()

    def take(self, path: str) -> Fault | None:
        """The fault for this request, if any (and count it as served)."""
        with self._lock:
            fault = next((f for f in self._queue if f.path in (None, path)), None)
            if fault is not None:
                self._queue.remove(fault)
            elif self._rng is not None and self._random_path in (None, path):
                fault = self._draw(path)
            if fault is not None:
                self._served[fault.name] = self._served.get(fault.name, 0) + 1
            return fault

    def _draw(self, path: str) -> Fault | None:
        assert self._rng is not None
        roll, cumulative = self._rng.random(), 0.0
        for name, rate in self._rates:
            cumulative += rate
            if roll < cumulative:
                if name == "slow":
                    return Fault.slow(self._slow_s, path=path)
                if name == "disconnect":
                    return Fault.disconnect(path=path)
                return Fault.http(int(name), path=path)
        return None


# -------------------------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class FailedRecord:
    """One entry of a strict `/import` 400's `failed_records`, shaped like Mixpanel's."""

    index: int
    insert_id: str
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "insert_id": self.insert_id, "field": self.field, "message": self.message}


def _failed(index: int, insert_id: str, field_name: str, reason: str) -> FailedRecord:
    return FailedRecord(index, insert_id, field_name, f"'{field_name}' is invalid: {reason}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_blocked(value: str) -> bool:
    return value.strip().lower() in BLOCKED_IDS


def event_time_ms(value: float) -> int:
    """Mixpanel's time in milliseconds: it accepts seconds or milliseconds and stores millisecond precision."""
    return round(value) if value >= MILLISECONDS_FROM else round(value * 1000)


def validate_event(index: int, event: Any, now_s: float, *, check_size: bool = True) -> FailedRecord | None:
    """Why Mixpanel's strict `/import` would reject this event, or None when it is accepted.

    `check_size=False` skips measuring the event, for bodies too small to hold a 1MB event.
    """
    if not isinstance(event, dict):
        return _failed(index, "", "event", "each record must be a JSON object")
    props = event.get("properties")
    insert_id = props.get("$insert_id") if isinstance(props, dict) else None
    insert_id = insert_id if isinstance(insert_id, str) else ""
    name = event.get("event")
    if not isinstance(name, str) or not name.strip():
        return _failed(index, insert_id, "event", "must be a non-empty string")
    if not isinstance(props, dict):
        return _failed(index, insert_id, "properties", "must be a JSON object")

    when = props.get("time")
    if not _is_number(when):
        return _failed(index, insert_id, "properties.time", "must be specified as seconds since epoch")
    seconds = event_time_ms(when) / 1000
    if seconds < EARLIEST_TIME_S:
        return _failed(index, insert_id, "properties.time", "must not be before 1971-01-01")
    if seconds > now_s + MAX_FUTURE_S:
        return _failed(index, insert_id, "properties.time", "must not be more than 1 hour in the future")

    if "distinct_id" not in props:
        return _failed(index, insert_id, "properties.distinct_id", "must be specified")
    distinct_id = props["distinct_id"]
    if not isinstance(distinct_id, str):
        return _failed(index, insert_id, "properties.distinct_id", "must be a string")
    if _is_blocked(distinct_id):
        return _failed(index, insert_id, "properties.distinct_id", f"{distinct_id!r} is a placeholder value")

    raw_insert_id = props.get("$insert_id")
    if raw_insert_id is None or raw_insert_id == "":
        return _failed(index, insert_id, "$insert_id", "must be specified")
    if not isinstance(raw_insert_id, str):
        return _failed(index, insert_id, "$insert_id", "must be a string")
    if len(raw_insert_id.encode()) > MAX_INSERT_ID_BYTES:
        return _failed(index, insert_id, "$insert_id", f"must be at most {MAX_INSERT_ID_BYTES} bytes")
    if not INSERT_ID_PATTERN.fullmatch(raw_insert_id):
        return _failed(index, insert_id, "$insert_id", "must only contain alphanumeric or hyphen '-' characters")
    if _is_blocked(raw_insert_id):
        return _failed(index, insert_id, "$insert_id", f"{raw_insert_id!r} is a placeholder value")

    if len(props) >= MAX_PROPERTIES:
        return _failed(index, insert_id, "properties", f"must have fewer than {MAX_PROPERTIES} properties")
    for key, value in props.items():
        problem = _structure_problem(value, 0)
        if problem:
            return _failed(index, insert_id, f"properties.{key}", problem)
    if check_size and len(_compact(event).encode()) >= MAX_EVENT_BYTES:
        return _failed(index, insert_id, "properties", "the event must be smaller than 1MB of uncompressed JSON")
    return None


def _structure_problem(value: Any, depth: int) -> str | None:
    """Nested objects: depth <= 3 and < 255 keys; arrays: < 255 elements (at any depth)."""
    if isinstance(value, dict):
        depth += 1
        if depth > MAX_NESTING_DEPTH:
            return f"nested objects must have a max nesting depth of {MAX_NESTING_DEPTH}"
        if len(value) >= MAX_PROPERTIES:
            return f"nested objects must have fewer than {MAX_PROPERTIES} keys"
        children: Iterable[Any] = value.values()
    elif isinstance(value, list):
        if len(value) >= MAX_ARRAY_ITEMS:
            return f"lists must have fewer than {MAX_ARRAY_ITEMS} elements"
        children = value
    else:
        return None
    for child in children:
        problem = _structure_problem(child, depth)
        if problem:
            return problem
    return None


def _truncated(value: Any) -> Any:
    """What Mixpanel stores: every string value cut to 255 characters."""
    if isinstance(value, str):
        return value[:MAX_STRING_CHARS]
    if isinstance(value, dict):
        return {key: _truncated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_truncated(item) for item in value]
    return value


def validate_profile_update(record: Any, project_token: str, request_authenticated: bool) -> str | None:
    """Why Mixpanel's `/engage` would refuse this update (its "Engage API error: ..." text), or None.

    Without Basic auth on the request, each record proves its project with `$token`; with it, a `$token`
    that is present must still be this project's.
    """
    if not isinstance(record, dict):
        return "Engage API error: each update must be a JSON object"
    token = record.get("$token")
    if not request_authenticated and (not isinstance(token, str) or not token):
        return "Engage API error: $token, missing or empty"
    if token is not None and project_token and not (isinstance(token, str) and _same(token, project_token)):
        return "Engage API error: $token, not this project's token"
    if token is not None and not project_token and not request_authenticated:
        return "Engage API error: $token, not this project's token"
    distinct_id = record.get("$distinct_id")
    if not isinstance(distinct_id, str) or not distinct_id.strip():
        return "Engage API error: $distinct_id, missing or empty"
    operations = [op for op in ENGAGE_OPERATIONS if op in record]
    if not operations:
        return f"Engage API error: no operation, expected exactly one of {', '.join(ENGAGE_OPERATIONS)}"
    if len(operations) > 1:
        return f"Engage API error: more than one operation ({', '.join(operations)}), expected exactly one"
    operation = operations[0]
    value = record[operation]
    if operation in ("$set", "$set_once", "$append", "$remove", "$add", "$union") and not isinstance(value, dict):
        return f"Engage API error: {operation} must be a JSON object"
    if operation == "$add" and not all(_is_number(v) for v in value.values()):
        return "Engage API error: $add values must be numbers"
    if operation == "$union" and not all(isinstance(v, list) for v in value.values()):
        return "Engage API error: $union values must be lists"
    if operation == "$unset" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return "Engage API error: $unset must be a list of property names"
    if len(_compact(record).encode()) > MAX_PROFILE_UPDATE_BYTES:
        return "Engage API error: update exceeds the 1MB limit"
    return None


def apply_profile_update(profile: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any] | None:
    """The profile after one valid update, as Mixpanel documents each operation (None: no profile)."""
    operation = next(op for op in ENGAGE_OPERATIONS if op in record)
    value = record[operation]
    if operation == "$delete":
        return None
    if profile is None and operation not in _CREATING_OPERATIONS:
        return None
    props = dict(profile or {})
    if operation == "$set":
        props.update(_truncated(value))
    elif operation == "$set_once":
        for key, item in _truncated(value).items():
            props.setdefault(key, item)
    elif operation == "$add":  # not idempotent: a retried $add counts twice
        for key, amount in value.items():
            current = props.get(key)
            if current is None:
                props[key] = amount
            elif _is_number(current):
                props[key] = current + amount
    elif operation == "$union":
        for key, items in _truncated(value).items():
            merged = list(props[key]) if isinstance(props.get(key), list) else []
            merged.extend(item for item in items if item not in merged)
            props[key] = _unique(merged)
    elif operation == "$append":  # no duplicate check, by design
        for key, item in _truncated(value).items():
            current = props.get(key)
            props[key] = [*current, item] if isinstance(current, list) else [item]
    elif operation == "$remove":
        for key, item in value.items():
            if isinstance(props.get(key), list):
                props[key] = [x for x in props[key] if x != item]
    elif operation == "$unset":
        for key in value:
            props.pop(key, None)
    return props


def _unique(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ----------------------------------------------------------------------------------------- OpenAPI checks

# Where Mixpanel's own docs contradict its spec, the documented behaviour is not a violation.
SPEC_ALLOWANCES = (
    "/import query.project_id may be missing with Project Token auth (reference/import-events: "
    "'If project_id is not specified, the request will be authenticated using the provided token')",
    "/engage query.verbose may be 2 (Mixpanel's sample code sends it; it answers a real 400 on invalid input)",
)


@dataclass(frozen=True)
class _Parsed:
    """A request body decoded as far as it goes: records, or why not."""

    records: list[Any] | None
    error: str | None = None
    status: int = 400
    uncompressed_bytes: int = 0
    form: dict[str, str] = field(default_factory=dict)


class SpecChecker:
    """Checks received requests against Mixpanel's ingestion OpenAPI spec, operation by operation.

    The engage paths are `/engage#<operation>` fragments, so operations are chosen by hand: `/import` by its
    path, each `/engage` record by the one operation key it carries.
    """

    def __init__(self, spec_path: Path = SPEC_PATH) -> None:
        self._validators: dict[int, OAS30WriteValidator] = {}
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        spec = yaml.load(spec_path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
        self._import = spec["paths"]["/import"]["post"]
        self._import_body = OAS30WriteValidator(self._body_schema(self._import))
        self._engage_params = spec["paths"]["/engage#profile-batch-update"]["post"]
        self._engage_ops: dict[str, tuple[str, OAS30WriteValidator]] = {}
        for path, item in spec["paths"].items():
            if not path.startswith("/engage#"):
                continue
            operation = item["post"]
            schema = self._body_schema(operation)
            if schema.get("type") != "array":
                continue  # profile-batch-update: a string blob, each record is checked by its own operation
            chosen = [op for op in schema["items"].get("required", []) if op in ENGAGE_OPERATIONS]
            if len(chosen) != 1:
                raise ValueError(f"spec {path}: cannot tell which engage operation it describes")
            self._engage_ops[chosen[0]] = (operation["operationId"], OAS30WriteValidator(schema["items"]))
        missing = set(ENGAGE_OPERATIONS) - set(self._engage_ops)
        if missing:
            raise ValueError(f"spec has no /engage operation for {sorted(missing)}")

    @staticmethod
    def _body_schema(operation: dict[str, Any]) -> dict[str, Any]:
        return operation["requestBody"]["content"]["application/json"]["schema"]

    def check_import(
        self, query: Mapping[str, str], headers: Message, parsed: _Parsed, auth: str | None
    ) -> list[tuple[str, str, str]]:
        """(operationId, where, message) for each way this `/import` request departs from the spec."""
        op_id = self._import["operationId"]
        found = [(op_id, w, m) for w, m in self._parameters(self._import, query, headers)]
        if auth == "project_token":
            found = [v for v in found if v[1] != "query.project_id"]
        if parsed.records is None:
            found.append((op_id, "body", f"not checked: {parsed.error}"))
        else:
            found.extend(
                (op_id, _where(e.absolute_path), e.message) for e in self._import_body.iter_errors(parsed.records)
            )
        return found

    def check_engage(self, query: Mapping[str, str], headers: Message, parsed: _Parsed) -> list[tuple[str, str, str]]:
        """(operationId, where, message) for each way this `/engage` request departs from the spec."""
        op_id = self._engage_params["operationId"]
        found = [
            (op_id, w, m)
            for w, m in self._parameters(self._engage_params, query, headers)
            if not (w == "query.verbose" and query.get("verbose") == "2")
        ]
        media = _media_type(headers)
        if media not in _JSON_TYPES:
            found.append((op_id, "header.Content-Type", f"{media!r} is not application/json, the only type listed"))
        if parsed.records is None:
            found.append((op_id, "body", f"not checked: {parsed.error}"))
            return found
        if not parsed.records:
            found.append((op_id, "body", "[] is too short (minItems 1)"))
        for index, record in enumerate(parsed.records):
            ops = [op for op in ENGAGE_OPERATIONS if isinstance(record, dict) and op in record]
            if len(ops) != 1:
                found.append((op_id, f"body[{index}]", f"no single engage operation matches (operations: {ops})"))
                continue
            record_op_id, validator = self._engage_ops[ops[0]]
            found.extend(
                (record_op_id, _where([index, *e.absolute_path]), e.message) for e in validator.iter_errors(record)
            )
        return found

    def _parameters(
        self, operation: dict[str, Any], query: Mapping[str, str], headers: Message
    ) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for param in operation.get("parameters", []):
            where, name = param["in"], param["name"]
            if where == "query":
                raw = query.get(name)
            elif where == "header":
                raw = _media_type(headers) if name.lower() == "content-type" else headers.get(name)
                raw = raw or None
            else:
                continue
            location = f"{where}.{name}"
            if raw is None:
                if param.get("required"):
                    found.append((location, "required parameter is missing"))
                continue
            schema = param.get("schema", {})
            value: Any = raw
            if schema.get("type") == "integer":
                try:
                    value = int(raw)
                except ValueError:
                    found.append((location, f"{raw!r} is not an integer"))
                    continue
            validator = self._validators.setdefault(id(schema), OAS30WriteValidator(schema))
            found.extend((location, e.message) for e in validator.iter_errors(value))
        return found


@functools.cache
def spec_checker(spec_path: Path = SPEC_PATH) -> SpecChecker:
    """One checker per spec file: parsing the spec takes longer than starting a server."""
    return SpecChecker(spec_path)


def _where(path: Iterable[Any]) -> str:
    out = "body"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _media_type(headers: Message) -> str:
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


# ---------------------------------------------------------------------------------------------- storage

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
    query TEXT NOT NULL, headers TEXT NOT NULL, body_bytes INTEGER NOT NULL, uncompressed_bytes INTEGER,
    records INTEGER, auth TEXT, status INTEGER, fault TEXT, response TEXT, duration_ms REAL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL, received_at REAL NOT NULL,
    event TEXT NOT NULL, distinct_id TEXT NOT NULL, time_ms INTEGER NOT NULL, insert_id TEXT NOT NULL,
    properties TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_dedup ON events (event, distinct_id, time_ms, insert_id);
CREATE TABLE IF NOT EXISTS profiles (
    distinct_id TEXT PRIMARY KEY, properties TEXT NOT NULL, last_seen REAL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS profile_updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL, received_at REAL NOT NULL,
    distinct_id TEXT NOT NULL, operation TEXT NOT NULL, record TEXT NOT NULL);
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


class _Store:
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
            if has_tables and version != _SCHEMA_VERSION:
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
        allowed = {"uncompressed_bytes", "records", "auth", "status", "fault", "response", "duration_ms"}
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

    def add_events(self, request_id: int, events: list[dict[str, Any]]) -> None:
        now = time.time()
        rows = [
            (
                request_id,
                now,
                e["event"],
                e["properties"]["distinct_id"],
                event_time_ms(e["properties"]["time"]),
                e["properties"]["$insert_id"],
                _compact(e["properties"]),
            )
            for e in events
        ]
        with self.changed, self._db:
            self._db.executemany(
                "INSERT INTO events (request_id, received_at, event, distinct_id, time_ms, insert_id, properties)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
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
                    (request_id, now, distinct_id, operation, _compact(record)),
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
                    (distinct_id, _compact(updated), last_seen, now),
                )
            self.changed.notify_all()

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def reset(self) -> None:
        with self._lock, self._db:
            for table in ("requests", "events", "profiles", "profile_updates", "spec_violations"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _event_json(row: sqlite3.Row) -> dict[str, Any]:
    return {"event": row["event"], "properties": json.loads(row["properties"])}


# ------------------------------------------------------------------------------------------------- server


@dataclass(frozen=True)
class RevenueView:
    """Which event properties the page's revenue chart reads; the defaults are the event catalog's names."""

    amount_property: str = "Revenue"
    currency_property: str = "Currency"
    refund_events: tuple[str, ...] = ("Refund Issued",)


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    disconnect: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> _Reply:
        return cls(status, _compact(payload).encode())


# Mixpanel's own `status` words (Python 3.13 renamed 413 to "Content Too Large"; Mixpanel did not).
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_PROXY_ERROR_PAGE = "<html><head><title>{code} {phrase}</title></head><body><h1>{code} {phrase}</h1></body></html>"


def _import_error(strict: bool, status: int, message: str) -> _Reply:
    """`/import`'s error shape: strict `{"code","error","status"}`; otherwise `{"error","status":0}`."""
    if strict:
        return _Reply.json(status, {"code": status, "error": message, "status": _REASONS.get(status, "Error")})
    return _Reply.json(status, {"error": message, "status": 0})


_FAULT_MESSAGES = {
    500: "Internal Server Error",
    429: "Project exceeded rate limits. Please retry the request with exponential backoff.",
    413: f"request exceeds max limit of {MAX_REQUEST_BYTES} bytes",
    401: "Invalid credentials",
}


def _fault_reply(status: int, path: str, strict: bool) -> _Reply:
    """What Mixpanel answers with `status`: JSON from the API, or a proxy's HTML page for 502/503."""
    if status in (502, 503):
        # These come from the load balancer in front of the API: the body is not JSON, and clients must cope.
        page = _PROXY_ERROR_PAGE.format(code=status, phrase=_REASONS[status])
        return _Reply(status, page.encode(), "text/html; charset=UTF-8")
    message = _FAULT_MESSAGES[status]
    if path == "/engage" and status == 401:
        return _Reply.json(401, {"error": message, "status": "error"})
    return _import_error(strict and path == "/import", status, message)


class MixpanelServer:
    """A Mixpanel-compatible `/import` + `/engage` server on 127.0.0.1, with SQLite storage and a page at `/`.

    `listen_also` adds docker's bridge for `sam local`'s containers (devstack.bridge), on request only.

    `latency_s` is added to every ingestion request; `dead_letters` (optional) returns the dead-letter queue's
    messages for the page; `validate_spec=False` skips the OpenAPI checks (benchmarks measuring the client).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: str = ":memory:",
        credentials: Credentials = DEMO_CREDENTIALS,
        latency_s: float = 0.0,
        dead_letters: Callable[[], list[dict[str, Any]]] | None = None,
        *,
        revenue: RevenueView = RevenueView(),
        validate_spec: bool = True,
    ) -> None:
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
        self._store = _Store(self.db_path)
        self._spec = spec_checker() if validate_spec else None
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._more: list[tuple[_HTTPServer, threading.Thread]] = []

    # lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:3001 (the API host to configure clients with)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> MixpanelServer:
        """Bind and serve on a daemon thread; after a stop(), start() again reuses the same port."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"mixpanel:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop quickly: wake any sleeping latency or slow fault, close open connections. Data stays readable."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        for server, thread in [(httpd, self._thread), *self._more]:
            server.shutdown()
            server.close_connections()
            server.server_close()
            if thread is not None:
                thread.join(timeout=5)
        self._more.clear()

    def listen_also(self, sock: socket.socket) -> None:
        """Serve on another listening socket as well, until stop(): docker's bridge for `sam local` (devstack.bridge)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        server = _HTTPServer(sock.getsockname()[:2], _Handler, self, sock=sock)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"mixpanel:{sock.getsockname()}",
            daemon=True,
        )
        thread.start()
        self._more.append((server, thread))

    def __enter__(self) -> MixpanelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # what was received

    def events(self, name: str | None = None, distinct_id: str | None = None) -> list[dict[str, Any]]:
        """Stored events as queries see them: deduplicated on (event, distinct_id, time, $insert_id), the most
        recently ingested copy kept, in ingestion order. Each is `{"event": ..., "properties": {...}}`."""
        return [_event_json(r) for r in self._store.query(_DEDUPED_EVENTS) if _matches(r, name, distinct_id)]

    def raw_events(self, name: str | None = None, distinct_id: str | None = None) -> list[dict[str, Any]]:
        """Every event ingested, duplicates included, in order."""
        return [_event_json(r) for r in self._store.query(_RAW_EVENTS) if _matches(r, name, distinct_id)]

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
        rows = self._store.query("SELECT distinct_id, properties FROM profiles ORDER BY distinct_id")
        return {r["distinct_id"]: json.loads(r["properties"]) for r in rows}

    def profile_updates(self) -> list[dict[str, Any]]:
        """Every profile update applied, in order (retries included)."""
        return [json.loads(r["record"]) for r in self._store.query("SELECT record FROM profile_updates ORDER BY seq")]

    def requests_log(self, path: str | None = None) -> list[dict[str, Any]]:
        """Each ingestion request received, in order: path, query, headers (Authorization redacted), records
        (events or updates parsed), body_bytes, uncompressed_bytes, auth, status answered, fault, response."""
        rows = self._store.query("SELECT * FROM requests ORDER BY id")
        return [_request_json(r) for r in rows if path is None or r["path"] == path]

    def spec_violations(self) -> list[dict[str, Any]]:
        """Every departure from Mixpanel's OpenAPI spec seen in received requests (tests assert it is empty)."""
        rows = self._store.query("SELECT * FROM spec_violations ORDER BY id")
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

    def revenue(self) -> list[dict[str, Any]]:
        """Revenue per UTC day and currency from the deduplicated events: gross, refunds, net and event count."""
        view = self.revenue_view
        totals: dict[tuple[str, str], dict[str, Any]] = {}
        for row in self._store.query(_DEDUPED_EVENTS):
            props = json.loads(row["properties"])
            amount, currency = props.get(view.amount_property), props.get(view.currency_property)
            if not _is_number(amount) or not isinstance(currency, str) or not currency:
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

    def reset(self) -> None:
        """Forget everything: events, profiles, requests, spec violations, faults and their counters."""
        self._store.reset()
        self.faults.reset()

    # request handling (called by the HTTP handler threads)

    def _dispatch(self, request: _Request) -> _Reply:
        if request.method == "POST" and request.path in _INGESTION_PATHS:
            return self._ingest(request)
        if request.method == "GET":
            return self._page_or_api(request)
        if request.path in _INGESTION_PATHS:
            return _Reply.json(405, {"error": f"{request.method} is not allowed on {request.path}", "status": 0})
        return _Reply.json(404, {"error": f"no such endpoint: {request.method} {request.path}", "status": 0})

    def _ingest(self, request: _Request) -> _Reply:
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
                reply = self._import(parsed, auth, strict, request_id, reject)
            else:
                reply = self._engage(request, parsed, params, auth, request_id, reject)
        elif fault.kind == "disconnect":
            reply = _Reply(0, disconnect=True)
        else:
            status = fault.status if fault.kind == "http" else 503
            reply = _fault_reply(status, request.path, strict)
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

    def _parse_import(self, request: _Request) -> _Parsed:
        encoding = (request.headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in ("", "identity", "gzip"):
            return _Parsed(None, f"unsupported Content-Encoding {encoding!r}")
        body = request.body
        if encoding == "gzip":
            try:
                body = _gunzip(body, MAX_REQUEST_BYTES + 1)
            except (OSError, EOFError, zlib.error) as exc:
                return _Parsed(None, f"could not decompress the gzip body: {exc}")
        if len(body) > MAX_REQUEST_BYTES:
            return _Parsed(None, f"request exceeds max limit of {MAX_REQUEST_BYTES} bytes", 413, len(body))
        media = _media_type(request.headers)
        try:
            text = body.decode("utf-8")
            if media == _NDJSON_TYPE:
                records = [json.loads(line) for line in text.splitlines() if line.strip()]
            elif media == _FORM_TYPE:  # the mixpanel SDK's legacy `data=<json>`
                form = dict(parse_qsl(text, keep_blank_values=True))
                records = json.loads(form.get("data", ""))
            elif media in _JSON_TYPES:
                records = json.loads(text)
            else:
                return _Parsed(None, f"unsupported Content-Type {media!r}", 400, len(body))
        except (UnicodeDecodeError, ValueError) as exc:
            return _Parsed(None, f"request body is not valid JSON: {exc}", 400, len(body))
        if not isinstance(records, list):
            return _Parsed(None, "request body must be a JSON array of events", 400, len(body))
        return _Parsed(records, uncompressed_bytes=len(body))

    def _parse_engage(self, request: _Request) -> _Parsed:
        encoding = (request.headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in ("", "identity"):
            return _Parsed(None, f"Content-Encoding {encoding!r} is not supported by /engage (send it uncompressed)")
        body, media, form = request.body, _media_type(request.headers), {}
        try:
            text = body.decode("utf-8")
            if media == _FORM_TYPE:
                form = dict(parse_qsl(text, keep_blank_values=True))
                data = form.pop("data", "")
                try:
                    records = json.loads(data)
                except ValueError:  # older SDKs base64-encode `data`
                    records = json.loads(base64.b64decode(data, validate=True))
            else:
                records = json.loads(text)
        except (UnicodeDecodeError, ValueError, binascii.Error) as exc:
            return _Parsed(None, f"request body is not valid JSON: {exc}", 400, len(body), form)
        if isinstance(records, dict):
            records = [records]
        if not isinstance(records, list):
            return _Parsed(None, "request body must be a JSON array of profile updates", 400, len(body), form)
        return _Parsed(records, uncompressed_bytes=len(body), form=form)

    def _import(self, parsed: _Parsed, auth: str | None, strict: bool, request_id: int, reject: Fault | None) -> _Reply:
        if auth is None:
            return _import_error(strict, 401, "Invalid credentials")
        if parsed.records is None:
            return _import_error(strict, parsed.status, parsed.error or "invalid request")
        events = parsed.records
        if not events:
            return _import_error(strict, 400, "request must contain at least one event")
        if len(events) > MAX_EVENTS_PER_REQUEST:
            return _import_error(strict, 400, f"request exceeds max limit of {MAX_EVENTS_PER_REQUEST} events")
        now = time.time()
        failures: list[FailedRecord] = []
        valid: list[dict[str, Any]] = []
        check_size = parsed.uncompressed_bytes >= MAX_EVENT_BYTES
        for index, event in enumerate(events):
            failure = validate_event(index, event, now, check_size=check_size)
            if failure is None and reject is not None and reject.rejects(event):
                failure = FailedRecord(index, event["properties"]["$insert_id"], reject.field, reject.message)
            if failure is None:
                valid.append(_truncated(event))
            else:
                failures.append(failure)
        if valid:  # Mixpanel ingests the valid events of a request even when others fail
            self._store.add_events(request_id, valid)
        if not strict:
            if valid:
                return _Reply.json(200, {"status": 1})
            return _Reply.json(200, {"status": 0, "error": failures[0].message})
        if failures:
            return _Reply.json(
                400,
                {
                    "code": 400,
                    "error": "some data points in the request failed validation",
                    "failed_records": [f.as_json() for f in failures],
                    "num_records_imported": len(valid),
                    "status": "Bad Request",
                },
            )
        return _Reply.json(200, {"code": 200, "num_records_imported": len(valid), "status": "OK"})

    def _engage(
        self,
        request: _Request,
        parsed: _Parsed,
        params: dict[str, str],
        auth: str | None,
        request_id: int,
        reject: Fault | None,
    ) -> _Reply:
        verbose = params.get("verbose", "0")
        if auth is None:
            return _Reply.json(401, {"error": "Invalid credentials", "status": "error"})
        if parsed.records is None:
            return _Reply.json(400, {"error": parsed.error, "status": 0})
        records = parsed.records
        errors: list[tuple[int, str]] = []
        if not records:
            errors.append((0, "Engage API error: no profile updates in the request"))
        elif len(records) > MAX_PROFILE_UPDATES_PER_REQUEST:
            errors.append((0, f"Engage API error: more than {MAX_PROFILE_UPDATES_PER_REQUEST} updates in one request"))
        valid: list[dict[str, Any]] = []
        if not errors:
            authenticated = auth in ("service_account", "project_token")
            for index, record in enumerate(records):
                error = validate_profile_update(record, self.credentials.project_token, authenticated)
                if error is None and reject is not None and reject.rejects(record):
                    error = f"Engage API error: {reject.message}"
                if error is None:
                    valid.append(record)
                else:
                    errors.append((index, error))
        if valid:
            self._store.apply_profile_updates(request_id, valid)
        return self._engage_reply(verbose, params.get("strict") == "1", errors, bool(valid))

    @staticmethod
    def _engage_reply(verbose: str, strict: bool, errors: list[tuple[int, str]], any_valid: bool) -> _Reply:
        """`1`/`0` as text; `verbose=1` a 200 JSON status; `verbose=2` a real 400 on invalid input."""
        if verbose not in ("1", "2"):
            ok = any_valid  # "1 - One or more objects provided are valid"
            return _Reply(200, b"1" if ok else b"0", "text/plain; charset=utf-8")
        payload: dict[str, Any] = {"error": errors[0][1] if errors else None, "status": 0 if errors else 1}
        if strict and errors:
            payload["failed_records"] = [{"index": i, "message": m} for i, m in errors]
        return _Reply.json(400 if errors and verbose == "2" else 200, payload)

    # the page and its JSON

    def _page_or_api(self, request: _Request) -> _Reply:
        routes: dict[str, Callable[[dict[str, str]], Any]] = {
            "/api/events": self._api_events,
            "/api/revenue": lambda _q: self._api_revenue(),
            "/api/profiles": lambda _q: {"profiles": self._api_profiles()},
            "/api/dead-letters": lambda _q: self._api_dead_letters(),
            "/api/requests": lambda _q: {
                "requests": self.requests_log()[-50:][::-1],
                "violations": self.spec_violations(),
            },
            "/api/summary": lambda _q: self._api_summary(),
        }
        if request.path == "/":
            return _Reply(
                200, _PAGE_HTML.encode(), "text/html; charset=utf-8", extra_headers={"Cache-Control": "no-store"}
            )
        if request.path in routes:
            return _Reply.json(200, routes[request.path](request.query))
        if request.path == "/favicon.ico":
            return _Reply(204)
        return _Reply.json(404, {"error": f"no such page: {request.path}"})

    def _api_events(self, query: dict[str, str]) -> dict[str, Any]:
        name, user = query.get("name") or None, (query.get("user") or "").strip().lower()
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 200
        rows = self._store.query(_DEDUPED_EVENTS)
        names = sorted({r["event"] for r in rows})
        matched = [
            r
            for r in reversed(rows)
            if (name is None or r["event"] == name) and (not user or user in r["distinct_id"].lower())
        ]
        return {
            "events": [
                {"seq": r["seq"], "received_at": r["received_at"], "time_ms": r["time_ms"], **_event_json(r)}
                for r in matched[:limit]
            ],
            "names": names,
            "amount_property": self.revenue_view.amount_property,
            "currency_property": self.revenue_view.currency_property,
            "refund_events": list(self.revenue_view.refund_events),
            "matched": len(matched),
            "total": len(rows),
        }

    def _api_revenue(self) -> dict[str, Any]:
        rows = self.revenue()
        return {"rows": rows, "currencies": sorted({r["currency"] for r in rows})}

    def _api_profiles(self) -> list[dict[str, Any]]:
        rows = self._store.query("SELECT * FROM profiles ORDER BY updated_at DESC")
        return [
            {
                "distinct_id": r["distinct_id"],
                "properties": json.loads(r["properties"]),
                "last_seen": r["last_seen"],
                "updated_at": r["updated_at"],
            }
            for r in rows
        ]

    def _api_dead_letters(self) -> dict[str, Any]:
        if self.dead_letters is None:
            return {"connected": False, "items": []}
        try:
            items = self.dead_letters()
        except Exception as exc:  # the page must keep working when the queue is unreachable
            log.warning("dead letters unavailable: %s", exc)
            return {"connected": True, "items": [], "error": f"{type(exc).__name__}: {exc}"}
        return {"connected": True, "items": json.loads(json.dumps(list(items), default=str))}

    def _api_summary(self) -> dict[str, Any]:
        count = self._store.query
        return {
            "project_id": self.credentials.project_id,
            "events": count(_COUNT_DEDUPED_EVENTS)[0]["n"],
            "raw_events": count("SELECT count(*) AS n FROM events")[0]["n"],
            "profiles": count("SELECT count(*) AS n FROM profiles")[0]["n"],
            "requests": count("SELECT count(*) AS n FROM requests")[0]["n"],
            "spec_violations": count("SELECT count(*) AS n FROM spec_violations")[0]["n"],
            "faults_served": self.faults.served,
            "latency_s": self.latency_s,
        }


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
    }


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes, so a small gzip bomb cannot exhaust memory."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, limit)
    if not inflater.eof and len(out) < limit:
        raise EOFError("truncated gzip stream")
    return out


# --------------------------------------------------------------------------------------------- HTTP adapter


class _HTTPServer(ThreadingHTTPServer):
    """Daemon handler threads, and stop() closes keep-alive connections instead of waiting on them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        app: MixpanelServer,
        *,
        sock: socket.socket | None = None,
    ) -> None:
        """Bind `address`, or serve `sock`, a socket already bound and listening."""
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler, bind_and_activate=sock is None)
        if sock is not None:
            self.socket.close()
            self.socket = sock
            self.server_address = sock.getsockname()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    """Thin adapter: HTTP in, `MixpanelServer._dispatch`, HTTP out."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind a client Session
    server_version = "devstack-mixpanel/1"
    timeout = 120  # idle keep-alive connections give their thread back eventually
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._send(_import_error(True, exc.status, str(exc)))
            return
        request = _Request(
            self.command, split.path, dict(parse_qsl(split.query, keep_blank_values=True)), self.headers, body
        )
        try:
            reply = self.server.app._dispatch(request)
        except Exception:
            log.exception("local Mixpanel failed on %s %s", self.command, self.path)
            reply = _Reply.json(500, {"error": "the local Mixpanel server failed; see its log", "status": 0})
        if reply.disconnect:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > _READ_CAP_BYTES:
                    raise _BodyError(413, f"request exceeds max limit of {MAX_REQUEST_BYTES} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise _BodyError(400, "invalid Content-Length") from exc
        if length > _READ_CAP_BYTES:
            raise _BodyError(413, f"request exceeds max limit of {MAX_REQUEST_BYTES} bytes")
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            if reply.body or reply.status != 204:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.extra_headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. its timeout during a slow fault)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


# ----------------------------------------------------------------------------------------------- the page

_PAGE_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Local Mixpanel</title>
<style>
  :root { --bg:#f6f7fb; --card:#fff; --ink:#1d2433; --muted:#6b7385; --line:#e3e6ee; --accent:#5b4fe9;
          --good:#178a52; --bad:#c4372d; --warn:#b7791f; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
  header { background:#1d2433; color:#fff; padding:14px 24px; display:flex; align-items:center; gap:24px; flex-wrap:wrap; }
  header h1 { font-size:18px; margin:0; font-weight:600; }
  header h1 small { color:#aab1c4; font-weight:400; margin-left:8px; }
  .stats { display:flex; gap:18px; flex-wrap:wrap; }
  .stat { font-size:12px; color:#aab1c4; } .stat b { display:block; font-size:17px; color:#fff; font-weight:600; }
  .stat.bad b { color:#ff8a80; }
  .live { margin-left:auto; font-size:12px; color:#aab1c4; display:flex; align-items:center; gap:8px; }
  .live button { background:#2e3850; color:#fff; border:1px solid #465273; border-radius:6px; padding:4px 10px; cursor:pointer; }
  main { padding:20px 24px; display:grid; grid-template-columns: minmax(0,3fr) minmax(0,2fr); gap:20px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 18px; min-width:0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size:15px; margin:0 0 12px; display:flex; align-items:baseline; gap:10px; }
  h2 .count { color:var(--muted); font-weight:400; font-size:13px; }
  .filters { display:flex; gap:10px; margin-bottom:10px; flex-wrap:wrap; }
  .filters select, .filters input { padding:6px 8px; border:1px solid var(--line); border-radius:6px; font:inherit; min-width:180px; }
  table { width:100%; border-collapse:collapse; }
  th { text-align:left; font-weight:600; color:var(--muted); font-size:12px; border-bottom:1px solid var(--line); padding:6px 8px; }
  td { border-bottom:1px solid var(--line); padding:6px 8px; vertical-align:top; }
  tr:last-child td { border-bottom:none; }
  .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12px; }
  .muted { color:var(--muted); }
  .pill { display:inline-block; padding:1px 8px; border-radius:999px; background:#eeecfd; color:var(--accent); font-size:12px; white-space:nowrap; }
  .money { font-variant-numeric: tabular-nums; white-space:nowrap; }
  .neg { color:var(--bad); }
  details summary { cursor:pointer; color:var(--accent); font-size:12px; }
  pre { margin:6px 0 0; background:#f3f4f8; border-radius:6px; padding:8px; overflow:auto; max-height:260px; font-size:12px; }
  .charts { display:flex; flex-wrap:wrap; gap:16px; }
  .chart { flex:1 1 320px; min-width:280px; border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
  .chart h3 { margin:0 0 4px; font-size:14px; display:flex; justify-content:space-between; }
  .chart svg { width:100%; height:180px; display:block; }
  .profiles { display:grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap:12px; }
  .profile { border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
  .profile h3 { margin:0 0 6px; font-size:13px; word-break:break-all; }
  .profile dl { margin:0; display:grid; grid-template-columns:auto 1fr; gap:2px 10px; font-size:12px; }
  .profile dt { color:var(--muted); } .profile dd { margin:0; word-break:break-word; }
  .profile .seen { margin-top:6px; font-size:12px; }
  .empty { color:var(--muted); font-style:italic; padding:8px 0; }
  .notice { padding:8px 12px; border-radius:8px; background:#fff4e5; color:var(--warn); }
  .status-2 { color:var(--good); } .status-4, .status-5 { color:var(--bad); }
  .violation { color:var(--bad); }
  @media (max-width: 1000px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <h1>Local Mixpanel <small id="project"></small></h1>
  <div class="stats" id="stats"></div>
  <div class="live"><span id="updated">loading…</span><button id="pause" type="button">Pause</button></div>
</header>
<main>
  <section class="wide" id="revenue-section">
    <h2>Revenue per day <span class="count">net of refunds, from deduplicated events, per currency (UTC days)</span></h2>
    <div class="charts" id="charts"></div>
  </section>
  <section id="events-section">
    <h2>Events <span class="count" id="events-count"></span></h2>
    <div class="filters">
      <select id="filter-name" aria-label="Event name"><option value="">All events</option></select>
      <input id="filter-user" type="search" placeholder="User contains…" aria-label="User">
    </div>
    <table id="events">
      <thead><tr><th>Time (UTC)</th><th>Event</th><th>User</th><th>Revenue</th><th>Properties</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="profiles-section">
    <h2>Profiles <span class="count" id="profiles-count"></span></h2>
    <div class="profiles" id="profiles"></div>
  </section>
  <section id="dead-letters-section">
    <h2>Dead letters <span class="count" id="dead-letters-count"></span></h2>
    <div id="dead-letters"></div>
  </section>
  <section id="requests-section">
    <h2>Recent requests <span class="count" id="requests-count"></span></h2>
    <div id="violations"></div>
    <table id="requests">
      <thead><tr><th>#</th><th>Path</th><th>Status</th><th>Records</th><th>Fault</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<script>
"use strict";
const REFRESH_MS = 3000;
const PALETTE = ["#5b4fe9", "#0f9d8a", "#e0803a", "#c2418c", "#3a86d9", "#8a9a1f", "#7d5ba6", "#d14b4b"];
const SVG_NS = "http://www.w3.org/2000/svg";
const openDetails = new Set();
let paused = false, timer = null;

// Build DOM with textContent only: event properties come from webhooks and are never trusted as HTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
const fmtTime = ms => new Date(ms).toISOString().replace("T", " ").slice(0, 19);
function fmtMoney(amount, currency) {
  try { return new Intl.NumberFormat("en", {style: "currency", currency}).format(amount); }
  catch (e) { return amount.toFixed(2) + " " + currency; }
}
const fmtValue = v => (typeof v === "string" ? v : JSON.stringify(v));
async function getJSON(url) { const r = await fetch(url, {cache: "no-store"}); return r.json(); }

function renderStats(s) {
  document.getElementById("project").textContent = "project " + s.project_id;
  const faults = Object.values(s.faults_served).reduce((a, b) => a + b, 0);
  const items = [["Events", s.events], ["Ingested", s.raw_events], ["Profiles", s.profiles],
                 ["Requests", s.requests], ["Faults served", faults], ["Spec violations", s.spec_violations]];
  const box = document.getElementById("stats");
  box.replaceChildren(...items.map(([label, n]) =>
    el("div", {class: "stat" + (label === "Spec violations" && n > 0 ? " bad" : "")}, el("b", {text: n}), label)));
}

function renderEvents(data) {
  const select = document.getElementById("filter-name");
  const chosen = select.value;
  const names = data.names.includes(chosen) || !chosen ? data.names : [...data.names, chosen];
  select.replaceChildren(el("option", {value: "", text: "All events"}),
                         ...names.map(n => el("option", {value: n, text: n})));
  select.value = chosen;
  document.getElementById("events-count").textContent =
    data.matched === data.total ? `${data.total} (newest first)` : `${data.matched} of ${data.total} (newest first)`;
  const body = document.querySelector("#events tbody");
  if (!data.events.length) {
    body.replaceChildren(el("tr", {}, el("td", {colspan: 5, class: "empty", text: "No events yet."})));
    return;
  }
  body.replaceChildren(...data.events.map(e => {
    const p = e.properties, key = String(e.seq);
    const value = p[data.amount_property], cur = p[data.currency_property];
    const refund = data.refund_events.includes(e.event);
    const amount = typeof value === "number" && typeof cur === "string" && cur
      ? fmtMoney(refund ? -Math.abs(value) : value, cur) : "";
    const details = el("details", {}, el("summary", {text: Object.keys(p).length + " properties"}),
                       el("pre", {class: "mono", text: JSON.stringify(p, null, 2)}));
    details.open = openDetails.has(key);
    details.addEventListener("toggle", () => details.open ? openDetails.add(key) : openDetails.delete(key));
    return el("tr", {"data-event": e.event, "data-user": p.distinct_id, "data-insert-id": p["$insert_id"]},
      el("td", {class: "mono", text: fmtTime(e.time_ms)}),
      el("td", {}, el("span", {class: "pill", text: e.event})),
      el("td", {class: "mono", text: p.distinct_id === "" ? "(no user)" : p.distinct_id}),
      el("td", {class: "money" + (refund ? " neg" : ""), text: amount}),
      el("td", {}, details));
  }));
}

function renderRevenue(data) {
  const box = document.getElementById("charts");
  if (!data.rows.length) { box.replaceChildren(el("div", {class: "empty", text: "No revenue events yet."})); return; }
  const days = [...new Set(data.rows.map(r => r.day))].sort();
  box.replaceChildren(...data.currencies.map((cur, i) => chart(cur, PALETTE[i % PALETTE.length], days,
                                                              data.rows.filter(r => r.currency === cur))));
}

// One small chart per currency: amounts in different currencies never share an axis.
function chart(currency, color, days, rows) {
  const W = 480, H = 180, L = 64, R = 10, T = 12, B = 28;
  const byDay = Object.fromEntries(rows.map(r => [r.day, r]));
  const top = Math.max(1e-9, ...rows.map(r => r.gross));
  const bottom = Math.max(0, ...rows.map(r => r.refunds));
  const span = top + bottom, plotH = H - T - B;
  const y = v => T + (top - v) / span * plotH;
  const slot = (W - L - R) / days.length, bw = Math.max(4, Math.min(38, slot * 0.6));
  const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "data-currency": currency,
                           "aria-label": `Revenue per day in ${currency}`});
  for (const v of [top, top / 2, 0, -bottom].filter((v, i, a) => a.indexOf(v) === i)) {
    root.append(svg("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: v === 0 ? "#9aa1b3" : "#eceef4"}));
    root.append(svg("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7385"},
                    fmtMoney(v, currency)));
  }
  days.forEach((day, i) => {
    const x = L + i * slot + (slot - bw) / 2, r = byDay[day];
    if (r && r.gross > 0) {
      const bar = svg("rect", {x, y: y(r.gross), width: bw, height: y(0) - y(r.gross), rx: 2, fill: color,
                               class: "bar", "data-currency": currency, "data-day": day});
      bar.append(svg("title", {}, `${day}: gross ${fmtMoney(r.gross, currency)}, refunds ${fmtMoney(r.refunds, currency)}, net ${fmtMoney(r.net, currency)}`));
      root.append(bar);
    }
    if (r && r.refunds > 0) {
      const bar = svg("rect", {x, y: y(0), width: bw, height: y(-r.refunds) - y(0), rx: 2, fill: "#e2685f",
                               class: "bar refund", "data-currency": currency, "data-day": day});
      bar.append(svg("title", {}, `${day}: refunds ${fmtMoney(r.refunds, currency)}`));
      root.append(bar);
    }
    if (days.length <= 14 || i % Math.ceil(days.length / 14) === 0)
      root.append(svg("text", {x: x + bw / 2, y: H - 8, "text-anchor": "middle", "font-size": 10, fill: "#6b7385"}, day.slice(5)));
  });
  const net = rows.reduce((a, r) => a + r.net, 0);
  return el("div", {class: "chart"},
    el("h3", {}, el("span", {text: currency}), el("span", {class: "money" + (net < 0 ? " neg" : ""), text: "net " + fmtMoney(net, currency)})),
    root);
}

function renderProfiles(data) {
  document.getElementById("profiles-count").textContent = data.profiles.length;
  const box = document.getElementById("profiles");
  if (!data.profiles.length) { box.replaceChildren(el("div", {class: "empty", text: "No profiles yet."})); return; }
  box.replaceChildren(...data.profiles.map(p => {
    const dl = el("dl");
    for (const [k, v] of Object.entries(p.properties)) dl.append(el("dt", {text: k}), el("dd", {text: fmtValue(v)}));
    const seen = p.last_seen ? "last seen " + fmtTime(p.last_seen * 1000) : "last seen not updated ($ignore_time)";
    return el("div", {class: "profile", "data-distinct-id": p.distinct_id},
              el("h3", {class: "mono", text: p.distinct_id}), dl, el("div", {class: "muted seen", text: seen}));
  }));
}

function renderDeadLetters(data) {
  const box = document.getElementById("dead-letters"), count = document.getElementById("dead-letters-count");
  if (!data.connected) { count.textContent = ""; box.replaceChildren(el("div", {class: "empty", text: "not connected"})); return; }
  if (data.error) { count.textContent = ""; box.replaceChildren(el("div", {class: "notice", text: "Could not read the queue: " + data.error})); return; }
  count.textContent = data.items.length;
  if (!data.items.length) { box.replaceChildren(el("div", {class: "empty", text: "The dead-letter queue is empty."})); return; }
  box.replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, el("th", {text: "Reason"}), el("th", {text: "Message"}))),
    el("tbody", {}, ...data.items.map(item => {
      const reason = fmtValue(item.reason || item.error || item.failure || "(no reason given)");
      const detail = item.detail ? fmtValue(item.detail) : "";
      const about = [item.provider, item.event_type].filter(Boolean).join(" · ");
      const label = item.event_id || item.id || item.message_id || "message";
      return el("tr", {class: "dead-letter"},
        el("td", {}, el("div", {text: reason}), detail ? el("div", {class: "muted", text: detail}) : null),
        el("td", {}, about ? el("div", {class: "muted", text: about}) : null,
           el("details", {}, el("summary", {text: label}),
              el("pre", {class: "mono", text: JSON.stringify(item, null, 2)}))));
    }))));
}

function renderRequests(data) {
  document.getElementById("requests-count").textContent = data.requests.length ? "last " + data.requests.length : "";
  const v = document.getElementById("violations");
  v.replaceChildren(...data.violations.slice(-10).map(x =>
    el("div", {class: "violation mono", text: `spec: request #${x.request_id} ${x.operation} ${x.where}: ${x.message}`})));
  const body = document.querySelector("#requests tbody");
  body.replaceChildren(...data.requests.map(r => el("tr", {},
    el("td", {class: "mono", text: r.id}), el("td", {class: "mono", text: r.path}),
    el("td", {class: "status-" + String(r.status || 0)[0], text: r.status === null ? "closed" : r.status}),
    el("td", {text: r.records === null ? "" : r.records}), el("td", {text: r.fault || ""}))));
}

async function refresh() {
  const name = document.getElementById("filter-name").value, user = document.getElementById("filter-user").value;
  const q = new URLSearchParams({name, user});
  try {
    const [summary, events, revenue, profiles, dead, requests] = await Promise.all([
      getJSON("/api/summary"), getJSON("/api/events?" + q), getJSON("/api/revenue"), getJSON("/api/profiles"),
      getJSON("/api/dead-letters"), getJSON("/api/requests")]);
    renderStats(summary); renderEvents(events); renderRevenue(revenue); renderProfiles(profiles);
    renderDeadLetters(dead); renderRequests(requests);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "1";
  } catch (e) {
    document.getElementById("updated").textContent = "server unreachable, retrying…";
  }
  history.replaceState(null, "", "?" + new URLSearchParams([...q].filter(([, v]) => v)));
}
function schedule() { clearTimeout(timer); if (!paused) timer = setTimeout(async () => { await refresh(); schedule(); }, REFRESH_MS); }

const params = new URLSearchParams(location.search);
const nameBox = document.getElementById("filter-name"), userBox = document.getElementById("filter-user");
if (params.get("name")) nameBox.append(el("option", {value: params.get("name"), text: params.get("name")}));
nameBox.value = params.get("name") || ""; userBox.value = params.get("user") || "";
let typing = null;
nameBox.addEventListener("change", () => { refresh(); schedule(); });
userBox.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { refresh(); schedule(); }, 200); });
document.getElementById("pause").addEventListener("click", e => {
  paused = !paused; e.target.textContent = paused ? "Resume" : "Pause"; if (!paused) { refresh(); } schedule();
});
refresh().then(schedule);
</script>
</body>
</html>
"""


# --------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """`python -m devstack.mixpanel_server --port 3001 --db PATH`: serve until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m devstack.mixpanel_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--db", default=":memory:", help="SQLite file that keeps what arrived across restarts")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every ingestion request")
    parser.add_argument("--project-id", default=DEMO_CREDENTIALS.project_id)
    parser.add_argument("--username", default=DEMO_CREDENTIALS.username, help="service account username")
    parser.add_argument("--secret", default=DEMO_CREDENTIALS.secret, help="service account secret")
    parser.add_argument("--token", default=DEMO_CREDENTIALS.project_token, help="project token")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    credentials = Credentials(args.project_id, args.username, args.secret, args.token)
    server = MixpanelServer(args.host, args.port, args.db, credentials, latency_s=args.latency)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with server:
        log.info(
            "local Mixpanel at %s (page: %s/), project_id=%s, db=%s", server.url, server.url, args.project_id, args.db
        )
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
