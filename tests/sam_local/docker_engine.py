"""A Docker engine for `make sam-local-test`: the one already running, or one started here and stopped after.

A started engine comes from Debian's docker.io (installed with apt-get when missing) and is kept off
the network: no iptables rules of its own, no NAT, no IP forwarding (`--iptables=false --ip-masq=false
--ip-forward=false`), its data and runtime state in throwaway directories. SAM needs docker's default
bridge (it never gives a Lambda container host networking), so the bridge stays; one FORWARD rule drops
whatever a container sends past it: containers reach this machine and nothing beyond it. Everything
started here (the rule, dockerd, the bridge it created, its directories) is undone on close.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGES = {"dockerd": "docker.io", "iptables": "iptables", "debootstrap": "debootstrap"}
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
START_TIMEOUT_S = 60
# Created by dockerd and containerd's shims whatever --exec-root says (network namespaces, shim sockets).
FIXED_RUNTIME_DIRS = (Path("/run/docker"), Path("/run/containerd"))
STOP_TIMEOUT_S = 30

Log = Callable[[str], None]


class Unavailable(Exception):
    """This machine cannot run the check; the message says why (the test skips with it)."""


def ensure_commands(commands: Sequence[str], log: Log) -> None:
    """Install the Debian packages of the commands that are missing (apt-get, as root), or say why not."""
    missing = [command for command in commands if shutil.which(command) is None]
    if not missing:
        return
    packages = sorted({PACKAGES[command] for command in missing})
    if shutil.which("apt-get") is None:
        raise Unavailable(f"{', '.join(missing)} missing and no apt-get to install {' '.join(packages)}")
    # Packages must not start services: a docker.io started by its package would NAT containers to the world.
    placed = not POLICY_RC_D.exists()
    if placed:
        POLICY_RC_D.write_text(
            "#!/bin/sh\n# make sam-local-test: no service starts while it installs packages\nexit 101\n"
        )
        POLICY_RC_D.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        steps = (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        )
        with timed(log, f"apt-get install {' '.join(packages)}"):
            for step in steps:
                done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600, check=False)
                if done.returncode != 0:
                    raise Unavailable(f"{' '.join(step)} failed: {_tail(done.stderr or done.stdout)}")
    finally:
        if placed:
            POLICY_RC_D.unlink(missing_ok=True)
    still = [command for command in commands if shutil.which(command) is None]
    if still:
        raise Unavailable(f"{', '.join(still)} still missing after installing {' '.join(packages)}")


@dataclass
class Engine:
    """A reachable engine: its client, the DOCKER_HOST for SAM, and its default bridge (where containers are)."""

    client: Any  # docker.DockerClient
    docker_host: str
    bridge: str
    started: bool  # by this test: a throwaway engine, so nothing in it needs removing one by one
    _images_before: set[str] = field(default_factory=set)
    _containers_before: set[str] = field(default_factory=set)

    def remove_what_this_run_made(self, log: Log) -> None:
        """In an engine that was already running, the containers and images that were not there before."""
        if self.started:
            return
        for container in self.client.containers.list(all=True):
            if container.id not in self._containers_before:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
                    log(f"removed container {container.short_id}")
        for image in self.client.images.list():
            if image.id not in self._images_before:
                with contextlib.suppress(Exception):
                    self.client.images.remove(image.id, force=True)
                    log(f"removed image {', '.join(image.tags) or image.short_id}")


class EngineSession:
    """`with EngineSession(work, log) as engine:` an engine whose containers cannot leave this machine."""

    def __init__(self, work: Path, log: Log) -> None:
        self.work = work
        self.log = log
        self.engine: Engine | None = None
        self._dockerd: subprocess.Popen[bytes] | None = None
        self._exec_root: Path | None = None
        self._data_root: Path | None = None
        self._bridge_existed = True
        self._runtime_dirs: list[Path] = []
        self._rule: list[str] | None = None

    def __enter__(self) -> Engine:
        try:
            self.engine = self._running_engine() or self._start_engine()
            self._keep_containers_here(self.engine.bridge)
        except BaseException:
            self.close()
            raise
        return self.engine

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- connect or start ----------------------------------------------------------------

    def _running_engine(self) -> Engine | None:
        import docker

        try:
            client = docker.from_env(timeout=300)
            client.ping()
        except Exception:
            return None
        self.log(f"using the running Docker engine ({client.api.base_url})")
        engine = self._describe(client, os.environ.get("DOCKER_HOST", ""), started=False)
        engine._images_before = {image.id for image in client.images.list()}
        engine._containers_before = {container.id for container in client.containers.list(all=True)}
        return engine

    def _start_engine(self) -> Engine:
        import docker

        ensure_commands(["dockerd", "iptables"], self.log)
        self._bridge_existed = Path("/sys/class/net/docker0").exists()
        self._runtime_dirs = [path for path in FIXED_RUNTIME_DIRS if not path.exists()]
        # Short paths: containerd's sockets live under the exec root (sun_path holds 108 bytes).
        self._exec_root = Path(tempfile.mkdtemp(prefix="rwsl-", dir="/run"))
        self._data_root = Path(tempfile.mkdtemp(prefix="docker-", dir=self.work))
        socket_path = self._exec_root / "docker.sock"
        log_path = self.work / "dockerd.log"
        command = [
            "dockerd",
            f"--data-root={self._data_root}",
            f"--exec-root={self._exec_root}",
            f"--pidfile={self._exec_root / 'dockerd.pid'}",
            f"--host=unix://{socket_path}",
            "--storage-driver=overlay2",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--ip-forward=false",
        ]
        started = time.monotonic()
        with log_path.open("wb") as log_file:
            self._dockerd = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._dockerd.poll() is not None:
                raise Unavailable(f"dockerd exited with {self._dockerd.returncode}: {_tail(log_path.read_text())}")
            if socket_path.exists():
                with contextlib.suppress(docker.errors.DockerException):
                    client = docker.DockerClient(base_url=f"unix://{socket_path}", timeout=300)  # asks the version
                    break
            if time.monotonic() > deadline:
                raise Unavailable(f"dockerd did not answer within {START_TIMEOUT_S} s: {_tail(log_path.read_text())}")
            time.sleep(0.2)
        self.log(f"dockerd started in {time.monotonic() - started:.1f} s (no iptables, NAT or forwarding of its own)")
        return self._describe(client, f"unix://{socket_path}", started=True)

    def _describe(self, client: Any, docker_host: str, *, started: bool) -> Engine:
        options = client.networks.get("bridge").attrs.get("Options") or {}
        bridge = options.get("com.docker.network.bridge.name", "docker0")
        if not Path("/sys/class/net", bridge, "bridge").is_dir():
            raise Unavailable(f"the engine's bridge {bridge} is not on this machine (rootless or remote Docker?)")
        return Engine(client, docker_host, bridge, started)

    # ---- containers stay on this machine -------------------------------------------------

    def _keep_containers_here(self, bridge: str) -> None:
        rule = ["FORWARD", "-i", bridge, "!", "-o", bridge, "-j", "DROP"]
        if shutil.which("iptables") is None:
            raise Unavailable("no iptables to keep containers to this machine")
        present = subprocess.run(["iptables", "-C", *rule], capture_output=True, check=False).returncode == 0
        if not present:
            added = subprocess.run(["iptables", "-I", *rule], capture_output=True, text=True, check=False)
            if added.returncode != 0:
                raise Unavailable(
                    f"cannot keep containers to this machine: iptables -I {' '.join(rule)}: {added.stderr}"
                )
            self._rule = rule
            self.log(f"iptables -I {' '.join(rule)}: containers reach this machine and nothing beyond it")

    # ---- undo ----------------------------------------------------------------------------

    def close(self) -> None:
        """Undo in reverse: the engine's new containers and images, dockerd, its bridge and directories, the rule."""
        steps: list[Callable[[], None]] = []
        if self.engine is not None:
            steps.append(lambda: self.engine.remove_what_this_run_made(self.log))  # type: ignore[union-attr]
        steps += [self._stop_dockerd, self._remove_bridge, self._remove_directories, self._remove_rule]
        for step in steps:
            try:
                step()
            except Exception as error:  # keep undoing the rest
                self.log(f"cleanup: {type(error).__name__}: {error}")
        if self.engine is not None:
            with contextlib.suppress(Exception):
                self.engine.client.close()
            self.engine = None

    def _stop_dockerd(self) -> None:
        process, self._dockerd = self._dockerd, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # dockerd stops its containers and its containerd
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self.log("dockerd stopped")

    def _remove_bridge(self) -> None:
        if self._bridge_existed or self._exec_root is None or not Path("/sys/class/net/docker0").exists():
            return
        subprocess.run(["ip", "link", "delete", "docker0"], check=True, capture_output=True)
        self.log("bridge docker0 removed")

    def _remove_directories(self) -> None:
        if self._dockerd is not None:
            return  # still running: removing its directories would break it
        for path in (self._data_root, self._exec_root, *self._runtime_dirs):
            if path is not None and path.exists():
                _unmount_below(path)
                shutil.rmtree(path)
        self._data_root = self._exec_root = None
        self._runtime_dirs = []

    def _remove_rule(self) -> None:
        rule, self._rule = self._rule, None
        if rule is not None:
            subprocess.run(["iptables", "-D", *rule], check=True, capture_output=True)
            self.log("iptables rule removed")


def _unmount_below(path: Path) -> None:
    """Mounts dockerd left under its directories (normally none once it stopped), deepest first."""
    prefix = str(path.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def timed(log: Log, what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    log(f"{what}: {time.monotonic() - started:.1f} s")
