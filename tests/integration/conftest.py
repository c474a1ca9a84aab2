"""Fixtures several integration modules share (a module may define its own under the same name)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import Pipeline

from devstack.stripe_api import StripeAccount, StripeApiServer


@pytest.fixture(scope="module")
def shared() -> Iterator[Pipeline]:
    """One pipeline for the module's tests (each resets it). A refund naming its customer waits for its payment as
    long as one naming nobody: these tests shuffle a payment up to the whole history after its refund, and
    compare events byte for byte (REFUND_WAIT_DELIVERIES)."""
    running = Pipeline(visibility_timeout_s=1, extra_env={"REFUND_WAIT_DELIVERIES": "5"})
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def api(account: StripeAccount) -> Iterator[StripeApiServer]:
    """The local Stripe API over the module's `account`, every answer checked against Stripe's spec."""
    with StripeApiServer(account, read_limits=None, validate_spec=True) as server:
        yield server
    assert server.spec_violations() == []
