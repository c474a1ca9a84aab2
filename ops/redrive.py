"""Move dead letters back to EventsQueue, all or filtered, and list them by reason.

Two ways to move. SQS's own StartMessageMoveTask is fast and server-side, but it moves
everything and keeps every attribute; so it is used only for an unfiltered, unbounded,
real move, and only where the endpoint has it (moto lacks it). Everything else copies:
receive a batch from the dead-letter queue, send each chosen message to EventsQueue with
its original body and receiver attributes (the dead-letter ones dropped, so the forwarder
sees a clean message), and delete a dead letter only after its copy was accepted. A crash
between send and delete leaves the dead letter in place, to reappear when its visibility
timeout ends: at worst a duplicate in EventsQueue, which the pipeline deduplicates.

Listing receives every dead letter too (SQS has no peek), holds them invisible while it
reads, and makes them visible again at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, TextIO

from revenue_webhooks.batching import by_count_and_bytes
from revenue_webhooks.service.envelope import (
    A_DL_AT,
    A_DL_ATTEMPTS,
    A_DL_DETAIL,
    A_DL_FIELD,
    A_DL_REASON,
    A_EVENT_ID,
    A_EVENT_TYPE,
    A_PROVIDER,
    A_RECEIVED_AT,
    DEAD_LETTER_ATTRIBUTES,
)

from . import local_stack
from .arguments import positive_int
from .deployed_stack import OUTPUT_DEAD_LETTER_QUEUE_URL, OUTPUT_QUEUE_URL, DeployedStack, StackLookupError
from .local_stack import LocalStackState
from .targets import UsageError

# What `--reason` matches for messages the SQS redrive policy moved: they carry no reason.
NO_REASON = "none"
UNKNOWN = "?"

BATCH_ENTRIES = 10  # SQS receive/send/delete batch limit
BATCH_BYTES = 1_048_576  # SendMessageBatch total (bodies and attributes)
DEFAULT_VISIBILITY_S = 120
DEFAULT_WAIT_S = 2
DEFAULT_EMPTY_RECEIVES = 3
TASK_POLL_S = 2.0
TASK_DONE = ("COMPLETED", "CANCELLED", "FAILED")

ENV = {"queue": "EVENTS_QUEUE_URL", "dead_letter_queue": "DEAD_LETTER_QUEUE_URL"}


# ---- the dead letter --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One received dead letter: the webhook as the receiver queued it, plus why it is here."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: Mapping[str, Any]  # ReceiveMessage form: {"DataType", "StringValue" | "BinaryValue"}

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> DeadLetter:
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message.get("Body", ""),
            attributes=message.get("MessageAttributes") or {},
        )

    def _text(self, name: str) -> str:
        return str((self.attributes.get(name) or {}).get("StringValue") or "")

    @property
    def reason(self) -> str:
        return self._text(A_DL_REASON) or NO_REASON

    @property
    def provider(self) -> str:
        return self._text(A_PROVIDER) or UNKNOWN

    @property
    def event_type(self) -> str:
        return self._text(A_EVENT_TYPE) or UNKNOWN

    @property
    def event_id(self) -> str:
        return self._text(A_EVENT_ID) or UNKNOWN

    @property
    def detail(self) -> str:
        return self._text(A_DL_DETAIL)

    @property
    def field(self) -> str:
        return self._text(A_DL_FIELD)

    @property
    def attempts(self) -> str:
        return self._text(A_DL_ATTEMPTS) or "-"

    @property
    def dead_lettered_at(self) -> str:
        return _iso_ms(self._text(A_DL_AT))

    @property
    def received_at(self) -> str:
        return _iso_ms(self._text(A_RECEIVED_AT))

    def original_attributes(self) -> dict[str, dict[str, Any]]:
        """The receiver's attributes in SendMessage form, without the dead-letter explanation."""
        clean: dict[str, dict[str, Any]] = {}
        for name, value in self.attributes.items():
            if name in DEAD_LETTER_ATTRIBUTES:
                continue
            attribute: dict[str, Any] = {"DataType": value.get("DataType", "String")}
            if value.get("BinaryValue") is not None:
                attribute["BinaryValue"] = value["BinaryValue"]
            else:
                attribute["StringValue"] = value.get("StringValue", "")
            clean[name] = attribute
        return clean

    def send_size(self) -> int:
        """Bytes this message counts towards SendMessageBatch's limit (body, names, types, values)."""
        size = len(self.body.encode("utf-8"))
        for name, value in self.original_attributes().items():
            payload = value.get("StringValue", value.get("BinaryValue", b""))
            size += (
                len(name) + len(value["DataType"]) + len(payload if isinstance(payload, bytes) else payload.encode())
            )
        return size


