"""What several integration test files share: a moto server (one per module: moto's state is per process anyway)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


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
