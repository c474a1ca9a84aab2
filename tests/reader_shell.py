"""The shell a reader runs make in, for the tests that run the README's commands as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devstack.template import ROOT

VENV = Path(sys.prefix)
# What a make running this suite (`make test`) passes to its children: a reader's shell has none of it.
MAKE_STATE = frozenset({"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR"})


def reader_environment(state: Path, **extra: str) -> dict[str, str]:
    """A reader's shell: no AWS, Mixpanel or webhook secrets of this machine; make uses this interpreter's venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MIXPANEL_", "PYTEST_"))
        and not k.endswith("_WEBHOOK_SECRET")
        and k not in MAKE_STATE
    }
    return {**env, "VENV": str(VENV), "DEVSTACK_DIR": str(state), **extra}


def make_is_ready() -> str:
    """Why make's commands cannot run here, or "" when they can: the venv is built, as `make test` leaves it."""
    stale = subprocess.run(
        ["make", "-q", f"{VENV}/.installed"], cwd=ROOT, env=reader_environment(ROOT), capture_output=True, check=False
    )
    if stale.returncode != 0:
        return f"the venv {VENV} is not make's or is older than pyproject.toml: run `make venv` first"
    return ""