@dataclass(frozen=True)
class Filter:
    """Which dead letters to act on: shell patterns per attribute, any pattern of a kind may match.

    A reason pattern without a colon also matches the part before one, so `retries_exhausted`
    selects every `retries_exhausted:<last reason>`.
    """

    reasons: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not (self.reasons or self.event_types or self.providers)

    def matches(self, letter: DeadLetter) -> bool:
        reason = letter.reason
        return (
            _any(self.reasons, reason, reason.split(":", 1)[0])
            and _any(self.event_types, letter.event_type)
            and _any(self.providers, letter.provider)
        )


def _any(patterns: Sequence[str], *values: str) -> bool:
    return not patterns or any(fnmatchcase(value, pattern) for pattern in patterns for value in values)


# ---- outcome ----------------------------------------------------------------------------


@dataclass
class Summary:
    """What a redrive did, in the numbers an operator checks."""

    method: str
    dry_run: bool = False
    moved: int = 0
    skipped: int = 0
    failed: int = 0
    not_deleted: int = 0  # copied, but the dead letter stays and will reappear (a later duplicate is harmless)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.not_deleted)

    def render(self) -> str:
        verb = "would move" if self.dry_run else "moved"
        line = f"{verb} {self.moved}, skipped {self.skipped}, failed {self.failed} ({self.method})"
        if self.not_deleted:
            line += (
                f"; {self.not_deleted} copied but not deleted from the dead-letter queue: they will reappear there"
                " and a later redrive sends a duplicate, which the pipeline deduplicates"
            )
        if self.dry_run:
            line += "; dry run, nothing changed"
        return line


# ---- the work ---------------------------------------------------------------------------


