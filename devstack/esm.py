"""An SQS event source mapping that polls as Lambda does, for the local stack and the tests.

Lambda's poller: gather up to BatchSize messages or wait MaximumBatchingWindowInSeconds,
invoke the function with the standard SQS event, delete the messages that succeeded, and
leave failed ones invisible until their visibility timeout ends; the queue's redrive
policy moves a message to the dead-letter queue after maxReceiveCount receives. With
ReportBatchItemFailures only the listed messages failed; a response of the wrong shape or
an exception fails the whole batch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from .background import Background
from .lambda_runtime import Handler, LambdaContext

MAX_RECEIVE = 10  # SQS ReceiveMessage limit per call


def sqs_record(
    *,
    message_id: str,
    receipt_handle: str,
    body: str,
    message_attributes: Mapping[str, Mapping[str, Any]],
    attributes: Mapping[str, str],
    queue_arn: str,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """One record of a Lambda SQS event, as the event source mapping delivers a message.

    `message_attributes` are in SendMessage / ReceiveMessage form (`StringValue`, `DataType`).
    """
    record: dict[str, Any] = {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": dict(attributes),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message_attributes.items()
        },
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message_attributes:
        from revenue_webhooks.adapters.sqs import attributes_md5  # SQS's own algorithm, as the layer checks it

        record["md5OfMessageAttributes"] = attributes_md5(message_attributes)
    return record


class EventSourceMapping(Background):
    thread_name = "event-source-mapping"

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        context_factory: Callable[[], LambdaContext],
        *,
        batch_size: int,
        batching_window_s: float,
        report_batch_item_failures: bool = True,
        on_batch: Callable[[list[dict[str, Any]], set[str]], None] | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.context_factory = context_factory
        self.batch_size = batch_size
        self.batching_window_s = batching_window_s
        self.report_batch_item_failures = report_batch_item_failures
        self.on_batch = on_batch
        self.invocations = 0
        super().__init__()

    # ---- one poll ------------------------------------------------------------------------

    def poll_once(self, wait_s: float | None = None) -> int:
        """Gather one batch, invoke the handler, settle the messages; returns the batch size."""
        messages = self._gather(self.batching_window_s if wait_s is None else wait_s)
        if not messages:
            return 0
        records = [self._record(message) for message in messages]
        failed = self._invoke(records)
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(succeeded), MAX_RECEIVE):
            chunk = succeeded[start : start + MAX_RECEIVE]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        if self.on_batch:
            self.on_batch(records, failed)
        return len(messages)

    def _gather(self, window_s: float) -> list[dict[str, Any]]:
        """Receive until the batch is full or the batching window has passed (at least one receive)."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + window_s
        while len(messages) < self.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            messages += self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(MAX_RECEIVE, self.batch_size - len(messages)),
                WaitTimeSeconds=1 if remaining >= 1 else 0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if time.monotonic() >= deadline:
                break
        return messages

    def _invoke(self, records: list[dict[str, Any]]) -> set[str]:
        """Message ids that failed, by Lambda's rules for SQS partial batch responses."""
        all_ids = {r["messageId"] for r in records}
        self.invocations += 1
        try:
            response = self.handler({"Records": records}, self.context_factory())
        except Exception:
            return all_ids
        if not self.report_batch_item_failures:
            return set()
        if response is None:
            return set()
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not isinstance(failures, list):
            return all_ids
        failed: set[str] = set()
        for item in failures:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in all_ids:
                return all_ids  # an invalid identifier fails the whole batch
            failed.add(identifier)
        return failed

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return sqs_record(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message["Body"],
            message_attributes=message.get("MessageAttributes") or {},
            attributes=message.get("Attributes", {}),
            queue_arn=self.queue_arn,
        )

    # ---- loops ---------------------------------------------------------------------------

    def depth(self) -> int:
        """Visible plus in-flight messages."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def drain(self, timeout_s: float, *, wait_s: float = 0.0) -> bool:
        """Poll until the queue holds nothing (visible or in flight) or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.poll_once(wait_s) == 0:
                if self.depth() == 0:
                    return True
                time.sleep(0.2)
        return self.depth() == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.poll_once() == 0:
                    self._stop.wait(0.2)
            except Exception:  # keep polling through a transient emulator error, like Lambda's poller
                self._stop.wait(1.0)
