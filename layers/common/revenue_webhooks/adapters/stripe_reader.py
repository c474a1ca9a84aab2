"""Stripe's history, read fast and politely: list endpoints in parallel time slices, under Stripe's rate limit.

One sequential pager reads 100 objects per round trip; a big account has millions. So each kind's period is cut
into slices of `created` time (`created[gte]`, `created[lt]`), each paged newest to oldest with
`starting_after`, by a pool of threads; when a thread runs out of work, a busy slice hands the older half of
what it has left to it. Every request first takes a slot from one rate limiter (Stripe allows 100 read
requests a second in live mode, 25 in test mode, per account); a 429 pauses every thread with exponential
backoff, since stripe-python retries a 429 only when Stripe says `Stripe-Should-Retry` (lock timeouts), never
a plain rate limit. Connection errors, timeouts and 5xx are the library's to retry (`max_network_retries`),
then ours a few times more.

A slice's progress (its bounds and cursor) is handed to the caller after each page, which is how the backfill
checkpoints and resumes (ops/backfill.py).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..providers._stripe_objects import KINDS_BY_NAME, HistoryKind

# Stripe's documented read limits, requests per second per account and mode.
READ_LIMITS = {"live": 100, "test": 25}
# The share of the limit the reader uses by default: the account's other integrations need the rest, and
# requests that leave evenly spaced arrive bunched by a few (threads, network).
DEFAULT_SHARE = 0.8
PAGE_SIZE = 100  # Stripe's largest page
MAX_ATTEMPTS = 8  # per page, beyond the library's own retries
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 32.0
MIN_SPLIT_S = 60  # a slice narrower than this is not split further
STRIPE_API_BASE = "https://api.stripe.com"


def key_mode(api_key: str) -> str:
    """`live` or `test`, from the key's prefix (sk_live_, rk_test_...); ValueError for anything else."""
    for prefix in ("sk_", "rk_"):
        for mode in ("live", "test"):
            if api_key.startswith(f"{prefix}{mode}_"):
                return mode
    raise ValueError(
        "not a Stripe secret or restricted key: expected sk_live_..., rk_live_..., sk_test_... or rk_test_..."
    )


def default_rate(api_key: str) -> float:
    """Requests per second the reader allows itself with this key: 80% of Stripe's limit for its mode."""
    return READ_LIMITS[key_mode(api_key)] * DEFAULT_SHARE


def stripe_client(api_key: str, api_base: str = "", *, timeout_s: float = 30.0, network_retries: int = 3) -> Any:
    """The `stripe.StripeClient` the tools read with (STRIPE_API_BASE: another API, e.g. the local stand-in).

    One small function so it can give way to the layer's shared Stripe client constructor.
    """
    import stripe

    return stripe.StripeClient(
        api_key,
        base_addresses={"api": (api_base or STRIPE_API_BASE).rstrip("/")},
        max_network_retries=network_retries,
        http_client=stripe.RequestsClient(timeout=timeout_s),
    )


