"""Stripe's history into the pipeline: every paid invoice, Checkout payment, PaymentIntent, refund and
subscription since a date, enqueued to EventsQueue as the webhook Stripe sent for it.

Each listed object becomes the snapshot event Stripe would have delivered (`invoice.paid` for a paid invoice,
revenue_webhooks/providers/_stripe_objects.py), in the queue message format the receiver writes, so the
forwarder maps it with the webhooks' own code: the same facts, the same `$insert_id`s, the same ledger
entries. A payment seen by a webhook and by the backfill is one event in Mixpanel. Historical times go to
Mixpanel's `/import`, which takes any time after 1971.

- Fast: each kind's period is read in parallel time slices under Stripe's read limit, honouring 429s
  (revenue_webhooks/adapters/stripe_reader.py).
- Resumable: after each page is enqueued, its slice's cursor is written to a checkpoint file (one per slice)
  under --state-dir; after a crash, a kill or Ctrl-C the same command goes on from there. A page enqueued
  twice (a kill between the send and the checkpoint) is harmless: the ledger keeps each fact once.
- Idempotent: objects whose facts the ledger already holds are not enqueued again (unless --include-recorded
  or --ids), objects that count nothing (a subscription-mode Checkout, a $0 invoice) are not enqueued at all;
  and what is enqueued twice is deduplicated by the ledger and by Mixpanel.

Exit status: 0 done, 1 Stripe or AWS failed (run it again to resume), 2 usage or configuration error, 130
interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from revenue_webhooks.adapters.stripe_api import key_mode, stripe_client
from revenue_webhooks.adapters.stripe_reader import (
    Page,
    RateLimiter,
    ReadStopped,
    Slice,
    StripeReader,
    default_rate,
    slices,
)
from revenue_webhooks.batching import by_count_and_bytes
from revenue_webhooks.domain.facts import Deferred, Fact
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.providers._stripe_objects import ID_PREFIXES, KINDS, KINDS_BY_NAME, kind_of_id
from revenue_webhooks.service.envelope import to_sqs
from revenue_webhooks.service.recorded import held

from .arguments import positive_int
from .redrive import BATCH_BYTES, BATCH_ENTRIES
from .targets import Deployment, UsageError, add_stack_arguments, day_after, iso, moment

PROVIDER = "stripe"
PROVIDERS = ("stripe", "appstore")  # whose history `revenue-webhooks backfill` reads (ops/backfill_command.py)
SEND_ATTEMPTS = 4
DEFAULT_STATE_DIR = Path(".backfill")
DEFAULT_CONCURRENCY = 16


class BackfillFailed(Exception):
    """Stripe or AWS failed after retries; what was checkpointed stays, the same command resumes."""


# ---- what to enqueue -----------------------------------------------------------------------


@dataclass
class Tally:
    """What a run did, by kind and in total; thread-safe."""

    read: Counter[str] = field(default_factory=Counter)
    enqueued: int = 0
    recorded: int = 0  # the ledger holds every fact of the object's event already
    nothing: int = 0  # the object counts nothing (no fact): not enqueued
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, other: Tally) -> None:
        with self.lock:
            self.read.update(other.read)
            self.enqueued += other.enqueued
            self.recorded += other.recorded
            self.nothing += other.nothing

    def line(self) -> str:
        kinds = ", ".join(f"{self.read[k.name]} {k.name.replace('_', ' ')}" for k in KINDS if self.read[k.name])
        return (
            f"read {sum(self.read.values())} objects ({kinds or 'none'}); enqueued {self.enqueued}, "
            f"skipped {self.recorded} already in the ledger, {self.nothing} that count nothing"
        )


class Enqueuer:
    """Objects' events into EventsQueue, minus those that count nothing or that the ledger already holds."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        ledger: Any,
        provider: Any,
        *,
        dry_run: bool = False,
        include_recorded: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.ledger = ledger  # revenue_webhooks Ledger, or None: nothing is skipped as recorded
        self.provider = provider
        self.dry_run = dry_run
        self.include_recorded = include_recorded
        self.clock = clock

    def submit(self, kind: str, objects: Sequence[dict[str, Any]], api_version: str | None) -> Tally:
        tally = Tally()
        tally.read[kind] += len(objects)
        received = int(self.clock() * 1000)
        queued = [
            QueuedEvent(
                PROVIDER, event["id"], event["type"], received, json.dumps(event, separators=(",", ":")).encode()
            )
            for obj in objects
            for event in KINDS_BY_NAME[kind].events(obj, api_version)
        ]
        return self.enqueue(queued, tally)

    def enqueue(self, queued: Sequence[QueuedEvent], tally: Tally) -> Tally:
        """Queued webhooks (of any provider) into EventsQueue, minus what counts nothing or the ledger holds."""
        chosen: list[QueuedEvent] = []
        checked: list[tuple[QueuedEvent, list[Any]]] = []  # mapped: the ledger is asked whether it holds them
        for item in queued:
            try:
                mapped = list(self.provider.map(item))
            except Exception:  # the forwarder will dead-letter it with the reason: let it see it
                chosen.append(item)
                continue
            if not any(isinstance(f, Fact | Deferred) for f in mapped):
                tally.nothing += 1
                continue
            checked.append((item, mapped))
        if self.ledger is not None and not self.include_recorded and checked:
            # The forwarder's and catch-up's answer (service/recorded.py): a payment recorded under its Checkout
            # Session's or invoice's key is held for its PaymentIntent too, and the other way round.
            found = held(self.ledger, [mapped for _, mapped in checked])
            tally.recorded += sum(found)
            checked = [pair for pair, recorded in zip(checked, found, strict=True) if not recorded]
        chosen += [item for item, _ in checked]
        if chosen and not self.dry_run:
            self._send(chosen)
        tally.enqueued += len(chosen)
        return tally

    def _send(self, items: list[QueuedEvent]) -> None:
        """SendMessageBatch (10 messages, 1 MiB), retrying refused entries; raises when some never go."""
        messages = [to_sqs(item) for item in items]
        for chunk in by_count_and_bytes(
            messages,
            lambda m: len(m["MessageBody"].encode()) + 512,
            max_count=BATCH_ENTRIES,
            max_bytes=BATCH_BYTES,
        ):
            pending = {str(i): message for i, message in enumerate(chunk)}
            for attempt in range(SEND_ATTEMPTS):
                entries = [{"Id": i, **message} for i, message in pending.items()]
                try:
                    response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
                except Exception as error:
                    if attempt == SEND_ATTEMPTS - 1:
                        raise BackfillFailed(f"EventsQueue refused a batch: {error}") from error
                    time.sleep(0.2 * 2**attempt)
                    continue
                for entry in response.get("Successful") or []:
                    pending.pop(entry["Id"], None)
                if not pending:
                    break
                refused = response.get("Failed") or []
                if any(entry.get("SenderFault") for entry in refused) or attempt == SEND_ATTEMPTS - 1:
                    why = "; ".join(f"{e.get('Code')}: {e.get('Message')}" for e in refused) or "no answer for some"
                    raise BackfillFailed(f"EventsQueue refused {len(pending)} messages: {why}")
                time.sleep(0.2 * 2**attempt)


