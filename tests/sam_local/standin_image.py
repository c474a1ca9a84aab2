"""The Lambda Python 3.13 image for `sam local`: the real one when the engine has it or can pull it, else a stand-in.

The stand-in is built with no container registry: Debian trixie ships CPython 3.13, debootstrap makes
its root filesystem from the Debian mirror apt already uses, pip adds awslambdaric and the boto3 the
project pins (Lambda's runtime provides boto3), and `docker import` turns it into an image with the
layout SAM expects: SAM's runtime interface emulator (/var/rapid) runs /var/runtime/bootstrap, the
function is at /var/task, the layer at /opt. The root filesystem is cached as a tarball
(~/.cache/revenue-webhooks/sam-local), so only the first run pays for debootstrap.

Fidelity: Debian + CPython 3.13 + awslambdaric, not Amazon Linux 2023: right for packaging, the layer,
the handler wiring and the environment; not for OS or exact runtime-version behaviour.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker_engine import Engine, Log, Unavailable, ensure_commands, timed

REAL_IMAGE = "public.ecr.aws/lambda/python:3.13-{architecture}"
STANDIN_REPOSITORY = "revenue-webhooks/lambda-python-standin"
AWSLAMBDARIC = "awslambdaric==4.2.2"
DEBIAN_SUITE = "trixie"  # its python3.13 is the runtime's minor version
RECIPE_VERSION = "1"  # bump when the recipe below changes: the cached tarball is keyed on it
DEBIAN_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
WHEEL_PLATFORM = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}

# What the emulator executes: the managed runtime's search order (function, layer, runtime) and its client.
BOOTSTRAP = """#!/bin/sh
export AWS_EXECUTION_ENV=AWS_Lambda_python3.13
export PYTHONPATH="/var/task:/opt/python/lib/python3.13/site-packages:/opt/python:/var/runtime${PYTHONPATH:+:$PYTHONPATH}"
cd "${LAMBDA_TASK_ROOT:-/var/task}"
exec /var/lang/bin/python3.13 -m awslambdaric "${_HANDLER:-$AWS_LAMBDA_FUNCTION_HANDLER}"
"""
# The real image's entry point, for `docker run` without SAM (SAM starts the emulator itself).
ENTRYPOINT = """#!/bin/sh
if [ $# -ge 1 ]; then export _HANDLER="$1"; fi
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap; fi
exec /var/runtime/bootstrap
"""
CHANGES = [
    "ENV LANG=en_US.UTF-8",
    "ENV TZ=:/etc/localtime",
    "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "ENV LAMBDA_TASK_ROOT=/var/task",
    "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
    "WORKDIR /var/task",
    'ENTRYPOINT ["/lambda-entrypoint.sh"]',
]


@dataclass(frozen=True)
class RuntimeImage:
    """The image to run the functions on, and the `sam local` options that make SAM use it as it is."""

    name: str
    standin: bool

    def sam_options(self) -> list[str]:
        # The image is already in the engine: no pull (there may be no registry); a stand-in by its own name,
        # so the real image's tag is never shadowed in an engine that outlives this run.
        return ["--skip-pull-image", *(["--invoke-image", self.name] if self.standin else [])]


def runtime_image(engine: Engine, architecture: str, work: Path, log: Log) -> RuntimeImage:
    real = REAL_IMAGE.format(architecture=architecture)
    if _has(engine, real):
        log(f"{real} is in the engine")
        return RuntimeImage(real, standin=False)
    try:
        with timed(log, f"pulled {real}"):
            engine.client.images.pull(real)
        return RuntimeImage(real, standin=False)
    except Exception as error:
        log(f"{real} cannot be pulled ({_first_line(error)}): a stand-in instead")
    name = f"{STANDIN_REPOSITORY}:3.13-{architecture}"
    if not _has(engine, name):
        tarball = cached_rootfs(architecture, work, log)
        with timed(log, f"docker import {name}"), tarball.open("rb") as stream:
            engine.client.api.import_image(
                src=stream, repository=STANDIN_REPOSITORY, tag=f"3.13-{architecture}", changes=CHANGES
            )
    return RuntimeImage(name, standin=True)


def cached_rootfs(architecture: str, work: Path, log: Log) -> Path:
    """The stand-in's root filesystem as a tarball, built once per recipe and pins."""
    boto3 = f"boto3=={importlib.metadata.version('boto3')}"
    key = hashlib.sha256(f"{RECIPE_VERSION} {DEBIAN_SUITE} {architecture} {AWSLAMBDARIC} {boto3}".encode()).hexdigest()[
        :12
    ]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "revenue-webhooks" / "sam-local"
    tarball = cache / f"lambda-python3.13-{architecture}-{key}.tar"
    if tarball.is_file():
        log(f"stand-in root filesystem from the cache: {tarball}")
        return tarball
    ensure_commands(["debootstrap"], log)
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=work))
    try:
        with timed(log, f"debootstrap {DEBIAN_SUITE} {DEBIAN_ARCH[architecture]} (python3.13)"):
            _debootstrap(root, architecture)
        with timed(log, f"pip install {AWSLAMBDARIC} {boto3} into /var/runtime"):
            _runtime(root, architecture, [AWSLAMBDARIC, boto3])
        cache.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        with timed(log, f"cached {tarball}"):
            subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
            partial.replace(tarball)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return tarball


def _debootstrap(root: Path, architecture: str) -> None:
    command = [
        "debootstrap",
        f"--arch={DEBIAN_ARCH[architecture]}",
        "--variant=minbase",
        "--include=python3.13,ca-certificates",
        DEBIAN_SUITE,
        str(root),
        debian_mirror(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        log_file = root / "debootstrap" / "debootstrap.log"
        detail = log_file.read_text(errors="replace") if log_file.is_file() else done.stderr or done.stdout
        raise Unavailable(f"debootstrap {DEBIAN_SUITE} failed: {' | '.join(detail.strip().splitlines()[-5:])}")


def _runtime(root: Path, architecture: str, requirements: list[str]) -> None:
    """The Lambda layout inside the root filesystem: /var/lang/bin/python3.13, /var/runtime, /var/task, /opt."""
    for folder in ("var/lang/bin", "var/runtime", "var/task", "opt"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name in ("python3.13", "python3", "python"):
        (root / "var/lang/bin" / name).symlink_to("/usr/bin/python3.13")
    pip = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--platform", WHEEL_PLATFORM[architecture], "--implementation", "cp", "--python-version", "3.13",
        "--only-binary=:all:", "--target", str(root / "var/runtime"), *requirements,
    ]  # fmt: skip
    done = subprocess.run(pip, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise Unavailable(f"pip could not fetch the runtime's packages: {done.stderr.strip()[-500:]}")
    shutil.rmtree(root / "var/runtime/bin", ignore_errors=True)
    for path, text in ((root / "var/runtime/bootstrap", BOOTSTRAP), (root / "lambda-entrypoint.sh", ENTRYPOINT)):
        path.write_text(text)
        path.chmod(0o755)
    for folder in ("usr/share/doc", "usr/share/man", "var/lib/apt/lists", "var/cache/apt"):
        for child in (root / folder).glob("*"):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (DEBIAN_MIRROR overrides)."""
    given = os.environ.get("DEBIAN_MIRROR", "").strip()
    if given:
        return given
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        text = source.read_text(errors="replace") if source.is_file() else ""
        match = re.search(r"(?:^deb\s+(?:\[[^]]*\]\s+)?|^URIs:\s*)(\S+/debian)/?\s", text, re.MULTILINE)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def _has(engine: Engine, name: str) -> bool:
    import docker

    try:
        engine.client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def _first_line(error: Any) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
