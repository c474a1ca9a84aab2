"""Stripe's API through the official `stripe` library: the one place a `stripe.StripeClient` is built, and a
backoff on Stripe's rate limit.

Everything that reads Stripe (catch-up, the forwarder's payment lookups, the operator tools' backfill and
reconcile) takes its client from `stripe_client`, so the key, the base address (STRIPE_API_BASE: the local
stand-in, or a proxy), the timeouts and the library's own retries are chosen once.

stripe-python (16.1.0) retries connection errors, timeouts, 409s and 5xx itself (`max_network_retries`), and a
429 only when Stripe adds `Stripe-Should-Retry: true` (lock timeouts); a plain rate limit ("Too many
requests") is raised at once as `stripe.RateLimitError`. Stripe's docs ask clients to back off and retry
those, so `rate_limited` does, with exponential, jittered pauses inside a deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

STRIPE_API_BASE = "https://api.stripe.com"
KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")

T = TypeVar("T")


def stripe_client(api_key: str, api_base: str = "", *, timeout_s: float = 30.0, network_retries: int = 3) -> Any:
    """A `stripe.StripeClient` for `api_key` at `api_base` (default Stripe's API), with the library's retries of
    connection errors, timeouts and 5xx (`network_retries`) and a `timeout_s` per HTTP request."""
    import stripe

    return stripe.StripeClient(
        api_key,
        base_addresses={"api": (api_base or STRIPE_API_BASE).rstrip("/")},
        max_network_retries=network_retries,
        http_client=stripe.RequestsClient(timeout=timeout_s),
    )


def is_api_key(value: str) -> bool:
    """Whether `value` looks like a Stripe secret or restricted key (sk_live_, rk_test_...)."""
    return value.startswith(KEY_PREFIXES) and len(value) > len("sk_live_")


def key_mode(api_key: str) -> str:
    """`live` or `test`, from the key's prefix (sk_live_, rk_test_...); ValueError for anything else."""
    for prefix in KEY_PREFIXES:
        if api_key.startswith(prefix):
            return prefix[3:-1]
    raise ValueError(
        "not a Stripe secret or restricted key: expected sk_live_..., rk_live_..., sk_test_... or rk_test_..."
    )


def backoff_s(attempt: int, base_s: float, cap_s: float) -> float:
    """The pause before retry `attempt` (0, 1, ...): exponential from `base_s`, at most `cap_s`, jittered."""
    return min(cap_s, base_s * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311  # nosec B311


def rate_limited(
    call: Callable[[], T],
    *,
    attempts: int = 6,
    base_s: float = 0.5,
    cap_s: float = 8.0,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retried after `stripe.RateLimitError` with exponential, jittered pauses.

    Gives up (re-raising the 429) after `attempts` calls, or when the next pause would pass `deadline`
    (a `time.monotonic()` value): a caller with a Lambda deadline keeps time to save its progress.
    """
    import stripe

    for attempt in range(attempts):
        try:
            return call()
        except stripe.RateLimitError:
            delay = backoff_s(attempt, base_s, cap_s)
            if attempt == attempts - 1 or (deadline is not None and time.monotonic() + delay > deadline):
                raise
            sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")