# ---- checkpoints --------------------------------------------------------------------------


class Checkpoints:
    """One JSON file per slice (its bounds, cursor and count) and run.json, each replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.slice_dir = directory / "slices"

    def exists(self) -> bool:
        return (self.directory / "run.json").is_file()

    def run_info(self) -> dict[str, Any]:
        return dict(json.loads((self.directory / "run.json").read_text()))

    def start(self, info: dict[str, Any], work: list[Slice]) -> None:
        self.slice_dir.mkdir(parents=True, exist_ok=True)
        for part in work:
            self.save(part)
        self._write(self.directory / "run.json", info)

    def finish(self, info: dict[str, Any]) -> None:
        self._write(self.directory / "run.json", info)

    def update(self, info: dict[str, Any]) -> None:
        """run.json with a new cursor: a backfill read through one cursor (the App Store's) keeps it there."""
        self._write(self.directory / "run.json", info)

    def load(self) -> list[Slice]:
        return [Slice.from_json(json.loads(path.read_text())) for path in sorted(self.slice_dir.glob("*.json"))]

    def save(self, part: Slice) -> None:
        self._write(self.slice_dir / f"{part.name}.json", part.as_json())

    @staticmethod
    def _write(path: Path, data: dict[str, Any]) -> None:
        temporary = path.with_name(path.name + ".tmp")
        with temporary.open("w") as file:
            json.dump(data, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)


# ---- progress --------------------------------------------------------------------------------


class Progress:
    """A bar over the period's seconds still to read (Stripe gives no totals), with counts and an ETA."""

    def __init__(self, work: Sequence[Slice], tally: Tally, out: TextIO, enabled: bool | None) -> None:
        from tqdm import tqdm

        total = sum(part.until - part.since for part in work)
        done = total - sum(part.remaining_s for part in work)
        self.tally = tally
        self.bar = tqdm(
            total=total,
            initial=done,
            file=out,
            disable=enabled is False or (enabled is None and not out.isatty()),
            bar_format="{l_bar}{bar}| {percentage:3.0f}% of the period, {elapsed} elapsed, ETA {remaining}{postfix}",
            desc="backfill",
        )
        self.lock = threading.Lock()

    def advance(self, before: Slice, after: Slice) -> None:
        with self.lock:
            self.bar.update(before.remaining_s - after.remaining_s)
            read = sum(self.tally.read.values())
            self.bar.set_postfix_str(
                f"read {read}, enqueued {self.tally.enqueued}, in ledger {self.tally.recorded}", refresh=False
            )

    def close(self) -> None:
        self.bar.close()


# ---- the run -------------------------------------------------------------------------------


@dataclass
class Run:
    """One backfill: reader, enqueuer, checkpoints and progress wired together."""

    reader: StripeReader
    enqueuer: Enqueuer
    checkpoints: Checkpoints | None  # None for a dry run
    out: TextIO
    progress_enabled: bool | None = None
    tally: Tally = field(default_factory=Tally)

    def period(self, work: list[Slice]) -> Tally:
        progress = Progress(work, self.tally, self.out, self.progress_enabled)
        current = {part.name: part for part in work}
        lock = threading.Lock()

        def on_page(page: Page) -> None:
            self.tally.add(self.enqueuer.submit(page.slice.kind, page.objects, page.api_version))
            if self.checkpoints is not None:
                self.checkpoints.save(page.slice)
            with lock:
                before = current.get(page.slice.name, page.slice)
                current[page.slice.name] = page.slice
            progress.advance(before, page.slice)

        def on_split(narrowed: Slice, older: Slice) -> None:
            if self.checkpoints is not None:  # the new slice first: a crash between the two writes overlaps them
                self.checkpoints.save(older)
                self.checkpoints.save(narrowed)
            with lock:
                current[older.name] = older
                current[narrowed.name] = narrowed

        try:
            self.reader.run(work, on_page, on_split)
        finally:
            progress.close()
        return self.tally

    def ids(self, object_ids: Sequence[str]) -> Tally:
        """Enqueue these objects (retrieved one by one), whatever the ledger holds: a reconcile's repair."""
        errors: list[str] = []

        def one(object_id: str) -> None:
            kind = kind_of_id(object_id)
            assert kind is not None  # checked by main
            try:
                obj, version = self.reader.retrieve(kind, object_id)
            except Exception as error:
                errors.append(f"{object_id}: {error}")
                return
            self.tally.add(self.enqueuer.submit(kind.name, [obj], version))

        threads = []
        pending = list(object_ids)
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if not pending:
                        return
                    object_id = pending.pop()
                one(object_id)

        for _ in range(min(self.reader.concurrency, len(pending))):
            thread = threading.Thread(target=worker, daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        if errors:
            raise BackfillFailed("could not read " + "; ".join(errors))
        return self.tally


def initial_slices(concurrency: int, kinds: Sequence[str]) -> int:
    """Slices per kind to start with: one per thread; idle threads then split busy slices (stripe_reader)."""
    return max(1, -(-concurrency // max(1, len(kinds))))


def state_directory(root: Path, key: str, base: str, queue_url: str, since: int, until_arg: str | None) -> Path:
    """Where a backfill keeps its checkpoints: one directory per account, deployment and period asked for."""
    fingerprint = hashlib.sha256(f"{key}|{base}|{queue_url}".encode()).hexdigest()[:12]
    until = until_arg.replace(":", "") if until_arg else "now"
    return root / f"{key_mode(key)}-{fingerprint}-{iso(since)[:10]}-{until}"


# ---- command line ----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="revenue-webhooks backfill",
        description="Enqueue Stripe's history (paid invoices, completed Checkout Sessions, succeeded PaymentIntents, "
        "refunds, subscriptions) as the webhooks Stripe sent, so Mixpanel holds every payment from day one, once.",
        epilog="Stripe: STRIPE_API_KEY (a restricted key with the read permissions in docs/operations.md) and "
        "STRIPE_API_BASE (default Stripe's API). Exit status: 0 done, 1 Stripe or AWS failed (run again to "
        "resume), 2 usage or configuration error, 130 interrupted (run the same command again to resume).",
    )
    what = p.add_argument_group("what")
    what.add_argument(
        "--provider",
        choices=PROVIDERS,
        default=PROVIDER,
        help="whose history: stripe (default), or appstore (Apple's notification history: "
        "`revenue-webhooks backfill --provider appstore --help`)",
    )
    what.add_argument("--since", type=moment, help="first day (YYYY-MM-DD, UTC) or time (ISO 8601)")
    what.add_argument("--until", help="last day, inclusive (YYYY-MM-DD), or an ISO 8601 time (default: now)")
    what.add_argument(
        "--ids",
        help="comma-separated object ids to enqueue whatever the ledger holds (reconcile prints them): "
        + ", ".join(f"{prefix}..." for prefix in ID_PREFIXES),
    )
    what.add_argument(
        "--kinds",
        default=",".join(kind.name for kind in KINDS),
        help=f"which lists to read (default all): {', '.join(kind.name for kind in KINDS)}",
    )
    how = p.add_argument_group("how")
    how.add_argument("--dry-run", action="store_true", help="read and count; enqueue nothing, write no checkpoint")
    how.add_argument("--include-recorded", action="store_true", help="also enqueue objects the ledger already holds")
    how.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"reading threads (default {DEFAULT_CONCURRENCY})",
    )
    how.add_argument(
        "--rate",
        type=float,
        help="Stripe requests per second (default 80%% of Stripe's read limit: 80 live, 20 test)",
    )
    how.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for one Stripe answer (default 30; then retried)"
    )
    how.add_argument(
        "--page-size", type=positive_int, default=100, help="objects per Stripe list request, 1-100 (default 100)"
    )
    how.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        help="seconds of the first pause after Stripe's 429, doubling up to 32 (default 1)",
    )
    how.add_argument(
        "--slices",
        type=positive_int,
        help="time slices per kind to start with (default: the threads shared by the kinds)",
    )
    how.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where checkpoints are kept (default .backfill)"
    )
    how.add_argument("--restart", action="store_true", help="forget this period's checkpoints and read it all again")
    how.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the progress bar (default: on a terminal)",
    )
    add_stack_arguments(p)
    return p


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    """Stripe's backfill (`revenue-webhooks backfill` chooses it: ops/backfill_command.py)."""
    return exit_status(lambda: _main(parser().parse_args(argv), out or sys.stderr))


