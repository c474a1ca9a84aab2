"""Redrive against moto's SQS over HTTP: what moves, what stays, and that nothing is lost."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.service.envelope import DEAD_LETTER_ATTRIBUTES, dead_letter_attributes, from_message, to_sqs

from ops import redrive

pytest.importorskip("moto")

FAST = ["--wait-seconds", "0", "--empty-receives", "2"]


class Queues:
    """EventsQueue and its dead-letter queue, made as the template makes them (redrive policy included)."""

    def __init__(self, events_queue_max_bytes: int | None = None) -> None:
        self.sqs = boto3.client("sqs")
        suffix = uuid.uuid4().hex[:8]
        self.dead_letter_queue = self.sqs.create_queue(QueueName=f"EventsDeadLetterQueue-{suffix}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.dead_letter_queue, AttributeNames=["QueueArn"])
        attributes = {
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": 1})
        }
        if events_queue_max_bytes:
            attributes["MaximumMessageSize"] = str(events_queue_max_bytes)
        self.queue = self.sqs.create_queue(QueueName=f"EventsQueue-{suffix}", Attributes=attributes)["QueueUrl"]

    def dead_letter(
        self,
        event_type: str,
        reason: str | None,
        *,
        provider: str = "stripe",
        body: str | None = None,
        field: str | None = None,
    ) -> str:
        """Put a dead letter as the forwarder writes it (reason attributes beside the receiver's); returns its event id."""
        event_id = f"evt_{uuid.uuid4().hex[:12]}"
        raw = body or json.dumps({"id": event_id, "type": event_type, "data": {"object": {}}})
        queued = to_sqs(QueuedEvent(provider, event_id, event_type, 1_764_000_000_000, raw.encode()))
        if reason is None:
            return self._policy_dead_letter(queued, event_id)
        attributes = {
            **queued["MessageAttributes"],
            **dead_letter_attributes(reason, f"why {event_id}", field, 1_764_000_100_000, 5),
        }
        self.sqs.send_message(
            QueueUrl=self.dead_letter_queue, MessageBody=queued["MessageBody"], MessageAttributes=attributes
        )
        return event_id

    def _policy_dead_letter(self, queued: dict[str, Any], event_id: str) -> str:
        """A real redrive-policy dead letter: received once too often from EventsQueue, SQS moves it."""
        self.sqs.send_message(QueueUrl=self.queue, **queued)
        for _ in range(2):
            self.sqs.receive_message(QueueUrl=self.queue, VisibilityTimeout=0, MaxNumberOfMessages=10)
        assert not self.messages(self.queue, visibility=0), "the redrive policy should have moved it"
        return event_id

    def messages(self, queue_url: str, visibility: int = 30) -> list[dict[str, Any]]:
        """Everything visible in a queue (held for `visibility` seconds)."""
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=visibility, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return found
            found += batch
            if visibility == 0:
                return found

    def event_ids(self, queue_url: str) -> list[str]:
        return sorted(m["MessageAttributes"]["event_id"]["StringValue"] for m in self.messages(queue_url))

    def env(self) -> list[str]:
        return ["--dead-letter-queue-url", self.dead_letter_queue, "--queue-url", self.queue]


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "EVENTS_QUEUE_URL", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    return moto_endpoint


@pytest.fixture
def queues(aws: str) -> Queues:
    return Queues()


def test_unfiltered_move_sends_every_dead_letter_back_clean(
    queues: Queues, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [
        queues.dead_letter("invoice.paid", "retries_exhausted:mixpanel_429"),
        queues.dead_letter("charge.refunded", "unattributed"),
        queues.dead_letter("checkout.session.completed", None),
    ]
    sent_bodies = {m["Body"] for m in queues.messages(queues.dead_letter_queue, visibility=0)}
    # The local stack's variables are enough; no flags needed.
    monkeypatch.setenv("EVENTS_QUEUE_URL", queues.queue)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queues.dead_letter_queue)

    assert redrive.main(FAST) == 0

    out, err = capsys.readouterr()
    assert "moved 3, skipped 0, failed 0" in out
    assert "StartMessageMoveTask unavailable" in err  # moto lacks it: the copy path ran
    moved = queues.messages(queues.queue)
    assert sorted(m["MessageAttributes"]["event_id"]["StringValue"] for m in moved) == sorted(ids)
    assert {m["Body"] for m in moved} == sent_bodies
    for message in moved:
        names = set(message["MessageAttributes"])
        assert names == {"provider", "event_id", "event_type", "received_at"}
        assert not names & set(DEAD_LETTER_ATTRIBUTES)
        from_message(message)  # the forwarder reads it as a fresh webhook
    assert queues.messages(queues.dead_letter_queue) == []


def test_filter_by_reason_moves_only_that_reason(queues: Queues, capsys: pytest.CaptureFixture[str]) -> None:
    exhausted = queues.dead_letter("invoice.paid", "retries_exhausted:mixpanel_429")
    rejected = [queues.dead_letter("invoice.paid", "mixpanel_rejected_event", field="properties.Plan") for _ in "ab"]
    other = [queues.dead_letter("invoice.paid", "mapping_error"), queues.dead_letter("invoice.paid", None)]

    assert redrive.main([*queues.env(), *FAST, "--reason", "retries_exhausted"]) == 0
    assert "moved 1, skipped 4, failed 0" in capsys.readouterr().out
    assert queues.event_ids(queues.queue) == [exhausted]

    # The skipped ones were made visible again at once, so a second run sees them.
    assert redrive.main([*queues.env(), *FAST, "--reason", "mixpanel_rejected_event"]) == 0
    assert "moved 2, skipped 2, failed 0" in capsys.readouterr().out
    assert queues.event_ids(queues.queue) == sorted(rejected)
    assert queues.event_ids(queues.dead_letter_queue) == sorted(other)


def test_reason_none_selects_redrive_policy_dead_letters(queues: Queues, capsys: pytest.CaptureFixture[str]) -> None:
    crashed = queues.dead_letter("invoice.paid", None)
    queues.dead_letter("invoice.paid", "mapping_error")

    assert redrive.main([*queues.env(), *FAST, "--reason", "none"]) == 0
    assert "moved 1, skipped 1" in capsys.readouterr().out
    assert queues.event_ids(queues.queue) == [crashed]


def test_filter_by_event_type(queues: Queues, capsys: pytest.CaptureFixture[str]) -> None:
    invoices = [queues.dead_letter(t, "mapping_error") for t in ("invoice.paid", "invoice.payment_failed")]
    refund = queues.dead_letter("charge.refunded", "mapping_error")

    assert redrive.main([*queues.env(), *FAST, "--event-type", "invoice.*"]) == 0
    assert "moved 2, skipped 1, failed 0" in capsys.readouterr().out
    assert queues.event_ids(queues.queue) == sorted(invoices)
    assert queues.event_ids(queues.dead_letter_queue) == [refund]


def test_max_bounds_the_move(queues: Queues, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(5):
        queues.dead_letter("invoice.paid", "mapping_error")

    assert redrive.main([*queues.env(), *FAST, "--max", "2"]) == 0
    assert "moved 2, skipped 0, failed 0" in capsys.readouterr().out
    assert len(queues.messages(queues.queue)) == 2
    assert len(queues.messages(queues.dead_letter_queue)) == 3


def test_dry_run_counts_and_moves_nothing(queues: Queues, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [queues.dead_letter("invoice.paid", "mapping_error") for _ in range(3)]
    queues.dead_letter("charge.refunded", "unattributed")

    assert redrive.main([*queues.env(), *FAST, "--dry-run", "--reason", "mapping_error"]) == 0
    out = capsys.readouterr().out
    assert "would move 3, skipped 1, failed 0" in out
    assert "dry run, nothing changed" in out
    assert queues.messages(queues.queue) == []
    assert set(ids) <= set(queues.event_ids(queues.dead_letter_queue))  # all still there, and visible


def test_list_counts_by_reason_provider_and_event_type(queues: Queues, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        queues.dead_letter("invoice.paid", "mixpanel_rejected_event", field="properties.Amount")
    queues.dead_letter("invoice.paid", "retries_exhausted:mixpanel_429")
    queues.dead_letter("order_created", "mapping_error", provider="lemonsqueezy")
    queues.dead_letter("checkout.session.completed", None)

    assert redrive.main(["--dead-letter-queue-url", queues.dead_letter_queue, *FAST, "--list"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["reason", "provider", "event", "type", "count"]
    assert rows[1] == ["mixpanel_rejected_event", "stripe", "invoice.paid", "3"]
    assert ["mapping_error", "lemonsqueezy", "order_created", "1"] in rows
    assert ["retries_exhausted:mixpanel_429", "stripe", "invoice.paid", "1"] in rows
    assert ["none", "stripe", "checkout.session.completed", "1"] in rows
    assert ["total", "6"] in rows

    # Listing leaves every dead letter where it was, visible.
    assert len(queues.messages(queues.dead_letter_queue)) == 6


def test_list_verbose_shows_each_message(queues: Queues, capsys: pytest.CaptureFixture[str]) -> None:
    rejected = queues.dead_letter("invoice.paid", "mixpanel_rejected_event", field="properties.Amount")

    assert redrive.main(["--dead-letter-queue-url", queues.dead_letter_queue, *FAST, "--list", "--verbose"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(rejected))
    for expected in ("mixpanel_rejected_event", "properties.Amount", f"why {rejected}", "5", "2025-11-24T16:"):
        assert expected in line


def test_a_message_whose_send_fails_is_not_deleted(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    queues = Queues(events_queue_max_bytes=1024)  # EventsQueue refuses the big one
    small = [queues.dead_letter("invoice.paid", "mapping_error") for _ in range(2)]
    big = queues.dead_letter("invoice.paid", "mapping_error", body=json.dumps({"pad": "x" * 2000}))

    assert redrive.main([*queues.env(), *FAST]) == 1

    out, err = capsys.readouterr()
    assert "moved 2, skipped 0, failed 1" in out
    assert f"send failed for {big}" in err
    assert queues.event_ids(queues.queue) == sorted(small)
    # Not deleted, and visible again at once.
    assert [
        m["MessageAttributes"]["event_id"]["StringValue"] for m in queues.messages(queues.dead_letter_queue, 0)
    ] == [big]


class RefusesOneEntry:
    """An SQS client whose SendMessageBatch answers one entry with a per-entry failure, as SQS can."""

    def __init__(self, sqs: Any, refused_event_id: str) -> None:
        self._sqs = sqs
        self._refused = refused_event_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        keep = [e for e in Entries if e["MessageAttributes"]["event_id"]["StringValue"] != self._refused]
        refused = [e for e in Entries if e not in keep]
        response = self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=keep) if keep else {"Successful": []}
        failed = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"} for e in refused
        ]
        return {"Successful": response["Successful"], "Failed": failed}


def test_a_per_entry_send_failure_is_not_deleted_and_is_visible_again(queues: Queues) -> None:
    good = queues.dead_letter("invoice.paid", "mapping_error")
    refused = queues.dead_letter("invoice.paid", "mapping_error")
    tool = redrive.Redrive(
        RefusesOneEntry(queues.sqs, refused), queues.dead_letter_queue, queues.queue, wait_seconds=0, empty_receives=2
    )

    summary = tool.move(method="copy")

    assert (summary.moved, summary.failed, summary.ok) == (1, 1, False)
    assert queues.event_ids(queues.queue) == [good]
    assert [
        m["MessageAttributes"]["event_id"]["StringValue"] for m in queues.messages(queues.dead_letter_queue, 0)
    ] == [refused]


class DiesAfterSend:
    """An SQS client of a process that dies right after SendMessageBatch: no delete, no clean-up."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def delete_message_batch(self, **kwargs: Any) -> Any:
        raise RuntimeError("killed between send and delete")

    def change_message_visibility_batch(self, **kwargs: Any) -> Any:
        raise RuntimeError("killed")


def test_a_crash_between_send_and_delete_loses_nothing(queues: Queues, capsys: pytest.CaptureFixture[str]) -> None:
    ids = sorted(queues.dead_letter("invoice.paid", "retries_exhausted:mixpanel_503") for _ in range(3))
    dying = redrive.Redrive(
        DiesAfterSend(queues.sqs), queues.dead_letter_queue, queues.queue, visibility_timeout=1, wait_seconds=0
    )

    with pytest.raises(RuntimeError, match="killed between send and delete"):
        dying.move(method="copy")

    assert queues.event_ids(queues.queue) == ids  # the copies are in EventsQueue...
    time.sleep(1.5)
    assert (
        sorted(m["MessageAttributes"]["event_id"]["StringValue"] for m in queues.messages(queues.dead_letter_queue, 0))
        == ids
    )  # ...and the dead letters came back when their visibility timeout ended

    # The next redrive sends them again: duplicates, which the pipeline deduplicates; nothing is missing.
    assert redrive.main([*queues.env(), *FAST]) == 0
    assert "moved 3, skipped 0, failed 0" in capsys.readouterr().out
    assert queues.event_ids(queues.queue) == ids  # the second copies (the first are held by the check above)
    assert queues.messages(queues.dead_letter_queue) == []


def test_stack_outputs_name_the_queues(queues: Queues, capsys: pytest.CaptureFixture[str]) -> None:
    event_id = queues.dead_letter("invoice.paid", "mapping_error")
    stack = f"revenue-webhooks-{uuid.uuid4().hex[:6]}"
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "EventsQueueUrl": {"Value": queues.queue},
            "EventsDeadLetterQueueUrl": {"Value": queues.dead_letter_queue},
        },
    }
    boto3.client("cloudformation").create_stack(StackName=stack, TemplateBody=json.dumps(template))

    assert redrive.main(["--stack", stack, *FAST]) == 0
    assert "moved 1, skipped 0, failed 0" in capsys.readouterr().out
    assert queues.event_ids(queues.queue) == [event_id]


def test_missing_queue_is_a_usage_error(aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert redrive.main(["--list"]) == 2
    assert "DEAD_LETTER_QUEUE_URL" in capsys.readouterr().err


class WithMoveTask:
    """An SQS client of an endpoint that has StartMessageMoveTask (moto has not): moves via the real queues."""

    def __init__(self, sqs: Any, queues: Queues) -> None:
        self._sqs = sqs
        self._queues = queues
        self.started: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def start_message_move_task(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        self.moved = 0
        for message in self._queues.messages(self._queues.dead_letter_queue):
            self._sqs.send_message(
                QueueUrl=self._queues.queue, MessageBody=message["Body"], MessageAttributes=message["MessageAttributes"]
            )
            self._sqs.delete_message(QueueUrl=self._queues.dead_letter_queue, ReceiptHandle=message["ReceiptHandle"])
            self.moved += 1
        return {"TaskHandle": "task-1"}

    def list_message_move_tasks(self, **kwargs: Any) -> dict[str, Any]:
        return {"Results": [{"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": self.moved}]}


def test_unfiltered_move_uses_the_sqs_move_task_where_available(queues: Queues) -> None:
    for _ in range(2):
        queues.dead_letter("invoice.paid", "mapping_error")
    client = WithMoveTask(queues.sqs, queues)
    tool = redrive.Redrive(client, queues.dead_letter_queue, queues.queue, wait_seconds=0, empty_receives=2)

    summary = tool.move()

    assert (summary.method, summary.moved, summary.ok) == ("SQS move task", 2, True)
    dlq_arn = queues.sqs.get_queue_attributes(QueueUrl=queues.dead_letter_queue, AttributeNames=["QueueArn"])
    assert client.started[0]["SourceArn"] == dlq_arn["Attributes"]["QueueArn"]

    # A filtered move never uses it: the task cannot filter.
    queues.dead_letter("invoice.paid", "mapping_error")
    assert tool.move(redrive.Filter(reasons=("mapping_error",))).method == "receive/send/delete"
    assert len(client.started) == 1
