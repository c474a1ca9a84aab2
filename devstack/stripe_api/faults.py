"""Scripted failures of the local Stripe API, shaped like Stripe's own.

What the `stripe` library does with each (stripe-python 16.1.0, `_http_client._should_retry`): it retries
connection errors, 409 and every 5xx, and a 429 only when the answer carries `Stripe-Should-Retry: true`
(Stripe sends that on lock timeouts). A rate-limit 429 carries no such header and no `Retry-After`, so the
library raises `RateLimitError` at once: the caller must back off itself (stripe-node #1110: by design).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..fault_plan import FaultPlan as BaseFaultPlan

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


class FaultPlan(BaseFaultPlan[Fault]):
    """The local Stripe API's scripted faults: `path` is a prefix ("/v1/invoices"), None any request."""

    NAMES = RANDOM_FAULT_NAMES

    def build(self, name: str, path: str, slow_s: float) -> Fault:
        return _by_name(name, path, slow_s)

    def matches(self, fault: Fault, path: str) -> bool:
        return fault.matches(path)

    def in_scope(self, scope: str | None, path: str) -> bool:
        return scope is None or path.startswith(scope)
