"""Scripted failures of the local Mixpanel: what a test makes the next ingestion request meet, and its answer.

Tests reach Mixpanel only over HTTP, so a 429, a gateway's HTML 503, a timeout or a dropped connection is
scripted here and served by the real server, never patched into the client.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

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
        if path is not None and path not in INGESTION_PATHS:
            raise ValueError(f"fault path {path!r}: expected None or one of {INGESTION_PATHS}")
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
