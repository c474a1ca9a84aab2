"""Post stored provider events, freshly signed, to a webhook URL: the local stack or a deployment.

The body goes out exactly as stored: a `.json` file is one event (its bytes, trailing
newline included unless `--strip-newline`), a `.jsonl` line is one event (its bytes without
the line break). Each request is signed when it is sent, not when the file is read, so a
long replay never trips a provider's timestamp tolerance. The receiver then does what it
does with a real delivery: verify, filter, enqueue, and dedupe downstream, so replaying an
event twice is harmless.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from revenue_webhooks.providers import sign, specs

from . import local_stack
from .arguments import positive_int, secret_variable
from .deployed_stack import OUTPUT_WEBHOOK_URL, DeployedStack, StackLookupError
from .targets import UsageError

SUFFIXES = (".json", ".jsonl")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0
SHOWN_FAILURES = 20


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One webhook body as stored, with where it came from (for the report) and Shopify's topic."""

    source: str
    body: bytes
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the endpoint answered for one event."""

    event: StoredEvent
    status: int | None  # None: no HTTP answer (connection error, timeout)
    outcome: str  # what the receiver said: accepted, ignored, ... (or the error)
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def label(self) -> str:
        return f"{self.status} {self.outcome}".strip() if self.status is not None else "no response"


@dataclass
class Report:
    """Counts per answer, and the failures with the endpoint's body."""

    endpoint: str
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[Delivery] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, delivery: Delivery) -> None:
        self.counts[delivery.label] += 1
        if not delivery.ok:
            self.failures.append(delivery)

    @property
    def sent(self) -> int:
        return sum(self.counts.values())

    def render(self) -> str:
        lines = [f"replayed {self.sent} events to {self.endpoint} in {self.seconds:.1f} s"]
        width = max((len(label) for label in self.counts), default=0)
        lines += [f"  {label.ljust(width)}  {n}" for label, n in sorted(self.counts.items())]
        if self.failures:
            lines.append(f"{len(self.failures)} failed")
        return "\n".join(lines)


# ---- reading stored events --------------------------------------------------------------


def files_in(paths: Sequence[str | Path]) -> list[Path]:
    """The event files named: files as given, folders as their `.json`/`.jsonl` files by name (not recursive)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
            if not inside:
                raise UsageError(f"{path}: no .json or .jsonl files in this folder")
            files += inside
        elif path.is_file():
            if path.suffix not in SUFFIXES:
                raise UsageError(f"{path}: expected a .json file (one event) or a .jsonl file (one event per line)")
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return files


def read_events(
    files: Iterable[Path], *, strip_newline: bool = False, topic: str | None = None
) -> Iterator[StoredEvent]:
    """Every stored event, in file order, bodies byte for byte (see the module docstring)."""
    for path in files:
        if path.suffix == ".json":
            body = path.read_bytes()
            if strip_newline:
                body = _strip_one_newline(body)
            yield StoredEvent(str(path), body, topic)
            continue
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                body = _strip_one_newline(line)
                if body.strip():
                    yield StoredEvent(f"{path}:{number}", body, topic)


def count_events(files: Iterable[Path]) -> int:
    """How many events `read_events` will yield, for the progress bar's total (one cheap pass)."""
    total = 0
    for path in files:
        if path.suffix == ".json":
            total += 1
        else:
            with path.open("rb") as lines:
                total += sum(1 for line in lines if line.strip())
    return total


def _strip_one_newline(body: bytes) -> bytes:
    if body.endswith(b"\r\n"):
        return body[:-2]
    return body[:-1] if body.endswith(b"\n") else body


def shopify_topics(files: Sequence[Path], override: str | None) -> dict[Path, str]:
    """Each file's X-Shopify-Topic: `--shopify-topic`, else the file name as the samples name it (orders.paid.json)."""
    topics: dict[Path, str] = {}
    for path in files:
        topic = override or specs()["shopify"].sample_options(path.stem)["topic"]
        if "/" not in topic:
            raise UsageError(
                f"{path}: Shopify sends the topic in a header, not the body; name the file after it"
                " (orders.paid.json for orders/paid) or pass --shopify-topic"
            )
        topics[path] = topic
    return topics


# ---- sending ----------------------------------------------------------------------------


def endpoint_for(url: str, provider: str) -> str:
    """The provider's route under the base webhook URL (a URL already ending in /<provider> is kept)."""
    base = url.rstrip("/")
    return base if base.rsplit("/", 1)[-1] == provider else f"{base}/{provider}"