class Redrive:
    """Dead-letter queue operations over any SQS client (boto3's, or a test's wrapper around it)."""

    def __init__(
        self,
        sqs: Any,
        dead_letter_queue_url: str,
        queue_url: str = "",
        *,
        visibility_timeout: int = DEFAULT_VISIBILITY_S,
        wait_seconds: int = DEFAULT_WAIT_S,
        empty_receives: int = DEFAULT_EMPTY_RECEIVES,
        task_sqs: Any = None,
        log: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sqs = sqs
        self.task_sqs = task_sqs or sqs  # for StartMessageMoveTask alone (see main: no retries)
        self.dead_letter_queue_url = dead_letter_queue_url
        self.queue_url = queue_url
        self.visibility_timeout = visibility_timeout
        self.wait_seconds = wait_seconds
        self.empty_receives = empty_receives
        self.log = log or sys.stderr
        self.sleep = sleep
        self._held: dict[str, str] = {}  # message id -> latest receipt handle, released at the end
        self._seen: set[str] = set()

    # -- listing --

    def dead_letters(self, selection: Filter | None = None, limit: int | None = None) -> list[DeadLetter]:
        """Every dead letter matching `selection`, left in the queue and visible again afterwards."""
        selection = selection or Filter()
        found: list[DeadLetter] = []
        try:
            for batch in self._batches(lambda: BATCH_ENTRIES if limit is None else limit - len(found)):
                found.extend(letter for letter in batch if selection.matches(letter))
        finally:
            self._release_held()
        return found

    # -- moving --

    def move(
        self,
        selection: Filter | None = None,
        *,
        dry_run: bool = False,
        limit: int | None = None,
        method: str = "auto",
        verbose: bool = False,
    ) -> Summary:
        """Move the matching dead letters to EventsQueue; `method` is auto, task or copy."""
        selection = selection or Filter()
        if not self.queue_url:
            raise UsageError("moving needs EventsQueue's URL: --queue-url, --stack or EVENTS_QUEUE_URL")
        source_arn, destination_arn = self._arn(self.dead_letter_queue_url), self._arn(self.queue_url)
        whole_queue = selection.everything and limit is None and not dry_run
        if method == "task" and not whole_queue:
            raise UsageError("--method task moves everything: it cannot filter, count a dry run or stop at --max")
        if method in ("auto", "task") and whole_queue:
            summary = self._move_task(source_arn, destination_arn, required=method == "task")
            if summary is not None:
                return summary
        return self._copy(selection, dry_run=dry_run, limit=limit, verbose=verbose)

    def _move_task(self, source_arn: str, destination_arn: str, *, required: bool) -> Summary | None:
        """Run SQS's own move task to completion; None when the endpoint does not offer it."""
        from botocore.exceptions import ClientError

        try:
            handle = self.task_sqs.start_message_move_task(SourceArn=source_arn, DestinationArn=destination_arn)[
                "TaskHandle"
            ]
        except ClientError as error:
            info = error.response.get("Error", {})
            message = str(info.get("Message") or "").strip()
            # An emulator may answer with an HTML error page: the code says enough then.
            why = (
                f"{info.get('Code', '?')}: {message.splitlines()[0]}"
                if message[:1] not in ("", "<")
                else info.get("Code", "?")
            )
            if required:
                raise UsageError(f"StartMessageMoveTask failed ({why})") from None
            print(f"StartMessageMoveTask unavailable ({why}); copying message by message instead", file=self.log)
            return None
        print(f"move task started ({handle}); waiting for it to finish", file=self.log)
        summary = Summary(method="SQS move task")
        try:
            while True:
                results = self.sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=1).get("Results") or []
                task = results[0] if results else {}
                status = task.get("Status", "RUNNING")
                summary.moved = int(task.get("ApproximateNumberOfMessagesMoved") or 0)
                if status in TASK_DONE:
                    break
                total = task.get("ApproximateNumberOfMessagesToMove")
                print(f"  {status.lower()}: {summary.moved}/{total if total is not None else '?'}", file=self.log)
                self.sleep(TASK_POLL_S)
        except KeyboardInterrupt:
            print(
                f"stopped waiting; the task goes on in SQS (cancel it with: aws sqs cancel-message-move-task"
                f" --task-handle {handle})",
                file=self.log,
            )
            raise
        if status != "COMPLETED":
            summary.failed = 1
            summary.problems.append(f"move task {status}: {task.get('FailureReason', 'no reason given')}")
        return summary

    def _copy(self, selection: Filter, *, dry_run: bool, limit: int | None, verbose: bool) -> Summary:
        summary = Summary(method="receive/send/delete", dry_run=dry_run)
        try:
            for batch in self._batches(lambda: BATCH_ENTRIES if limit is None else limit - summary.moved):
                chosen = []
                for letter in batch:
                    if selection.matches(letter):
                        chosen.append(letter)
                    else:
                        summary.skipped += 1
                        self._say(verbose, "skip", letter)
                if dry_run:
                    summary.moved += len(chosen)
                    for letter in chosen:
                        self._say(verbose, "would move", letter)
                    continue
                for chunk in by_count_and_bytes(  # SendMessageBatch: 10 entries and 1 MiB in total
                    chosen, DeadLetter.send_size, max_count=BATCH_ENTRIES, max_bytes=BATCH_BYTES
                ):
                    self._send_then_delete(chunk, summary, verbose)
        finally:
            self._release_held()
        return summary

    def _send_then_delete(self, chunk: list[DeadLetter], summary: Summary, verbose: bool) -> None:
        """Copy `chunk` to EventsQueue, then delete exactly the dead letters whose copy was accepted."""
        sent, failed = self._send(chunk)
        for letter, why in failed:
            summary.failed += 1
            summary.problems.append(f"send failed for {letter.event_id} ({letter.message_id}): {why}")
        self._release([letter for letter, _ in failed])  # visible again for a later run; this run won't retry
        if not sent:
            return
        entries = [{"Id": str(i), "ReceiptHandle": letter.receipt_handle} for i, letter in enumerate(sent)]
        response = self.sqs.delete_message_batch(QueueUrl=self.dead_letter_queue_url, Entries=entries)
        undeleted = {entry["Id"]: entry for entry in response.get("Failed") or []}
        for i, letter in enumerate(sent):
            summary.moved += 1
            if str(i) in undeleted:
                summary.not_deleted += 1
                summary.problems.append(
                    f"copied but not deleted {letter.event_id} ({letter.message_id}): {undeleted[str(i)].get('Message')}"
                )
            else:
                self._held.pop(letter.message_id, None)
            self._say(verbose, "moved", letter)

    def _send(self, chunk: list[DeadLetter]) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
        """(accepted, refused with why); a batch refused as a whole is retried one message at a time."""
        from botocore.exceptions import ClientError

        entries = [
            {"Id": str(i), "MessageBody": letter.body, "MessageAttributes": letter.original_attributes()}
            for i, letter in enumerate(chunk)
        ]
        try:
            response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except ClientError:
            # One bad message (too large for EventsQueue, say) must not hold back its nine neighbours.
            sent, failed = [], []
            for letter, entry in zip(chunk, entries, strict=True):
                try:
                    self.sqs.send_message(
                        QueueUrl=self.queue_url,
                        MessageBody=entry["MessageBody"],
                        MessageAttributes=entry["MessageAttributes"],
                    )
                    sent.append(letter)
                except ClientError as error:
                    info = error.response.get("Error", {})
                    failed.append((letter, f"{info.get('Code')}: {info.get('Message')}"))
            return sent, failed
        refused = {
            entry["Id"]: f"{entry.get('Code')}: {entry.get('Message')}" for entry in response.get("Failed") or []
        }
        accepted = {entry["Id"] for entry in response.get("Successful") or []}
        sent = [letter for i, letter in enumerate(chunk) if str(i) in accepted]
        failed = [
            (letter, refused.get(str(i), "not in the answer"))
            for i, letter in enumerate(chunk)
            if str(i) not in accepted
        ]
        return sent, failed

    # -- receiving --

    def _batches(self, wanted: Callable[[], int]) -> Iterator[list[DeadLetter]]:
        """Batches of dead letters new to this run, until several receives in a row bring nothing new.

        Received messages stay invisible (held) so one run sees each once; a message whose
        visibility ran out and came back is recognised by its id and held again.
        """
        idle = 0
        while idle < self.empty_receives:
            count = min(BATCH_ENTRIES, wanted())
            if count <= 0:
                return
            response = self.sqs.receive_message(
                QueueUrl=self.dead_letter_queue_url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=self.visibility_timeout,
                WaitTimeSeconds=self.wait_seconds,
                MessageAttributeNames=["All"],
            )
            fresh = []
            for message in response.get("Messages") or []:
                letter = DeadLetter.from_message(message)
                self._held[letter.message_id] = letter.receipt_handle
                if letter.message_id not in self._seen:
                    self._seen.add(letter.message_id)
                    fresh.append(letter)
            idle = 0 if fresh else idle + 1
            if fresh:
                yield fresh

    def _release(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self._held.pop(letter.message_id, None)
        self._change_visibility({letter.message_id: letter.receipt_handle for letter in letters})

    def _release_held(self) -> None:
        held, self._held = self._held, {}
        self._change_visibility(held)

    def _change_visibility(self, handles: Mapping[str, str]) -> None:
        """Make messages visible again at once; best effort, since their timeout frees them anyway."""
        items = list(handles.items())
        for start in range(0, len(items), BATCH_ENTRIES):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, (_, handle) in enumerate(items[start : start + BATCH_ENTRIES])
            ]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.dead_letter_queue_url, Entries=entries)
            except Exception as error:  # the visibility timeout releases them anyway
                print(f"could not make {len(entries)} dead letters visible again: {error}", file=self.log)

    def _arn(self, queue_url: str) -> str:
        """The queue's ARN; also proves the queue exists before anything is received."""
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    def _say(self, verbose: bool, what: str, letter: DeadLetter) -> None:
        if verbose:
            print(f"{what}: {letter.provider} {letter.event_type} {letter.event_id} [{letter.reason}]", file=self.log)


