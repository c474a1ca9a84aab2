"""Scripted failures of the local Mixpanel: what a test makes the next ingestion request meet, and its answer.

Tests reach Mixpanel only over HTTP, so a 429, a gateway's HTML 503, a timeout or a dropped connection is
scripted here and served by the real server, never patched into the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..fault_plan import FaultPlan as BaseFaultPlan
from .messages import REASONS, Reply, import_error
from .rules import INGESTION_PATHS, MAX_REQUEST_BYTES

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
        if self.path is not None and self.path not in INGESTION_PATHS:
            raise ValueError(f"fault path {self.path!r}: expected None or one of {INGESTION_PATHS}")

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


class FaultPlan(BaseFaultPlan[Fault]):
    """The local Mixpanel's scripted faults: for /import and /engage (None: either)."""

    NAMES = RANDOM_FAULT_NAMES

    def build(self, name: str, path: str, slow_s: float) -> Fault:
        if name == "slow":
            return Fault.slow(slow_s, path=path)
        if name == "disconnect":
            return Fault.disconnect(path=path)
        return Fault.http(int(name), path=path)

    def matches(self, fault: Fault, path: str) -> bool:
        return fault.path in (None, path)

    def check_scope(self, scope: str | None) -> None:
        if scope is not None and scope not in INGESTION_PATHS:
            raise ValueError(f"fault path {scope!r}: expected None or one of {INGESTION_PATHS}")


_PROXY_ERROR_PAGE = "<html><head><title>{code} {phrase}</title></head><body><h1>{code} {phrase}</h1></body></html>"


_FAULT_MESSAGES = {
    500: "Internal Server Error",
    429: "Project exceeded rate limits. Please retry the request with exponential backoff.",
    413: f"request exceeds max limit of {MAX_REQUEST_BYTES} bytes",
    401: "Invalid credentials",
}


def fault_reply(status: int, path: str, strict: bool) -> Reply:
    """What Mixpanel answers with `status`: JSON from the API, or a proxy's HTML page for 502/503."""
    if status in (502, 503):
        # These come from the load balancer in front of the API: the body is not JSON, and clients must cope.
        page = _PROXY_ERROR_PAGE.format(code=status, phrase=REASONS[status])
        return Reply(status, page.encode(), "text/html; charset=UTF-8")
    message = _FAULT_MESSAGES[status]
    if path == "/engage" and status == 401:
        return Reply.json(401, {"error": message, "status": "error"})
    return import_error(strict and path == "/import", status, message)
