"""What several integration test files share (a module may define its own fixture under the same name): a moto
server (one per module: moto's state is per process anyway), a pipeline, the local Stripe API over an account."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from harness import Pipeline

from devstack.stripe_api import StripeAccount, StripeApiServer


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's server mode on 127.0.0.1, reached by boto3 over HTTP as AWS would be."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


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


@pytest.fixture(scope="module")
def quick_pipeline() -> Iterator[Pipeline]:
    """One pipeline for the module's tests (each resets it) whose unanswered messages come back after a second."""
    running = Pipeline(visibility_timeout_s=1)
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