# ---- presentation -----------------------------------------------------------------------


def render_table(letters: Sequence[DeadLetter]) -> str:
    """Dead letters counted by reason, provider and event type, most frequent first."""
    counts = Counter((letter.reason, letter.provider, letter.event_type) for letter in letters)
    rows = [(reason, provider, event_type, str(n)) for (reason, provider, event_type), n in counts.items()]
    rows.sort(key=lambda row: (-int(row[3]), row[:3]))
    lines = _columns(("reason", "provider", "event type", "count"), rows, right=(3,))
    lines.append(f"total {len(letters)}")
    if any(letter.reason == NO_REASON for letter in letters):
        lines.append(
            f"{NO_REASON}: moved by the SQS redrive policy (the forwarder crashed or timed out); no reason recorded"
        )
    return "\n".join(lines)


def render_messages(letters: Sequence[DeadLetter]) -> str:
    """One line per dead letter with what an operator needs to decide, detail last (it can be long)."""
    header = (
        "event id",
        "provider",
        "event type",
        "reason",
        "attempts",
        "dead-lettered at",
        "received at",
        "field",
        "detail",
    )
    rows = [
        (
            letter.event_id,
            letter.provider,
            letter.event_type,
            letter.reason,
            letter.attempts,
            letter.dead_lettered_at,
            letter.received_at,
            letter.field or "-",
            letter.detail or "-",
        )
        for letter in letters
    ]
    return "\n".join(_columns(header, rows))


