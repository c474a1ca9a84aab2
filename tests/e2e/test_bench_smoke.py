"""`make bench-smoke`: every benchmark suite runs end to end with tiny counts and writes its JSON.

The figures of a smoke run mean nothing (one cold start, a few requests): this checks that the
harness works (builds, local endpoints, both contenders of every suite), not the targets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = ("batch_size", "cold", "receiver", "forwarder", "cost", "backfill")

pytestmark = pytest.mark.skipif(
    sys.version_info[:2] != (3, 13) or shutil.which("sam", path=str(Path(sys.executable).parent)) is None,
    reason="the benchmarks build python3.13 artifacts with the venv's sam: needs a python3.13 venv with aws-sam-cli",
)


@pytest.mark.timeout(240)
def test_bench_smoke_runs_every_suite_and_writes_json(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-4000:]
    for suite in SUITES:
        document = json.loads((tmp_path / f"{suite}.smoke.json").read_text())
        assert document["suite"] == suite and document["smoke"] is True
        assert document["machine"]["cpus"] and document["table"]
    cold = json.loads((tmp_path / "cold.smoke.json").read_text())
    assert {r["variant"] for r in cold["results"]} >= {"this project", "naive handler"}
    assert all(r["import_ms"]["n"] == 1 for r in cold["results"])
    forwarder = json.loads((tmp_path / "forwarder.smoke.json").read_text())
    assert all(run["forwarder"]["events"] == run["events"] for run in forwarder["results"])
    backfill = json.loads((tmp_path / "backfill.smoke.json").read_text())
    readers = backfill["readers"][0]
    assert readers["sequential"]["objects"] == readers["parallel"]["objects"] == 300
    assert readers["parallel"]["rate_limited"] == 0 and backfill["forwarder"]["messages"] == 40
    assert "## targets" in result.stdout
    print(f"bench smoke took {elapsed:.0f} s")
