"""The deployment artifacts the cold-request benchmark loads, built as `sam build` builds them.

- `ours`: `sam build` of template.yaml (ReceiverFunction, ForwarderFunction, CommonLayer);
- `naive`: `sam build` of bench/naive/template.yaml, the common recipe (stripe, mixpanel and
  Powertools vendored in the function, imported at the top);
- `runtime`: what Lambda's python3.13 runtime provides outside the artifacts (boto3 and its
  dependencies, compiled as in the runtime image), copied from this venv.

All of it goes under .aws-sam/bench/, which git ignores.
"""

from __future__ import annotations

import compileall
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .common import ROOT, WORK, log

NAIVE_TEMPLATE = ROOT / "bench" / "naive" / "template.yaml"
# Distributions Lambda's python3.13 runtime ships in /var/runtime (boto3 and what it needs).
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
BUILD_TIMEOUT_S = 600
READY_MARKER = ".bench-ready"


@dataclass(frozen=True)
class Artifacts:
    ours: Path  # build dir holding ReceiverFunction/, ForwarderFunction/, CommonLayer/
    naive: Path  # build dir holding NaiveReceiverFunction/, NaiveForwarderFunction/
    runtime: Path  # the simulated /var/runtime
    build_seconds: dict[str, float]

    def function(self, name: str) -> Path:
        root = self.naive if name.startswith("Naive") else self.ours
        return root / name

    @property
    def layer(self) -> Path:
        return self.ours / "CommonLayer" / "python"


def sam_build(template: Path, build_dir: Path) -> float:
    """`sam build` without Docker, with the venv's python3.13 first on PATH; returns its duration."""
    bin_dir = Path(sys.executable).parent
    sam = bin_dir / "sam"
    if build_dir.exists():
        shutil.rmtree(build_dir)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SAM_CLI_TELEMETRY": "0",
        "AWS_EC2_METADATA_DISABLED": "true",
        # The layer's wheels for the machine that loads them here (layers/common/Makefile's PLATFORM): its
        # native code (cryptography, for the app stores) must match it; Lambda gets aarch64 ones.
        "PLATFORM": f"manylinux2014_{platform.machine()}",
    }
    started = time.monotonic()
    result = subprocess.run(
        [str(sam), "build", "--template", str(template), "--build-dir", str(build_dir)],
        cwd=template.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"sam build of {template.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def runtime_dir(target: Path) -> Path:
    """boto3 and its dependencies as Lambda's runtime has them: outside the artifacts, compiled."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in RUNTIME_DISTRIBUTIONS:
        dist = metadata.distribution(name)
        for file in dist.files or []:
            parts = file.parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or "__pycache__" in parts or ".." in parts:
                continue
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                destination = target.joinpath(*parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
    compiled = compileall.compile_dir(
        target, quiet=1, workers=1, invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    if not compiled:
        raise RuntimeError(f"compileall failed in {target}")
    (target / READY_MARKER).write_text("compiled\n")
    return target


def build(*, reuse: bool = False) -> Artifacts:
    """Build everything (or, with `reuse`, take what a previous run built)."""
    ours, naive, runtime = WORK / "ours", WORK / "naive", WORK / "runtime"
    wanted = {
        name: (template, target)
        for name, template, target in (("ours", ROOT / "template.yaml", ours), ("naive", NAIVE_TEMPLATE, naive))
        if not (reuse and (target / "template.yaml").exists())
    }
    if wanted:
        log(f"bench: sam build of {', '.join(wanted)} (in parallel)")
    with ThreadPoolExecutor(max_workers=2) as pool:  # each build mostly waits on pip
        futures = {name: pool.submit(sam_build, *args) for name, args in wanted.items()}
        if not (reuse and (runtime / READY_MARKER).exists()):
            runtime_dir(runtime)
        seconds = {name: future.result() for name, future in futures.items()}
    return Artifacts(ours, naive, runtime, seconds)


def bytecode_files(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.pyc"))


def without_bytecode(source: Path, target: Path) -> Path:
    """A copy of an artifact with every `__pycache__` removed (what `sam build` ships by default)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
