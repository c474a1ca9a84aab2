"""Scripted failures of the local Stripe API, shaped like Stripe's own.

What the `stripe` library does with each (stripe-python 16.1.0, `_http_client._should_retry`): it retries
connection errors, 409 and every 5xx, and a 429 only when the answer carries `Stripe-Should-Retry: true`
(Stripe sends that on lock timeouts). A rate-limit 429 carries no such header and no `Retry-After`, so the
library raises `RateLimitError` at once: the caller must back off itself (stripe-node #1110: by design).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["http", "slow", "disconnect"]
RANDOM_FAULT_NAMES = ("rate_limit", "lock_timeout", "500", "502", "503", "slow", "disconnect")
_SERVER_ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True)
class Fault:
    """One failure for the next matching request (`path` is a prefix such as "/v1/invoices"; None: any).

    Build them with `Fault.rate_limited()`, `Fault.lock_timeout()`, `Fault.server_error(500|502|503)`,
    `Fault.slow(seconds)` (then answer normally: a client with a shorter timeout gives up) and
    `Fault.disconnect()` (close the connection without an answer).
    """

    kind: FaultKind
    name: str
    status: int = 0
    seconds: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    error: Mapping[str, str] = field(default_factory=dict)
    path: str | None = None

    @classmethod
    def rate_limited(cls, *, path: str | None = None) -> Fault:
        return cls(
            "http",
            "rate_limit",
            429,
            headers={"Stripe-Rate-Limited-Reason": "global-rate"},
            error=RATE_LIMIT_ERROR,
            path=path,
        )

    @classmethod
    def lock_timeout(cls, *, path: str | None = None) -> Fault:
        error = {
            "type": "invalid_request_error",
            "code": "lock_timeout",
            "message": "This object cannot be accessed right now because another API request or Stripe process is "
            "currently accessing it. If you see this error intermittently, retry the request.",
        }
        return cls("http", "lock_timeout", 429, headers={"Stripe-Should-Retry": "true"}, error=error, path=path)

    @classmethod
    def server_error(cls, status: int = 500, *, path: str | None = None) -> Fault:
        if status not in _SERVER_ERROR_STATUSES:
            raise ValueError(f"server error status {status}: expected one of {_SERVER_ERROR_STATUSES}")
        error = {"type": "api_error", "message": "An unknown error occurred"}
        return cls("http", str(status), status, error=error, path=path)

    @classmethod
    def slow(cls, seconds: float, *, path: str | None = None) -> Fault:
        if seconds <= 0:
            raise ValueError("a slow fault needs seconds > 0")
        return cls("slow", "slow", seconds=seconds, path=path)

    @classmethod
    def disconnect(cls, *, path: str | None = None) -> Fault:
        return cls("disconnect", "disconnect", path=path)

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


RATE_LIMIT_ERROR = {
    "type": "invalid_request_error",
    "code": "rate_limit",
    "message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
}


def _by_name(name: str, path: str | None, slow_s: float) -> Fault:
    if name == "rate_limit":
        return Fault.rate_limited(path=path)
    if name == "lock_timeout":
        return Fault.lock_timeout(path=path)
    if name == "slow":
        return Fault.slow(slow_s, path=path)
    if name == "disconnect":
        return Fault.disconnect(path=path)
    return Fault.server_error(int(name), path=path)


class FaultPlan:
    """Queued faults, used one per matching request, then an optional reproducible random mode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self._rng: random.Random | None = None
        self._rates: list[tuple[str, float]] = []
        self._random_path: str | None = None
        self._slow_s = 0.0
        self._served: dict[str, int] = {}

    def push(self, *faults: Fault) -> None:
        with self._lock:
            self._queue.extend(faults)

    def random(self, seed: int, rates: Mapping[str, float], *, path: str | None = None, slow_s: float = 5.0) -> None:
        """Fail requests at random: `rates` maps names of `RANDOM_FAULT_NAMES` to a probability per request."""
        unknown = set(rates) - set(RANDOM_FAULT_NAMES)
        if unknown:
            raise ValueError(f"unknown fault names {sorted(unknown)}: expected some of {RANDOM_FAULT_NAMES}")
        if any(rate < 0 for rate in rates.values()) or sum(rates.values()) > 1:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        with self._lock:
            self._rng = random.Random(seed)  # noqa: S311 - reproducible test faults, not cryptography
            self._rates = list(rates.items())
            self._random_path = path
            self._slow_s = slow_s

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rng = None
            self._rates = []

    @property
    def served(self) -> dict[str, int]:
        """How many of each fault were served, by `Fault.name`."""
        with self._lock:
            return dict(self._served)

    def take(self, path: str) -> Fault | None:
        with self._lock:
            fault = next((f for f in self._queue if f.matches(path)), None)
            if fault is not None:
                self._queue.remove(fault)
            elif self._rng is not None and (self._random_path is None or path.startswith(self._random_path)):
                roll, cumulative = self._rng.random(), 0.0
                for name, rate in self._rates:
                    cumulative += rate
                    if roll < cumulative:
                        fault = _by_name(name, path, self._slow_s)
                        break
            if fault is not None:
                self._served[fault.name] = self._served.get(fault.name, 0) + 1
            return fault
