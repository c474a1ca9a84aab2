"""Delivery that loses nothing: each Mixpanel fault, poison messages and configuration errors, end to end.

The real receiver and forwarder run against moto's SQS and DynamoDB (server mode, over HTTP) and the
Mixpanel test server (over HTTP), which a test scripts to fail. The event source mapping honours
batchItemFailures, the 1 s visibility timeout and the redrive policy. Every test ends by counting: each
webhook is in Mixpanel exactly once after deduplication, or in the dead-letter queue saying why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness import SHORT_TIMEOUTS, Pipeline, stripe_checkout
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.service import forwarder as forwarder_module
from revenue_webhooks.service.envelope import to_sqs

from devstack.mixpanel import DEMO_CREDENTIALS, Fault

# The forwarder keeps SAFETY_MARGIN_S of its Timeout back; what is left is its time to back off in.
ONE_SECOND_TO_BACK_OFF = forwarder_module.SAFETY_MARGIN_S + 1.0
NO_TIME_TO_BACK_OFF = forwarder_module.SAFETY_MARGIN_S

Start = Callable[..., Pipeline]


@pytest.fixture
def start() -> Iterator[Start]:
    """Start pipelines with fast Mixpanel timeouts and about a second to back off in; close them after the test."""
    running: list[Pipeline] = []

    def make(**options: Any) -> Pipeline:
        options["extra_env"] = {**SHORT_TIMEOUTS, **options.get("extra_env", {})}
        options.setdefault("forwarder_timeout_s", ONE_SECOND_TO_BACK_OFF)
        running.append(Pipeline(**options))
        return running[-1]

    yield make
    for pipeline in running:
        pipeline.close()


# ---- helpers -------------------------------------------------------------------------------------------


def tags(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:04d}" for n in range(count)]


def post_orders(pipeline: Pipeline, order_tags: list[str]) -> dict[str, bytes]:
    """Post one paid Checkout per tag (every third with a user id, so profiles go to /engage too)."""
    bodies = {}
    for n, tag in enumerate(order_tags):
        bodies[tag] = stripe_checkout(tag, created=1_700_000_000 + n, user_id=f"user-{tag}" if n % 3 == 0 else None)
        response = pipeline.post_stripe(bodies[tag])
        assert (response["statusCode"], json.loads(response["body"])) == (200, {"status": "accepted"})
    return bodies


def record_batches(pipeline: Pipeline) -> list[tuple[list[str], set[str]]]:
    """(message ids, failed ids) of every forwarder invocation, as the event source mapping saw them."""
    batches: list[tuple[list[str], set[str]]] = []
    pipeline.esm.on_batch = lambda records, failed: batches.append(([r["messageId"] for r in records], set(failed)))
    return batches


def receives(pipeline: Pipeline) -> list[tuple[int, bool]]:
    """(receive count, failed) of each message each time the forwarder got it."""
    seen: list[tuple[int, bool]] = []

    def on_batch(records: list[dict[str, Any]], failed: set[str]) -> None:
        seen.extend((int(r["attributes"]["ApproximateReceiveCount"]), r["messageId"] in failed) for r in records)

    pipeline.esm.on_batch = on_batch
    return seen


def max_receive_count(pipeline: Pipeline) -> int:
    return int(pipeline.environment["MAX_RECEIVE_COUNT"])


def assert_delivered_exactly_once(pipeline: Pipeline, order_tags: list[str]) -> None:
    fates = pipeline.fates()
    assert fates.lost(order_tags) == []
    assert fates.duplicated() == []
    assert {tag: fates.delivered[tag] for tag in order_tags} == dict.fromkeys(order_tags, 1)
    assert fates.dead_letters == {}


def dead_letter_attributes(dead_letter: dict[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in dead_letter["MessageAttributes"].items()}


def assert_explains_itself(
    dead_letter: dict[str, Any],
    *,
    body: bytes,
    reason: str,
    attempts: int,
    since_ms: int,
    detail: str = "",
    field: str | None = None,
) -> None:
    """The original webhook, unchanged, with why (reason, Mixpanel's message, the field), when and after how many tries."""
    assert dead_letter["Body"] == body.decode()
    attributes = dead_letter_attributes(dead_letter)
    assert attributes["dead_letter_reason"] == reason
    assert detail in attributes["dead_letter_detail"]
    assert attributes.get("dead_letter_field") == field
    assert since_ms <= int(attributes["dead_letter_at"]) <= int(time.time() * 1000)
    assert attributes["dead_letter_attempts"] == str(attempts)
    assert {"provider", "event_id", "event_type", "received_at"} <= set(attributes)  # the receiver's, kept


def emitted(output: str, metric: str) -> list[dict[str, Any]]:
    """The EMF documents on stdout that carry `metric` (what CloudWatch would turn into metrics)."""
    documents = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    return [doc for doc in documents if metric in doc]


# ---- transient faults ------------------------------------------------------------------------------------

TRANSIENT_FAULTS = {
    "500": Fault.http(500),
    "502": Fault.http(502),
    "503": Fault.http(503),
    "429": Fault.rate_limited(),
    "slow": Fault.slow(1.0),
    "slow-but-stored": Fault.slow(1.0, store=True),
    "disconnect": Fault.disconnect(),
}


@pytest.mark.parametrize("fault", list(TRANSIENT_FAULTS))
def test_transient_faults_are_retried_until_every_event_is_delivered_once(start: Start, fault: str) -> None:
    pipeline = start()
    orders = tags(f"t{fault}", 12)
    post_orders(pipeline, orders)
    pipeline.mixpanel.faults.push(*[TRANSIENT_FAULTS[fault]] * 3)

    assert pipeline.drain(60)

    assert_delivered_exactly_once(pipeline, orders)
    assert pipeline.mixpanel.faults.served == {TRANSIENT_FAULTS[fault].name: 3}
    assert pipeline.limit_breaches() == []


def test_413_splits_the_request_and_delivers_every_event(start: Start) -> None:
    pipeline = start()
    orders = tags("split", 12)
    post_orders(pipeline, orders)
    pipeline.mixpanel.faults.push(Fault.http(413, path="/import"))

    assert pipeline.drain(30)

    sizes = [(r["records"], r["status"]) for r in pipeline.mixpanel.requests_log("/import")]
    assert sizes == [(10, 413), (5, 200), (5, 200), (2, 200)]
    assert_delivered_exactly_once(pipeline, orders)
    assert pipeline.limit_breaches() == []


def test_trouble_past_the_deadline_reports_exactly_the_undelivered_messages(start: Start) -> None:
    pipeline = start()
    batches = record_batches(pipeline)
    orders = tags("deadline", 10)
    post_orders(pipeline, orders)
    # The first half of the batch gets through after a 413 split; the second half meets 503s until the deadline.
    pipeline.mixpanel.faults.push(
        Fault.http(413, path="/import"), Fault.reject(predicate=lambda _: False, path="/import")
    )
    pipeline.mixpanel.faults.random(seed=7, rates={"503": 1.0}, path="/import")

    assert pipeline.esm.poll_once(0) == 10

    ((ids, failed),) = batches
    assert failed == set(ids[5:]), "exactly the messages whose events were in the failing half"
    assert pipeline.queue_depth() == 5
    assert len(pipeline.mixpanel.requests_log("/import")) > 4, "it backed off and retried within the invocation"
    pipeline.mixpanel.faults.clear()
    assert pipeline.drain(30)
    assert_delivered_exactly_once(pipeline, orders)


def test_retries_run_out_into_the_dead_letter_queue_with_the_last_reason(start: Start) -> None:
    pipeline = start(forwarder_timeout_s=NO_TIME_TO_BACK_OFF)
    seen = receives(pipeline)
    orders = tags("exhausted", 3)
    bodies = post_orders(pipeline, orders)
    pipeline.mixpanel.faults.random(seed=3, rates={"503": 1.0}, path="/import")
    since_ms = int(time.time() * 1000)

    assert pipeline.drain(60)

    last = max_receive_count(pipeline)
    assert sorted(seen) == sorted((n, n < last) for n in range(1, last + 1) for _ in orders), "retried, then not"
    fates = pipeline.fates()
    assert sum(fates.delivered.values()) == 0 and fates.lost(orders) == []
    for tag in orders:
        assert_explains_itself(
            fates.dead_letters[tag],
            body=bodies[tag],
            reason="retries_exhausted:mixpanel_503",
            detail="503 Service Unavailable",
            attempts=last,
            since_ms=since_ms,
        )


# ---- invalid events ----------------------------------------------------------------------------------------


def test_events_mixpanel_rejects_are_dead_lettered_at_once_and_the_rest_delivered(start: Start) -> None:
    pipeline = start()
    orders = tags("reject", 12)
    rejected = {orders[3], orders[7], orders[11]}
    bodies = post_orders(pipeline, orders)
    rejection = Fault.reject(
        predicate=lambda event: event["properties"]["Order ID"].removeprefix("cs_") in rejected,
        field="properties.Revenue",
        message="'properties.Revenue' is invalid: rejected by an injected fault",
        path="/import",
    )
    pipeline.mixpanel.faults.push(rejection, rejection)  # one for each batch (10 messages, then 2)
    since_ms = int(time.time() * 1000)

    assert pipeline.drain(30)

    fates = pipeline.fates()
    assert fates.lost(orders) == [] and fates.duplicated() == []
    assert {tag for tag in orders if fates.delivered[tag]} == set(orders) - rejected
    assert set(fates.dead_letters) == rejected
    for tag in rejected:
        assert_explains_itself(
            fates.dead_letters[tag],
            body=bodies[tag],
            reason="mixpanel_rejected_event",
            detail="rejected by an injected fault",
            field="properties.Revenue",
            attempts=1,
            since_ms=since_ms,
        )
    # Two batches (10 + 2), one request each: nothing rejected was sent to Mixpanel twice.
    assert [(r["records"], r["status"]) for r in pipeline.mixpanel.requests_log("/import")] == [(10, 400), (2, 400)]
    assert pipeline.limit_breaches() == []


# ---- poison messages -------------------------------------------------------------------------------------


def queued(provider: str, tag: str, body: bytes) -> dict[str, Any]:
    return to_sqs(QueuedEvent(provider, f"evt_{tag}", "checkout.session.completed", int(time.time() * 1000), body))


def without_session_id(tag: str) -> bytes:
    event = json.loads(stripe_checkout(tag))
    del event["data"]["object"]["id"]  # the receiver accepts it; mapping a paid Checkout needs it
    return json.dumps(event).encode()


@pytest.mark.parametrize(
    ("kind", "reason", "detail"),
    [
        ("malformed-body", "mapping_error", "PayloadInvalid"),
        ("unknown-provider", "unknown_provider", "nonesuch"),
        ("mapping-exception", "mapping_error", "KeyError: 'id'"),
        ("rendering-exception", "mapping_error", "RuntimeError: cannot render"),
        ("not-from-the-receiver", "mapping_error", "lacks attributes"),
    ],
)
def test_a_poison_message_is_isolated_and_the_rest_of_its_batch_delivered(
    start: Start, monkeypatch: pytest.MonkeyPatch, kind: str, reason: str, detail: str
) -> None:
    pipeline = start()
    batches = record_batches(pipeline)
    poison = f"poison-{kind}"
    since_ms = int(time.time() * 1000)
    if kind == "malformed-body":
        body = b'{"id": "evt_poison", "type": "checkout.session.completed", "data": {'
        pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, **queued("stripe", poison, body))
    elif kind == "unknown-provider":
        body = stripe_checkout(poison)
        pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, **queued("nonesuch", poison, body))
    elif kind == "mapping-exception":
        body = without_session_id(poison)
        assert pipeline.post_stripe(body)["statusCode"] == 200
    elif kind == "rendering-exception":
        render = forwarder_module.mixpanel_event

        def failing_render(fact: Any, settings: Any) -> dict[str, Any]:
            if fact.order_id == f"cs_{poison}":
                raise RuntimeError("cannot render")
            return render(fact, settings)

        monkeypatch.setattr(forwarder_module, "mixpanel_event", failing_render)
        body = stripe_checkout(poison)
        assert pipeline.post_stripe(body)["statusCode"] == 200
    else:
        body = stripe_checkout(poison)
        pipeline.sqs.send_message(QueueUrl=pipeline.queue_url, MessageBody=body.decode())
    orders = tags(f"beside-{kind}", 6)
    post_orders(pipeline, orders)

    assert pipeline.drain(30)

    ((ids, failed),) = batches  # one invocation held the poison and the good messages
    assert (len(ids), failed) == (7, set())
    assert_delivered_exactly_once_but(pipeline, orders, poison)
    (dead_letter,) = pipeline.dead_letters()
    if kind == "not-from-the-receiver":
        assert_bare_dead_letter(dead_letter, body, detail)
    else:
        assert_explains_itself(dead_letter, body=body, reason=reason, detail=detail, attempts=1, since_ms=since_ms)


