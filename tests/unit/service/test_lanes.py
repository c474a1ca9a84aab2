"""The lanes: a batch from the test queue goes to the test lane's forwarder (its sink, ledger and dead letters)."""

from __future__ import annotations

from typing import Any

from fakes import InMemoryLedger, RecordingQueue, ScriptedSink, transient
from revenue_webhooks import observability, providers
from revenue_webhooks.config import Settings
from revenue_webhooks.service.forwarder import Forwarder
from revenue_webhooks.service.lanes import Lanes, queue_name
from test_forwarder import checkout, record

SETTINGS = Settings(dead_letter_queue_url="https://sqs.local/live-dlq", max_receive_count=5)
TEST_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/stack-EventsTestQueue-AB12"
TEST_ARN = "arn:aws:sqs:us-east-1:123456789012:stack-EventsTestQueue-AB12"
LIVE_ARN = "arn:aws:sqs:us-east-1:123456789012:stack-EventsQueue-CD34"


class Lane:
    def __init__(self, mode: str, dlq: str) -> None:
        self.sink, self.ledger, self.dead_letters = ScriptedSink(), InMemoryLedger(), RecordingQueue()
        self.forwarder = Forwarder(
            SETTINGS,
            lambda route: providers.get_provider(route, SETTINGS),
            self.ledger,
            self.sink,
            self.dead_letters,
            "token-" + mode,
            mode=mode,
            dead_letter_queue_url=dlq,
        )


def from_queue(arn: str, body: bytes, **options: Any) -> dict[str, Any]:
    return {**record(body, **options), "eventSourceARN": arn}


def test_queue_names_from_urls_and_arns_agree() -> None:
    assert queue_name(TEST_QUEUE) == queue_name(TEST_ARN) == "stack-EventsTestQueue-AB12"


def test_each_batch_goes_to_the_lane_of_its_queue() -> None:
    live, test = Lane("live", ""), Lane("test", "https://sqs.local/test-dlq")
    lanes = Lanes(lambda: live.forwarder, lambda: test.forwarder, TEST_QUEUE)
    lanes.process([from_queue(TEST_ARN, checkout("t", user_id="u"))], lambda: 60_000)
    lanes.process([from_queue(LIVE_ARN, checkout("l", user_id="u"))], lambda: 60_000)
    assert [e["properties"]["Order ID"] for e in test.sink.imported] == ["cs_t"]
    assert [e["properties"]["Order ID"] for e in live.sink.imported] == ["cs_l"]
    assert {p["$token"] for p in test.sink.profiles} == {"token-test"}
    assert set(test.ledger.events) == {"stripe:payment:cs_t"} and set(live.ledger.events) == {"stripe:payment:cs_l"}
    assert observability.metrics.dimension_set.get("Mode") == "live"  # the invocation's EMF record names its lane


def test_a_test_lane_dead_letter_goes_to_the_test_dead_letter_queue() -> None:
    live, test = Lane("live", ""), Lane("test", "https://sqs.local/test-dlq")
    test.sink.answer = lambda event: transient("mixpanel_503")
    lanes = Lanes(lambda: live.forwarder, lambda: test.forwarder, TEST_QUEUE)
    assert lanes.process([from_queue(TEST_ARN, checkout("x"), attempts=5)], lambda: 60_000) == {"batchItemFailures": []}
    assert [m["QueueUrl"] for m in test.dead_letters.sent] == ["https://sqs.local/test-dlq"]
    assert live.dead_letters.sent == []


def test_without_a_test_lane_everything_is_live() -> None:
    live = Lane("live", "")
    lanes = Lanes(lambda: live.forwarder)
    lanes.process([from_queue(TEST_ARN, checkout("y"))], lambda: 60_000)
    assert [e["properties"]["Order ID"] for e in live.sink.imported] == ["cs_y"]
