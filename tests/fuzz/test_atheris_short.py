"""The atheris harness, short: a few thousand coverage-guided inputs through the receiver in CI.

The long run is `make fuzz-atheris FUZZ_SECONDS=600` (part of `make reliability`); its figures are in
docs/reliability.md. atheris has a cp313 wheel on PyPI for Linux, so this runs in the project venv.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris installs from a Linux wheel only (pyproject: sys_platform == 'linux')")

HARNESS = Path(__file__).with_name("atheris_receiver.py")
RUNS = 2000


def test_a_short_coverage_guided_run_breaks_no_property(tmp_path: Path) -> None:
    # A failing input is written where libFuzzer is told (by default the working directory: the repository).
    child = subprocess.run(
        [sys.executable, str(HARNESS), f"-runs={RUNS}", "-seed=1", "-max_len=4096", f"-artifact_prefix={tmp_path}/"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = child.stdout + child.stderr
    assert child.returncode == 0, output[-4000:]
    stats = re.findall(r"atheris receiver fuzz: inputs (\d+);.*enqueued (\d+)", output)
    assert stats, output[-2000:]
    inputs, enqueued = (int(n) for n in stats[-1])
    assert inputs >= RUNS - 1 and enqueued > 0  # the enqueue path was reached, with valid signatures only
    print(f"\n{[line for line in output.splitlines() if 'atheris receiver fuzz' in line][-1]}")
