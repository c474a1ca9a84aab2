"""`make dev` and `sam local`: loopback only unless SAM_LOCAL asks, and then only on a real bridge.

The stack with SAM_LOCAL on docker's bridge, and `sam local` against it, is `make sam-local-test`
(tests/sam_local/), which needs Docker and root.
"""

from __future__ import annotations

import io
import socket
import sys
import uuid
from pathlib import Path

import pytest

from devstack.aws import free_port
from devstack.sam_env import ENV_FILE
from devstack.stack import LocalStack, Options, StackError


def _stack(tmp_path: Path, **options: object) -> LocalStack:
    return LocalStack(
        Options(
            port=free_port(),
            mixpanel_port=0,
            state_dir=tmp_path,
            stack_name=f"t{uuid.uuid4().hex[:10]}",
            persist_secrets=False,
            **options,  # type: ignore[arg-type]
        ),
        out=io.StringIO(),
    )


def test_without_sam_local_nothing_but_loopback_and_no_env_file(tmp_path: Path) -> None:
    stale = tmp_path / ENV_FILE
    stale.write_text('{"ReceiverFunction": {"AWS_ENDPOINT_URL": "http://172.17.0.1:1"}}')  # a previous run's ports
    with _stack(tmp_path) as stack:
        assert not stale.exists() and stack.sam_env_path is None
        assert "make dev SAM_LOCAL=1" in stack.banner()
        assert stack.moto is not None and stack.moto.endpoint.startswith("http://127.0.0.1:")


@pytest.mark.skipif(sys.platform != "linux", reason="the bridge check is Linux's (Docker Desktop needs none)")
def test_sam_local_refuses_an_interface_that_is_not_a_bridge_and_frees_its_ports(tmp_path: Path) -> None:
    stack = _stack(tmp_path, sam_local=True, environ={"DOCKER_BRIDGE": "lo"})
    with pytest.raises(StackError, match="SAM_LOCAL: lo is not a bridge"):
        stack.start()
    with socket.socket() as probe:  # the API's port was never taken, or was given back
        probe.bind(("127.0.0.1", stack.options.port))
    assert not (tmp_path / ENV_FILE).exists()