def _columns(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """Plain aligned columns; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i]) if i < len(row) - 1 else str(cell)
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _iso_ms(value: str) -> str:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return "-"


# ---- command line -----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueTarget:
    """The two queues a run works on, what named them, and the AWS to reach them through."""

    dead_letter_queue: str
    queue: str
    source: str  # said on stderr when it is not the flags: the stack, the environment, the local stack
    local: LocalStackState | None = None  # the local stack's moto, else the shell's usual AWS settings

    def client(self, **options: Any) -> Any:
        if self.local is not None:
            return self.local.client("sqs", **options)
        import boto3

        return boto3.client("sqs", **options)


def find_queues(args: argparse.Namespace, environ: Mapping[str, str], cloudformation: Any = None) -> QueueTarget:
    """Flags first, then the stack's outputs, then the environment, then the running local stack (`make dev`)."""
    dead_letter_queue, queue = args.dead_letter_queue_url or "", args.queue_url or ""
    source = "flags"
    if args.stack and not (dead_letter_queue and queue):
        stack = DeployedStack(args.stack, cloudformation)
        try:
            dead_letter_queue = dead_letter_queue or stack.output(OUTPUT_DEAD_LETTER_QUEUE_URL)
            queue = queue or stack.outputs.get(OUTPUT_QUEUE_URL, "")
        except StackLookupError as error:
            raise UsageError(str(error)) from None
        source = f"stack {args.stack}"
    if not (dead_letter_queue and queue) and (environ.get(ENV["dead_letter_queue"]) or environ.get(ENV["queue"])):
        dead_letter_queue = dead_letter_queue or environ.get(ENV["dead_letter_queue"], "")
        queue = queue or environ.get(ENV["queue"], "")
        source = f"{ENV['dead_letter_queue']} / {ENV['queue']}"
    if dead_letter_queue:
        return QueueTarget(dead_letter_queue, queue, source)
    local, why_not = local_stack.find(environ)
    if local is None:
        raise UsageError(
            f"which dead-letter queue? Pass --stack NAME (a deployed stack), --dead-letter-queue-url, or set "
            f"{ENV['dead_letter_queue']}; or start the local stack with `make dev` ({why_not})"
        )
    return QueueTarget(local.dead_letter_queue_url, local.events_queue_url, local.describe(), local)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="revenue-webhooks redrive",
        description="List dead letters by reason, or move them back to EventsQueue (all, or filtered).",
        epilog="Exit status: 0 done, 1 some messages failed, 2 usage or configuration error. See docs/operations.md.",
    )
    where = p.add_argument_group(
        "queues (flags, else --stack outputs, else EVENTS_QUEUE_URL / DEAD_LETTER_QUEUE_URL, else the running"
        " local stack that `make dev` describes in .devstack/stack.json)"
    )
    where.add_argument("--stack", help="CloudFormation stack name; reads EventsQueueUrl and EventsDeadLetterQueueUrl")
    where.add_argument("--dead-letter-queue-url", help="the dead-letter queue (EventsDeadLetterQueue)")
    where.add_argument("--queue-url", help="where messages go back to (EventsQueue)")
    what = p.add_argument_group("which dead letters (patterns like invoice.*; repeat a flag for any of several)")
    what.add_argument(
        "--reason",
        action="append",
        default=[],
        help=f"dead-letter reason; `retries_exhausted` matches every retries_exhausted:*, `{NO_REASON}` the redrive policy's",
    )
    what.add_argument("--event-type", action="append", default=[], help="provider event type, e.g. invoice.paid")
    what.add_argument("--provider", action="append", default=[], help="provider route, e.g. stripe")
    what.add_argument("--max", type=positive_int, help="act on at most this many dead letters")
    how = p.add_argument_group("how")
    how.add_argument("--list", action="store_true", help="list dead letters (reason, provider, event type, count)")
    how.add_argument("--verbose", "-v", action="store_true", help="one line per message")
    how.add_argument("--dry-run", action="store_true", help="count what would move; change nothing")
    how.add_argument(
        "--method",
        choices=("auto", "task", "copy"),
        default="auto",
        help="auto: SQS move task for an unfiltered move where available, else copy (default); "
        "copy: always receive/send/delete (clean attributes)",
    )
    how.add_argument(
        "--visibility-timeout",
        type=positive_int,
        default=DEFAULT_VISIBILITY_S,
        help=f"seconds a received dead letter stays hidden while this run works (default {DEFAULT_VISIBILITY_S})",
    )
    how.add_argument(
        "--wait-seconds",
        type=int,
        choices=range(21),
        metavar="0-20",
        default=DEFAULT_WAIT_S,
        help=f"long-poll wait per receive (default {DEFAULT_WAIT_S})",
    )
    how.add_argument(
        "--empty-receives",
        type=positive_int,
        default=DEFAULT_EMPTY_RECEIVES,
        help=f"stop after this many receives in a row bring nothing new (default {DEFAULT_EMPTY_RECEIVES})",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """`revenue-webhooks redrive` and `make redrive ARGS=...`."""
    args = parser().parse_args(argv)
    selection = Filter(tuple(args.reason), tuple(args.event_type), tuple(args.provider))
    from botocore.config import Config  # here, not at the top: `--help` and importing this module stay fast
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        target = find_queues(args, os.environ)
        if target.source != "flags":
            print(f"redrive: the queues of {target.source}", file=sys.stderr)
        redrive = Redrive(
            target.client(),
            target.dead_letter_queue,
            target.queue,
            visibility_timeout=args.visibility_timeout,
            wait_seconds=args.wait_seconds,
            empty_receives=args.empty_receives,
            # One attempt: an emulator's "not implemented" 500 would otherwise be retried for seconds.
            task_sqs=target.client(config=Config(retries={"total_max_attempts": 1})),
        )
        if args.list:
            letters = redrive.dead_letters(selection, args.max)
            print(render_table(letters))
            if args.verbose and letters:
                print()
                print(render_messages(letters))
            return 0
        summary = redrive.move(
            selection, dry_run=args.dry_run, limit=args.max, method=args.method, verbose=args.verbose
        )
    except UsageError as error:
        print(f"redrive: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"redrive: {error}", file=sys.stderr)
        return 1
    for problem in summary.problems:
        print(problem, file=sys.stderr)
    print(summary.render())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
