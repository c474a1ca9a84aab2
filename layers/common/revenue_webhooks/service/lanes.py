"""Lanes: live and test-mode webhooks, each through its own forwarder, chosen by the queue a batch came from.

With a test project (Mode=any, TestEventsTo=test-project) the receiver puts test-mode webhooks in their own
queue; Lambda's event source mappings then hand the forwarder batches of one queue each. Each lane is a
`Forwarder` on its own ports: its Mixpanel project (its own client, so its own batching and backoff), its
ledger namespace, its dead-letter queue, and `Mode` on its metrics. Nothing here knows AWS or Mixpanel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import observability
from .forwarder import Forwarder

LIVE = "live"
TEST = "test"


def queue_name(locator: str) -> str:
    """A queue's name from its URL (`.../<account>/<name>`) or its ARN (`arn:aws:sqs:<region>:<account>:<name>`)."""
    return locator.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


class Lanes:
    """Routes each SQS batch to the lane of its source queue: the test queue's to the test lane, others live.

    The lanes are built on first use (`live()`, `test()`): the test lane reads its own credentials secret,
    which a deployment without a test project never needs.
    """

    def __init__(
        self,
        live: Callable[[], Forwarder],
        test: Callable[[], Forwarder] | None = None,
        test_queue: str = "",
    ) -> None:
        self.live = live
        self.test = test
        self.test_queue = queue_name(test_queue) if test_queue else ""

    def mode_of(self, record: dict[str, Any]) -> str:
        source = str(record.get("eventSourceARN") or "")
        return TEST if self.test is not None and source and queue_name(source) == self.test_queue else LIVE

    def process(self, records: list[dict[str, Any]], remaining_ms: Callable[[], int]) -> dict[str, Any]:
        """One SQS batch (Lambda's mappings give one queue a batch; a mixed one is split), partial failures merged."""
        by_mode: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_mode.setdefault(self.mode_of(record), []).append(record)
        failures: list[dict[str, str]] = []
        for mode, batch in by_mode.items():
            observability.tag_lane(mode)
            forwarder = self.test() if mode == TEST and self.test is not None else self.live()
            failures += forwarder.process(batch, remaining_ms)["batchItemFailures"]
        return {"batchItemFailures": failures}