class Sender:
    """Signs and posts one event, retrying throttling and server errors; safe to call from several threads."""

    def __init__(
        self,
        endpoint: str,
        provider: str,
        secret: str,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self.provider = provider
        self.secret = secret
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep
        self._local = threading.local()
        self._sessions: list[Any] = []
        self._lock = threading.Lock()

    def headers(self, event: StoredEvent) -> dict[str, str]:
        options = {"topic": event.topic} if self.provider == "shopify" and event.topic else {}
        return sign(self.provider, event.body, self.secret, None, **options)

    def __call__(self, event: StoredEvent) -> Delivery:
        import requests

        delivery = Delivery(event, None, "not sent")
        for attempt in range(self.retries + 1):
            wait_s = 0.5 * 2**attempt
            try:
                response = self._session().post(
                    self.endpoint, data=event.body, headers=self.headers(event), timeout=self.timeout
                )
            except requests.RequestException as error:
                delivery = Delivery(event, None, type(error).__name__, str(error))
            else:
                delivery = Delivery(event, response.status_code, _outcome(response), response.text)
                if response.status_code not in RETRY_STATUSES:
                    return delivery
                wait_s = _retry_after(response.headers.get("retry-after"), wait_s)
            if attempt < self.retries:
                self.sleep(wait_s)
        return delivery

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        for session in self._sessions:
            session.close()


def _outcome(response: Any) -> str:
    """The receiver's own word for what it did (`accepted`, `ignored`), when its answer says."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        word = body.get("status") if response.status_code < 300 else None
        return str(word) if isinstance(word, str) else ""
    return ""


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(max(float(value or ""), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return default


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...
    def close(self) -> Any: ...


class PlainProgress:
    """Progress without tqdm: one rewritten line on a terminal, a line per tenth of the work in a log."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.done = 0
        self.tty = stream.isatty()
        self._shown_step = -1
        self._shown_at = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.tty:
            now = time.monotonic()
            if now - self._shown_at >= 0.1 or self.done >= self.total:
                self._shown_at = now
                self.stream.write(f"\rreplay {self.done}/{self.total}")
                self.stream.flush()
        else:
            step = self.done * 10 // max(self.total, 1)
            if step != self._shown_step:
                self._shown_step = step
                self.stream.write(f"replay {self.done}/{self.total}\n")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, stream: TextIO) -> Progress:
    """tqdm when it is installed (not a dependency of this project), else a plain counter."""
    if not enabled:
        return _Silent()
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainProgress(total, stream)
    return tqdm(total=total, file=stream, unit="event", desc="replay")


def replay(
    events: Iterable[StoredEvent],
    send: Callable[[StoredEvent], Delivery],
    report: Report,
    *,
    concurrency: int,
    progress: Progress,
) -> Report:
    """Send every event with `concurrency` requests in flight (1 keeps file order), reading files lazily."""
    started = time.monotonic()
    window = max(1, concurrency) * 2
    pending: set[Future[Delivery]] = set()

    def collect(done: Iterable[Future[Delivery]]) -> None:
        for future in done:
            report.add(future.result())
            progress.update(1)

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="replay") as pool:
        try:
            for event in events:
                if len(pending) >= window:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    collect(done)
                pending.add(pool.submit(send, event))
            collect(wait(pending).done)
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            collect(f for f in pending if f.done() and not f.cancelled())
            raise
        finally:
            progress.close()
            report.seconds = time.monotonic() - started
    return report


