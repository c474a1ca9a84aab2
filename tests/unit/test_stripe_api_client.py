"""adapters/stripe_api.py: the one Stripe client, and the backoff on the 429s stripe-python does not retry."""

from __future__ import annotations

import time

import pytest
import stripe
from revenue_webhooks.adapters.stripe_api import STRIPE_API_BASE, is_api_key, rate_limited, stripe_client


def test_a_plain_rate_limit_is_retried_with_growing_pauses_then_answered() -> None:
    pauses: list[float] = []
    answers = iter([stripe.RateLimitError("Too many requests"), stripe.RateLimitError("Too many requests"), "page"])

    def call() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert rate_limited(call, base_s=1.0, sleep=pauses.append) == "page"
    assert len(pauses) == 2 and 0.5 <= pauses[0] <= 1.0 and 1.0 <= pauses[1] <= 2.0


def test_it_gives_up_after_its_attempts_or_before_its_deadline() -> None:
    calls: list[int] = []

    def always_limited() -> None:
        calls.append(1)
        raise stripe.RateLimitError("Too many requests")

    with pytest.raises(stripe.RateLimitError):
        rate_limited(always_limited, attempts=3, sleep=lambda s: None)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(stripe.RateLimitError):
        rate_limited(always_limited, base_s=5.0, deadline=time.monotonic() + 1.0, sleep=lambda s: None)
    assert len(calls) == 1, "a pause that would pass the deadline is not taken"


def test_other_errors_are_not_its_business() -> None:
    def refused() -> None:
        raise stripe.AuthenticationError("Invalid API Key provided")

    with pytest.raises(stripe.AuthenticationError):
        rate_limited(refused, sleep=lambda s: pytest.fail("no pause for a refused key"))


def test_the_client_reads_the_given_base_or_stripes() -> None:
    assert (
        stripe_client("sk_test_x", "http://127.0.0.1:3002/")._requestor.base_addresses["api"] == "http://127.0.0.1:3002"
    )
    assert stripe_client("sk_test_x")._requestor.base_addresses["api"] == STRIPE_API_BASE


@pytest.mark.parametrize(
    ("value", "key"),
    [("rk_live_abc", True), ("sk_test_abc", True), ("none", False), ("pk_live_abc", False), ("rk_live_", False)],
)
def test_only_secret_and_restricted_keys_are_keys(value: str, key: bool) -> None:
    assert is_api_key(value) is key
