"""What the end-to-end tests share: the shell a reader runs make in, and one `make demo` run for all that read it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.template import ROOT

VENV = Path(sys.prefix)
DEMO_TIMEOUT_S = 90  # the demo itself keeps under ~60 s: two batching windows of 10 s plus start-up


def reader_environment(state: Path, **extra: str) -> dict[str, str]:
    """A reader's shell: no AWS, Mixpanel or webhook secrets of this machine; make uses this interpreter's venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MIXPANEL_", "PYTEST_")) and not k.endswith("_WEBHOOK_SECRET")
    }
    return {**env, "VENV": str(VENV), "DEVSTACK_DIR": str(state), **extra}


def make_is_ready() -> str:
    """ "" when make's commands find this venv built (as `make test` leaves it), else why not."""
    stale = subprocess.run(
        ["make", "-q", f"{VENV}/.installed"], cwd=ROOT, env=reader_environment(ROOT), capture_output=True, check=False
    )
    if stale.returncode != 0:
        return f"the venv {VENV} is not make's or is older than pyproject.toml: run `make venv` first"
    return ""


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """`make demo` as the README writes it (run once for the demo's tests and the README's)."""
    env = reader_environment(tmp_path_factory.mktemp("demo"))
    command = ["make", "demo"] if not make_is_ready() else [sys.executable, "-m", "devstack.cli", "demo"]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False
    )