class RateLimiter:
    """Evenly spaced request slots shared by threads, and a pause every thread honours after a 429.

    Spacing (not a bucket with a burst) keeps any one-second window at or under `rate` + 1 requests, which is
    how Stripe counts.
    """

    def __init__(
        self, rate: float, *, backoff_base_s: float = BACKOFF_BASE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 requests per second")
        self.rate = rate
        self.backoff_base_s = backoff_base_s
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        self._paused_until = 0.0
        self.throttled = 0  # 429s seen

    def slot(self) -> float:
        """Reserve the next slot; returns how long to wait for it."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next, self._paused_until)
            self._next = start + 1.0 / self.rate
            return start - now

    def acquire(self, stop: threading.Event | None = None) -> None:
        wait = self.slot()
        if wait > 0:
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)

    def rate_limited(self, attempt: int) -> float:
        """A 429: every thread pauses (exponential, jittered); returns the pause."""
        delay = min(BACKOFF_CAP_S, self.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311  # nosec B311
        with self._lock:
            self.throttled += 1
            self._paused_until = max(self._paused_until, self._clock() + delay)
        return delay


@dataclass
class Slice:
    """A kind's objects created in [since, until), read newest first; `cursor` is the last object read.

    `name` stays what it was at creation (a checkpoint file is named by it) while a split narrows `since`.
    """

    kind: str
    since: int
    until: int
    name: str = ""
    cursor: str | None = None
    cursor_time: int | None = None
    read: int = 0
    done: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"{self.kind}.{self.since}-{self.until}"

    @property
    def remaining_s(self) -> int:
        """Seconds of `created` time left to read."""
        if self.done:
            return 0
        top = self.cursor_time if self.cursor_time is not None else self.until
        return max(0, top - self.since)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "since": self.since,
            "until": self.until,
            "name": self.name,
            "cursor": self.cursor,
            "cursor_time": self.cursor_time,
            "read": self.read,
            "done": self.done,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Slice:
        return cls(
            kind=str(data["kind"]),
            since=int(data["since"]),
            until=int(data["until"]),
            name=str(data["name"]),
            cursor=data.get("cursor"),
            cursor_time=data.get("cursor_time"),
            read=int(data.get("read") or 0),
            done=bool(data.get("done")),
        )


def slices(kinds: Iterable[str], since: int, until: int, count: int) -> list[Slice]:
    """Each kind's [since, until) cut into `count` equal slices (fewer when the period is short)."""
    if until <= since:
        raise ValueError("until must be after since")
    count = max(1, min(count, (until - since) // MIN_SPLIT_S or 1))
    width = -(-(until - since) // count)
    edges = [*range(since, until, width), until]
    return [Slice(kind, low, high) for kind in kinds for low, high in itertools.pairwise(edges)]


@dataclass
class Page:
    """One list answer: the slice after it, its objects and the API version they are rendered in."""

    slice: Slice
    objects: list[dict[str, Any]]
    api_version: str | None


class ReadStopped(Exception):
    """The reader was asked to stop (Ctrl-C); every page handed over is complete."""


@dataclass
class _Work:
    pending: deque[Slice] = field(default_factory=deque)
    busy: int = 0
    idle: int = 0
    error: BaseException | None = None


class StripeReader:
    """Reads slices with `concurrency` threads; `on_page` gets each page (from the reading thread) in order per
    slice, and `on_split(narrowed, handed_off)` each split before the new slice is read."""

    def __init__(
        self,
        client: Any,
        limiter: RateLimiter,
        *,
        concurrency: int = 16,
        page_size: int = PAGE_SIZE,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.concurrency = max(1, concurrency)
        self.page_size = page_size
        self.stop = stop or threading.Event()
        self._sleep = sleep or (lambda seconds: self.stop.wait(seconds))
        self.requests = 0
        self._count_lock = threading.Lock()

    # ---- one request --------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """One GET under the rate limit, retried on 429 (every thread pauses) and on what the library gave up on."""
        import stripe

        for attempt in range(MAX_ATTEMPTS):
            if self.stop.is_set():
                raise ReadStopped
            self.limiter.acquire(self.stop)
            if self.stop.is_set():
                raise ReadStopped
            with self._count_lock:
                self.requests += 1
            try:
                response = self.client.raw_request("get", path, **params)
                return response.data, response.headers.get("Stripe-Version")
            except stripe.RateLimitError:
                self._sleep(self.limiter.rate_limited(attempt))
            except (stripe.APIConnectionError, stripe.APIError):
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                backoff = self.limiter.backoff_base_s * 2**attempt
                self._sleep(min(BACKOFF_CAP_S, backoff) * random.uniform(0.5, 1.0))  # noqa: S311  # nosec B311
        raise stripe.RateLimitError(f"{path}: still rate limited after {MAX_ATTEMPTS} attempts")

    def page(self, part: Slice) -> Page:
        """The next page of a slice, and the slice advanced past it."""
        kind = KINDS_BY_NAME[part.kind]
        params = kind.list_params()
        params["limit"] = self.page_size
        params["created"] = {"gte": part.since, "lt": part.until}
        if part.cursor:
            params["starting_after"] = part.cursor
        body, version = self.get(kind.path, params)
        objects = list(body.get("data") or [])
        advanced = replace(part, read=part.read + len(objects), done=not body.get("has_more"))
        if objects:
            advanced.cursor, advanced.cursor_time = str(objects[-1]["id"]), int(objects[-1]["created"])
        return Page(advanced, objects, version)

    def retrieve(self, kind: HistoryKind, object_id: str) -> tuple[dict[str, Any], str | None]:
        """One object by id, expanded as its list is."""
        params: dict[str, Any] = {}
        expand = [path.removeprefix("data.") for path in kind.expand]
        if expand:
            params["expand"] = expand
        return self.get(f"{kind.path}/{object_id}", params)

    # ---- the pool -----------------------------------------------------------------------

    def run(
        self,
        work: Sequence[Slice],
        on_page: Callable[[Page], None],
        on_split: Callable[[Slice, Slice], None] | None = None,
    ) -> None:
        """Read every slice to its end; raises the first error of any thread, or ReadStopped after a stop."""
        state = _Work(pending=deque(s for s in work if not s.done))
        condition = threading.Condition()

        def take() -> Slice | None:
            with condition:
                while True:
                    if state.error is not None or self.stop.is_set():
                        return None
                    if state.pending:
                        state.busy += 1
                        return state.pending.popleft()
                    if state.busy == 0:
                        condition.notify_all()
                        return None
                    state.idle += 1
                    condition.wait(0.5)
                    state.idle -= 1

        def maybe_split(part: Slice) -> Slice:
            with condition:
                wanted = state.idle > 0 and not state.pending
            top = part.cursor_time if part.cursor_time is not None else part.until
            if not wanted or part.done or top - part.since < 2 * MIN_SPLIT_S:
                return part
            middle = part.since + (top - part.since) // 2
            older = Slice(part.kind, part.since, middle, name=f"{part.name}+{middle}")
            narrowed = replace(part, since=middle)
            if on_split is not None:
                on_split(narrowed, older)
            with condition:
                state.pending.append(older)
                condition.notify()
            return narrowed

        def worker() -> None:
            while (part := take()) is not None:
                try:
                    while not part.done:
                        page = self.page(part)
                        on_page(page)
                        part = maybe_split(page.slice)
                except BaseException as error:  # handed to run(); the other threads stop after their page
                    with condition:
                        if state.error is None:
                            state.error = error
                        condition.notify_all()
                finally:
                    with condition:
                        state.busy -= 1
                        condition.notify_all()

        threads = [
            threading.Thread(target=worker, name=f"stripe-reader-{n}", daemon=True)
            for n in range(min(self.concurrency, max(1, len(state.pending))))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except KeyboardInterrupt:
            self.stop.set()
            for thread in threads:
                thread.join()
            raise
        if state.error is not None and not isinstance(state.error, ReadStopped):
            raise state.error
        if self.stop.is_set():
            raise ReadStopped


def read_all(
    reader: StripeReader, kinds: Sequence[str], since: int, until: int
) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
    """Every object of these kinds created in [since, until), by kind, and the API version they are in."""
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    versions: set[str] = set()
    lock = threading.Lock()

    def keep(page: Page) -> None:
        with lock:
            found[page.slice.kind].extend(page.objects)
            if page.api_version:
                versions.add(page.api_version)

    reader.run(slices(kinds, since, until, max(1, -(-reader.concurrency // max(1, len(kinds))))), keep)
    return found, min(versions) if versions else None