# ---- command line -----------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="revenue-webhooks replay",
        description="Post stored provider events, signed, to a webhook URL (local or deployed).",
        epilog="Exit status: 0 every event answered 2xx, 1 some did not, 2 usage error. See docs/operations.md.",
    )
    p.add_argument("paths", nargs="+", help=".json files (one event), .jsonl files (one per line), or folders of them")
    p.add_argument(
        "--url",
        help="base webhook URL, e.g. http://127.0.0.1:3000/webhooks; /<provider> is added "
        "(default: --stack's WebhookUrl, else the running local stack's, from .devstack/stack.json)",
    )
    p.add_argument("--stack", help="a deployed stack: its WebhookUrl output and its signing secret (Secrets Manager)")
    p.add_argument(
        "--provider", required=True, help=f"{', '.join(specs())}, or a Standard Webhooks sender name from the mapping"
    )
    p.add_argument(
        "--secret",
        help="signing secret (default: --stack's, else $<PROVIDER>_WEBHOOK_SECRET such as STRIPE_WEBHOOK_SECRET, "
        "else the local stack's when the URL is its)",
    )
    p.add_argument(
        "--shopify-topic", help="X-Shopify-Topic for every event (default: from the file name, orders.paid.json)"
    )
    p.add_argument("--strip-newline", action="store_true", help="drop one trailing newline from .json files")
    p.add_argument(
        "--concurrency", type=positive_int, default=4, help="requests in flight (default 4; 1 keeps file order)"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    p.add_argument("--retries", type=int, default=2, help="retries of 429/5xx/connection errors (default 2)")
    p.add_argument("--dry-run", action="store_true", help="read and sign everything, send nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """`revenue-webhooks replay` and `make replay ARGS=...`."""
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        endpoint, secret, files, topics = _prepare(args, environ)
    except UsageError as error:
        print(f"replay: {error}", file=sys.stderr)
        return 2
    events = _events(files, topics, args.strip_newline)
    total = count_events(files)
    sender = Sender(endpoint, args.provider, secret, timeout=args.timeout, retries=max(0, args.retries))
    if args.dry_run:
        size = 0
        for event in events:
            sender.headers(event)  # signing proves the secret is usable
            size += len(event.body)
            print(f"would POST {event.source} ({len(event.body)} bytes)")
        print(f"dry run: {total} events, {size} bytes, would be sent to {endpoint}; nothing sent")
        return 0
    report = Report(endpoint)
    progress = progress_bar(total, not args.no_progress, sys.stderr)
    try:
        replay(events, sender, report, concurrency=args.concurrency, progress=progress)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        _print(report)
        return 130
    finally:
        sender.close()
    _print(report)
    return 0 if not report.failures else 1


def _prepare(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str, list[Path], dict[Path, str]]:
    """Everything that can be wrong before the first request, checked before the first request."""
    if args.url and not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url {args.url!r}: expected an http(s) URL")
    if args.shopify_topic and args.provider != "shopify":
        raise UsageError("--shopify-topic applies to --provider shopify only")
    url, secret = _target(args, environ)
    try:
        sign(args.provider, b"{}", secret)
    except ValueError as error:  # a Standard Webhooks secret must be whsec_<base64>
        kind = "" if args.provider in specs() else f" (not one of {', '.join(specs())}: a Standard Webhooks sender)"
        raise UsageError(f"the secret cannot sign for {args.provider}{kind}: {error}") from None
    files = files_in(args.paths)
    topics = shopify_topics(files, args.shopify_topic) if args.provider == "shopify" else {}
    if count_events(files) == 0:
        raise UsageError("no events in " + ", ".join(map(str, args.paths)))
    return endpoint_for(url, args.provider), secret, files, topics


def _target(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str]:
    """(base URL, secret): flags first, then --stack, then the environment's secret, then the running local stack."""
    provider, variable = args.provider, secret_variable(args.provider)
    url, secret = args.url or "", args.secret or ""
    if args.stack:
        stack = DeployedStack(args.stack)
        try:
            if provider not in stack.routes:
                raise UsageError(f"stack {args.stack} has no route {provider!r}; its routes: {', '.join(stack.routes)}")
            url = url or stack.output(OUTPUT_WEBHOOK_URL)
            store = (spec := specs().get(provider)) is not None and spec.signing.whole
            secret = secret or ("" if store else stack.signing_secret(provider))
        except StackLookupError as error:
            raise UsageError(str(error)) from None
        _said(f"{provider} webhooks to stack {args.stack}" + ("" if args.secret else ", signed with its secret"))
    secret = secret or environ.get(variable, "").strip()
    spec = specs().get(provider)
    if url and (secret or (spec is not None and spec.signing.whole)):  # a store's notifications carry their signature
        return url, secret
    local, why_not = local_stack.find(environ)
    if local is not None and (not url or _same_base(url, local.webhook_url)):
        if provider not in local.routes:
            raise UsageError(f"the local stack has no route {provider!r}; its routes: {', '.join(local.routes)}")
        _said(f"{provider} webhooks to {local.describe()}" + ("" if secret else ", signed with its secret"))
        return url or local.webhook_url, secret or local.secrets.get(provider, "")
    if not url:
        raise UsageError(
            f"which webhook URL? Pass --url or --stack NAME, or start the local stack with `make dev` ({why_not})"
        )
    raise UsageError(
        f"no signing secret for {url}: pass --secret or --stack NAME, or set {variable}"
        + (f" (the local stack at {local.webhook_url} is another URL)" if local is not None else "")
    )


def _same_base(url: str, base: str) -> bool:
    """Whether `url` is the local stack's webhook URL (with or without the route, a slash, or `localhost`)."""

    def normal(value: str) -> str:
        return value.rstrip("/").replace("://localhost:", "://127.0.0.1:")

    return normal(url) == normal(base) or normal(url).rsplit("/", 1)[0] == normal(base)


def _said(line: str) -> None:
    print(f"replay: {line}", file=sys.stderr)


def _events(files: list[Path], topics: Mapping[Path, str], strip_newline: bool) -> Iterator[StoredEvent]:
    for path in files:
        yield from read_events([path], strip_newline=strip_newline, topic=topics.get(path))


def _print(report: Report) -> None:
    for delivery in report.failures[:SHOWN_FAILURES]:
        body = " ".join(delivery.text.split())[:500]
        print(f"failed: {delivery.event.source}: {delivery.label} {body}".rstrip(), file=sys.stderr)
    if len(report.failures) > SHOWN_FAILURES:
        print(f"... and {len(report.failures) - SHOWN_FAILURES} more failures", file=sys.stderr)
    print(report.render())


if __name__ == "__main__":
    raise SystemExit(main())