def assert_delivered_exactly_once_but(pipeline: Pipeline, order_tags: list[str], poison: str) -> None:
    fates = pipeline.fates()
    assert fates.lost(order_tags) == [] and fates.duplicated() == []
    assert {tag: fates.delivered[tag] for tag in order_tags} == dict.fromkeys(order_tags, 1)
    assert fates.delivered[poison] == 0


def assert_bare_dead_letter(dead_letter: dict[str, Any], body: bytes, detail: str) -> None:
    """A message with none of the receiver's attributes still arrives unchanged, with the dead-letter ones."""
    assert dead_letter["Body"] == body.decode()
    attributes = dead_letter_attributes(dead_letter)
    assert attributes["dead_letter_reason"] == "mapping_error"
    assert detail in attributes["dead_letter_detail"]
    assert attributes["dead_letter_attempts"] == "1" and int(attributes["dead_letter_at"]) > 0


# ---- configuration errors ----------------------------------------------------------------------------------


def test_a_passing_401_retries_the_whole_batch_and_raises_the_config_metric(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = start()
    batches = record_batches(pipeline)
    orders = tags("auth-blip", 8)
    post_orders(pipeline, orders)
    pipeline.mixpanel.faults.push(Fault.http(401, path="/import"))

    assert pipeline.drain(30)

    (first_ids, first_failed), *_ = batches
    assert first_failed == set(first_ids), "nothing delivered, nothing dropped: the whole batch is retried"
    statuses = [r["status"] for r in pipeline.mixpanel.requests_log("/import")]
    assert statuses[0] == 401 and set(statuses[1:]) == {200}
    assert_delivered_exactly_once(pipeline, orders)
    assert emitted(capsys.readouterr().out, "MixpanelConfigError")


def test_wrong_credentials_retry_every_batch_then_dead_letter_with_the_reason_and_alarm(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = {**DEMO_CREDENTIALS.secret_value(), "service_account_secret": "rotated-away"}
    pipeline = start(mixpanel_credentials=wrong)
    seen = receives(pipeline)
    orders = tags("wrong-secret", 4)
    bodies = post_orders(pipeline, orders)
    since_ms = int(time.time() * 1000)

    assert pipeline.drain(60)

    last = max_receive_count(pipeline)
    assert sorted(seen) == sorted((n, n < last) for n in range(1, last + 1) for _ in orders), "all retried, then not"
    fates = pipeline.fates()
    assert sum(fates.ingested.values()) == 0 and fates.lost(orders) == []
    for tag in orders:
        assert_explains_itself(
            fates.dead_letters[tag],
            body=bodies[tag],
            reason="retries_exhausted:mixpanel_401",
            detail="Invalid credentials",
            attempts=last,
            since_ms=since_ms,
        )
    # The metric is the one the template's alarm watches.
    alarm = pipeline.template.properties("MixpanelConfigErrorAlarm")
    documents = emitted(capsys.readouterr().out, alarm["MetricName"])
    assert sum(sum(document[alarm["MetricName"]]) for document in documents) == len(orders) * last
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == alarm["Namespace"]
        assert all(document[d["Name"]] == d["Value"] for d in alarm["Dimensions"])


# ---- profiles ---------------------------------------------------------------------------------------------


def test_profile_update_failures_retry_the_message_without_duplicating_its_event(start: Start) -> None:
    pipeline = start()
    orders = tags("profile", 3)  # the first has a user id, so a profile
    post_orders(pipeline, orders)
    pipeline.mixpanel.faults.push(Fault.http(503, path="/engage"), Fault.http(401, path="/engage"))

    assert pipeline.drain(30)

    assert_delivered_exactly_once(pipeline, orders)
    fates = pipeline.fates()
    assert fates.ingested[orders[0]] == 3, "re-sent with each retry of its message, one copy after dedup"
    assert pipeline.mixpanel.profiles()[f"user-{orders[0]}"]["Purchase Count"] == 1
    assert pipeline.limit_breaches() == []
