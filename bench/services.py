"""Local endpoints for the benchmarks, each in its own process so its CPU is never counted as the client's.

- `moto`: SQS, DynamoDB and Secrets Manager (moto's server mode), provisioned from template.yaml;
- `sqs`: a keep-alive `SendMessage` endpoint (bench/sqs_endpoint.py) for warm-path measurements;
- `dynamodb`: the ledger's DynamoDB calls with DynamoDB-like latencies (bench/dynamodb_endpoint.py);
- `stripe`: devstack's local Stripe API over an account of `--objects` direct payments spread over 90 days,
  test mode (Stripe's 25 read requests a second) or live (`--live`, 100), with `--latency` added to every list
  request; it prints `READY <url> <api key>`;
- `mixpanel`: devstack's Mixpanel-compatible server with a constant round-trip `latency_s`
  and without the OpenAPI checks (they measure the tests' requests, not the client). It also
  takes the official SDK's legacy form posts as api.mixpanel.com does (`data=` holding one
  event object, no `strict`), which devstack's server refuses; see `_sdk_compatible`.

`python -m bench.services moto|mixpanel|sqs|dynamodb [--latency S]` prints `READY <url>` and serves until
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

    def __init__(self, kind: str, *, latency_s: float = 0.0, extra: list[str] | None = None) -> None:
        self.kind = kind
        self.latency_s = latency_s
        self.extra = extra or []
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Service:
        args = [sys.executable, "-m", "bench.services", self.kind, "--latency", str(self.latency_s), *self.extra]
        self._process = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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


def dynamodb_stats(url: str) -> dict[str, Any]:
    """The DynamoDB stand-in's call counts (bench/dynamodb_endpoint.py)."""
    request = urllib.request.Request(  # 127.0.0.1 only
        url,
        data=b"{}",
        headers={"X-Amz-Target": "DynamoDB_20120810.Stats", "Content-Type": "application/x-amz-json-1.0"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _sdk_compatible() -> type:
    """devstack's server, plus the two things the `mixpanel` SDK's `/import` posts need.

    The SDK form-encodes `data=<json>` without `strict` and reads `{"status": 1}`; its per-event
    `Consumer` sends one event object rather than an array. Everything else (auth, validation,
    storage, latency) is devstack's, so both clients pay the same server-side cost.
    """
    from dataclasses import replace
    from urllib.parse import parse_qsl

    from devstack.mixpanel import MixpanelServer
    from devstack.mixpanel.http_adapter import Handler

    # http.server writes a reply's headers and body separately; with Nagle on, a keep-alive client
    # waits ~40 ms for the delayed ACK on every request, which would hide any latency setting.
    Handler.disable_nagle_algorithm = True

    class SdkCompatibleServer(MixpanelServer):
        def _ingest(self, request: Any) -> Any:
            if request.path == "/import" and _is_form(request):
                request.query.setdefault("strict", "0")
            return super()._ingest(request)

        def _parse_import(self, request: Any) -> Any:
            parsed = super()._parse_import(request)
            if parsed.records is None and _is_form(request):
                try:
                    form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
                    record = json.loads(form.get("data", ""))
                except ValueError:
                    return parsed
                if isinstance(record, dict):
                    return replace(parsed, records=[record], error=None, uncompressed_bytes=len(request.body))
            return parsed

    def _is_form(request: Any) -> bool:
        return (request.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded")

    return SdkCompatibleServer


def _stripe(list_latency_s: float, objects: int, live: bool) -> tuple[Any, str]:
    """The local Stripe API over `objects` direct payments spread over the last 90 days; (server, "url key")."""
    from devstack.stripe_api import ApiKey, StripeAccount, StripeApiServer

    account = StripeAccount(seed=objects, livemode=live)
    now = int(time.time())
    step = 90 * 86400 // objects
    for index in range(objects):
        account.pay_direct(1900 + index % 7 * 100, ("usd", "eur", "jpy", "kwd")[index % 4], at=now - 1 - index * step)
    key = ApiKey(f"sk_{'live' if live else 'test'}_bench")
    accounts = {"live": account} if live else {"test": account}
    server = StripeApiServer(**accounts, keys=(key,), list_latency_s=list_latency_s).start()
    log = _LogServer(server).start()
    return _Both(server, log), f"{server.url} {key.secret} {log.url}"


class _LogServer:
    """GET returns the Stripe stand-in's request log since the last GET (the bench counts requests and 429s)."""

    def __init__(self, stand_in: Any) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                entries = stand_in.requests_log()
                stand_in.reset_log()
                body = json.dumps(entries).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def start(self) -> _LogServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Both:
    def __init__(self, *servers: Any) -> None:
        self.servers = servers

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _serve(
    kind: str,
    latency_s: float,
    read_ms: float | None = None,
    write_ms: float | None = None,
    objects: int | None = None,
    live: bool = False,
) -> None:
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
    elif kind == "dynamodb":
        from .dynamodb_endpoint import DEFAULT_READ_MS, DEFAULT_WRITE_MS, DynamoDbEndpoint

        server = DynamoDbEndpoint(read_ms=read_ms or DEFAULT_READ_MS, write_ms=write_ms or DEFAULT_WRITE_MS).start()
        url = server.url
    elif kind == "stripe":
        server, url = _stripe(latency_s, objects or 1000, live)
    elif kind == "sqs":
        from .sqs_endpoint import SqsEndpoint

        server = SqsEndpoint().start()
        url = server.url
    else:
        from devstack.mixpanel import DEMO_CREDENTIALS

        server = _sdk_compatible()(credentials=DEMO_CREDENTIALS, latency_s=latency_s, validate_spec=False).start()
        url = server.url
    print(f"READY {url}", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.services")
    parser.add_argument("kind", choices=["moto", "mixpanel", "sqs", "dynamodb", "stripe"])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each Mixpanel request")
    parser.add_argument("--read-ms", type=float, default=None, help="DynamoDB stand-in: GetItem/BatchGetItem delay")
    parser.add_argument("--write-ms", type=float, default=None, help="DynamoDB stand-in: TransactWriteItems delay")
    parser.add_argument("--objects", type=int, default=None, help="Stripe stand-in: payments in the account")
    parser.add_argument("--live", action="store_true", help="Stripe stand-in: a live-mode account (100 reads/s)")
    args = parser.parse_args(argv)
    _serve(args.kind, args.latency, args.read_ms, args.write_ms, args.objects, args.live)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
