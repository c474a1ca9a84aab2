"""Local endpoints for the benchmarks, each in its own process so its CPU is never counted as the client's.

- `moto`: SQS, DynamoDB and Secrets Manager (moto's server mode), provisioned from template.yaml;
- `mixpanel`: devstack's Mixpanel-compatible server with a constant round-trip `latency_s`
  and without the OpenAPI checks (they measure the tests' requests, not the client).

`python -m bench.services moto|mixpanel [--latency S]` prints `READY <url>` and serves until
its standard input closes or it gets SIGTERM, so a crashed benchmark never leaves it behind.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from .common import ROOT

START_TIMEOUT_S = 30


class Service:
    """A service subprocess; `url` once it is ready."""

    def __init__(self, kind: str, *, latency_s: float = 0.0) -> None:
        self.kind = kind
        self.latency_s = latency_s
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Service:
        args = [sys.executable, "-m", "bench.services", self.kind, "--latency", str(self.latency_s)]
        self._process = subprocess.Popen(  # noqa: S603 (our own module)
            args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        line = ""
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if line.startswith("READY ") or not line:
                break
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"{self.kind} service did not start: {line!r}")
        self.url = line.split(" ", 1)[1].strip()
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin:
                process.stdin.close()
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=10)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def mixpanel_summary(url: str) -> dict[str, Any]:
    """The local Mixpanel's counters (events, raw_events, requests, ...)."""
    with urllib.request.urlopen(f"{url}/api/summary", timeout=30) as response:  # 127.0.0.1 only
        return json.loads(response.read())


def _serve(kind: str, latency_s: float) -> None:
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    if kind == "moto":
        import logging

        from moto.server import ThreadedMotoServer

        from devstack.aws import free_port

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        port = free_port()
        server: Any = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        url = f"http://127.0.0.1:{port}"
    else:
        from devstack.mixpanel_server import DEMO_CREDENTIALS, MixpanelServer

        server = MixpanelServer(credentials=DEMO_CREDENTIALS, latency_s=latency_s, validate_spec=False).start()
        url = server.url
    print(f"READY {url}", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.services")
    parser.add_argument("kind", choices=["moto", "mixpanel"])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each Mixpanel request")
    args = parser.parse_args(argv)
    _serve(args.kind, args.latency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
