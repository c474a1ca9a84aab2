"""What the end-to-end tests share: one `make demo` run for all that read it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from reader_shell import make_is_ready, reader_environment

from devstack.template import ROOT

DEMO_TIMEOUT_S = 90  # the demo itself keeps under ~60 s: two batching windows of 10 s plus start-up


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """`make demo` as the README writes it (run once for the demo's tests and the README's)."""
    env = reader_environment(tmp_path_factory.mktemp("demo"))
    command = ["make", "demo"] if not make_is_ready() else [sys.executable, "-m", "devstack.cli", "demo"]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False
    )