def exit_status(run: Callable[[], int]) -> int:
    """A backfill's exit status: 2 for a usage or configuration error, 1 when Stripe, Apple or AWS failed."""
    try:
        return run()
    except UsageError as error:
        print(f"backfill: {error}", file=sys.stderr)
        return 2
    except BackfillFailed as error:
        print(f"backfill: {error}\nRun the same command again to resume.", file=sys.stderr)
        return 1


def _main(args: argparse.Namespace, out: TextIO) -> int:
    import boto3
    import stripe
    from botocore.exceptions import BotoCoreError, ClientError
    from revenue_webhooks.adapters.dynamodb_ledger import DynamoDbLedger
    from revenue_webhooks.config import ConfigError, from_environ
    from revenue_webhooks.providers import get_provider

    if (args.since is None) == (args.ids is None):
        raise UsageError("give --since DATE (a period) or --ids ID,... (objects), one of the two")
    kinds = [name.strip() for name in args.kinds.split(",") if name.strip()]
    unknown = [name for name in kinds if name not in KINDS_BY_NAME]
    if unknown or not kinds:
        raise UsageError(f"--kinds {unknown or args.kinds!r}: expected some of {', '.join(KINDS_BY_NAME)}")
    object_ids = [i.strip() for i in (args.ids or "").split(",") if i.strip()]
    strangers = [i for i in object_ids if kind_of_id(i) is None]
    if strangers:
        raise UsageError(f"--ids {', '.join(strangers)}: expected ids starting with {', '.join(ID_PREFIXES)}")
    if args.rate is not None and args.rate <= 0:
        raise UsageError("--rate must be above 0")

    deployment = Deployment.find(args)
    key, base = deployment.stripe()
    lane = deployment.lane(key, args.lane)
    queue_url = deployment.queue_url(lane, args.queue_url)
    if not queue_url and not args.dry_run:
        variable = "TEST_EVENTS_QUEUE_URL" if lane == "test" else "EVENTS_QUEUE_URL"
        raise UsageError(f"which queue of the {lane} lane? Pass --queue-url, --stack NAME or set {variable}")
    table = deployment.value(args.ledger_table, "LedgerTableName", "LEDGER_TABLE")
    try:
        settings = from_environ(os.environ)
    except ConfigError as error:
        raise UsageError(str(error)) from None

    until_arg = args.until
    if not 1 <= args.page_size <= 100:
        raise UsageError("--page-size must be between 1 and 100 (Stripe's limit)")
    limiter = RateLimiter(args.rate or default_rate(key), backoff_base_s=args.backoff)
    reader = StripeReader(
        stripe_client(key, base, timeout_s=args.timeout),
        limiter,
        concurrency=args.concurrency,
        page_size=args.page_size,
    )
    namespace = "" if lane == "live" else lane  # the test lane's facts live under their own keys
    ledger = DynamoDbLedger(table, boto3.client("dynamodb"), namespace=namespace) if table else None
    enqueuer = Enqueuer(
        boto3.client("sqs") if queue_url else None,
        queue_url,
        ledger,
        get_provider(PROVIDER, settings),
        dry_run=args.dry_run,
        include_recorded=args.include_recorded or bool(object_ids),
    )
    started = time.monotonic()
    try:
        if object_ids:
            run = Run(reader, enqueuer, None, out, args.progress)
            tally = run.ids(object_ids)
        else:
            done = _period(args, key, base, queue_url, until_arg, kinds, reader, enqueuer, out)
            if done is None:
                return 0
            tally = done
    except ReadStopped:
        print("\nbackfill: interrupted; run the same command again to resume from the checkpoints", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nbackfill: interrupted; run the same command again to resume from the checkpoints", file=sys.stderr)
        return 130
    except stripe.AuthenticationError as error:
        raise UsageError(f"Stripe refused the key in {('STRIPE_API_KEY')}: {error.user_message or error}") from None
    except stripe.PermissionError as error:
        raise UsageError(
            f"the Stripe key may not read this: {error.user_message or error} (docs/operations.md lists the permissions)"
        ) from None
    except (stripe.StripeError, ClientError, BotoCoreError) as error:
        raise BackfillFailed(f"{type(error).__name__}: {error}") from None
    elapsed = time.monotonic() - started
    verb = "would enqueue" if args.dry_run else "enqueued"
    summary = tally.line().replace("enqueued", verb, 1)
    print(
        f"backfill: {summary}; {reader.requests} Stripe requests ({limiter.throttled} rate-limited) in {elapsed:.1f} s",
        file=sys.stdout,
    )
    return 0


def _period(
    args: argparse.Namespace,
    key: str,
    base: str,
    queue_url: str,
    until_arg: str | None,
    kinds: list[str],
    reader: StripeReader,
    enqueuer: Enqueuer,
    out: TextIO,
) -> Tally | None:
    """Read the period from its checkpoints (or from the start); None when it was finished before."""
    since = int(args.since)
    checkpoints = None
    if args.dry_run:
        until = day_after(until_arg) if until_arg else int(time.time())
        work = slices(kinds, since, until, args.slices or initial_slices(args.concurrency, kinds))
    else:
        directory = state_directory(args.state_dir, key, base, queue_url, since, until_arg)
        checkpoints = Checkpoints(directory)
        if args.restart and directory.exists():
            shutil.rmtree(directory)
        if checkpoints.exists():
            info = checkpoints.run_info()
            if info.get("kinds") != kinds:
                raise UsageError(
                    f"{directory} holds a backfill of {info.get('kinds')}; pass the same --kinds or --restart"
                )
            until = int(info["until"])
            work = checkpoints.load()
            if info.get("finished_at"):
                print(
                    f"backfill: {iso(since)} to {iso(until)} was finished at {info['finished_at']} "
                    f"({sum(p.read for p in work)} objects); --restart reads it again (the ledger skips what it holds)",
                    file=sys.stdout,
                )
                return None
            left = sum(1 for part in work if not part.done)
            print(f"backfill: resuming {iso(since)} to {iso(until)} from {directory} ({left} slices left)", file=out)
        else:
            until = day_after(until_arg) if until_arg else int(time.time())
            if until <= since:
                raise UsageError(f"--until {iso(until)} is not after --since {iso(since)}")
            work = slices(kinds, since, until, args.slices or initial_slices(args.concurrency, kinds))
            checkpoints.start(
                {"since": since, "until": until, "kinds": kinds, "started_at": iso(int(time.time()))}, work
            )
            print(f"backfill: {iso(since)} to {iso(until)}, checkpoints in {directory}", file=out)
    run = Run(reader, enqueuer, checkpoints, out, args.progress)
    tally = run.period(work)
    if checkpoints is not None:
        info = {**checkpoints.run_info(), "finished_at": iso(int(time.time())), "read": sum(tally.read.values())}
        checkpoints.finish(info)
    return tally


if __name__ == "__main__":
    raise SystemExit(main())
