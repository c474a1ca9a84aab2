"""The forwarder's every outcome, on in-memory fakes of its ports: no moto, no HTTP, milliseconds a test.

The integration suites (tests/integration/test_delivery_faults.py, test_revenue_truth.py) check the same
outcomes through SQS, DynamoDB and the local Mixpanel; these pin the service's decisions themselves.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import InMemoryLedger, RecordingQueue, ScriptedLookups, ScriptedSink, transient
from revenue_webhooks import providers
from revenue_webhooks.config import Settings
from revenue_webhooks.domain.outcomes import Outcome, Result
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.service.envelope import to_sqs
from revenue_webhooks.service.forwarder import Forwarder
from stripe_story import Story, full_history

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SETTINGS = Settings(dead_letter_queue_url="https://sqs.local/dlq", max_receive_count=5)
PLENTY_MS = 60_000


def checkout(tag: str, *, user_id: str | None = None, created: int = 1_700_000_000) -> bytes:
    event = json.loads((FIXTURES / "stripe" / "checkout.session.completed.payment_mode.json").read_bytes())
    event.update(id=f"evt_{tag}", created=created)
    event["data"]["object"].update(id=f"cs_{tag}", customer=f"cus_{tag}", payment_intent=f"pi_{tag}")
    if user_id:
        event["data"]["object"]["metadata"] = {"user_id": user_id}
    return json.dumps(event).encode()


def record(body: bytes, *, attempts: int = 1, provider: str = "stripe", message_id: str = "") -> dict[str, Any]:
    """A Lambda SQS record of a queued webhook, as the event source mapping delivers it."""
    try:
        event = json.loads(body)
    except ValueError:  # a body only a broken sender would queue: the record still needs its attributes
        event = {"id": "evt_raw", "type": "checkout.session.completed"}
    message = to_sqs(QueuedEvent(provider, event["id"], event["type"], 1_700_000_000_000, body))
    return {
        "messageId": message_id or f"msg-{event['id']}",
        "body": message["MessageBody"],
        "attributes": {"ApproximateReceiveCount": str(attempts)},
        "messageAttributes": {
            name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
            for name, value in message["MessageAttributes"].items()
        },
    }


class Rig:
    def __init__(
        self,
        sink: ScriptedSink | None = None,
        settings: Settings = SETTINGS,
        payments: Any | None = None,
        *,
        lookups: ScriptedLookups | None = None,
    ) -> None:
        """`payments`: Stripe's API for payment lookups (a `fakes.ScriptedPayments`), as with a key configured;
        `lookups`: the app stores' APIs (Google Play's), None as when none is configured."""
        self.ledger = InMemoryLedger()
        self.sink = sink or ScriptedSink()
        self.dead_letters = RecordingQueue()
        self.payments = payments
        self.lookups = lookups
        self.forwarder = Forwarder(
            settings,
            lambda route: providers.get_provider(route, settings),
            self.ledger,
            self.sink,
            self.dead_letters,
            project_token="token",
            payment_lookups=lambda provider: payments if provider == "stripe" else None,
            lookups=lookups,
        )

    def run(self, *records: dict[str, Any], remaining_ms: int = PLENTY_MS) -> list[str]:
        """One batch; the message ids Lambda is told to retry."""
        answer = self.forwarder.process(list(records), lambda: remaining_ms)
        return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]


def by_insert_id(outcomes: dict[str, Result]) -> Callable[[dict[str, Any]], Result]:
    """A sink answer: the result scripted for an event's Order ID, else delivered."""

    def answer(event: dict[str, Any]) -> Result:
        return outcomes.get(event["properties"].get("Order ID", ""), Result(Outcome.DELIVERED))

    return answer


# ---- delivered ------------------------------------------------------------------------------------------


def test_a_paid_checkout_is_one_purchase_and_its_customers_totals() -> None:
    rig = Rig()
    assert rig.run(record(checkout("a", user_id="user-a"))) == []
    (event,) = rig.sink.imported
    assert (event["event"], event["properties"]["Revenue"], event["properties"]["distinct_id"]) == (
        "Purchase Completed",
        250,  # the fixture's amount_total 25000 (cents of USD)
        "user-a",
    )
    (profile,) = rig.sink.profiles
    assert profile["$distinct_id"] == "user-a" and profile["$set"]["Purchase Count"] == 1
    assert rig.dead_letters.sent == []


def test_a_redelivered_webhook_sends_the_same_bytes_and_counts_once() -> None:
    rig = Rig()
    body = checkout("b", user_id="user-b")
    rig.run(record(body))
    rig.run(record(body, attempts=2, message_id="again"))
    first, second = rig.sink.imported
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert rig.ledger.totals["stripe:cus_b"]["purchases"] == 1 and rig.ledger.writes == 1


def test_a_message_with_no_events_is_delivered() -> None:
    story = Story(customer="cus_sub", user_id="user-s")
    subscription_checkout = story.checkout("cs_sub", 1000, "usd", mode="subscription", subscription="sub_1")
    rig = Rig()
    assert rig.run(record(json.dumps(subscription_checkout).encode())) == []
    assert rig.sink.imported == [] and rig.dead_letters.sent == []


# ---- retried ---------------------------------------------------------------------------------------------


def test_a_transient_failure_is_retried_not_dead_lettered_then_delivered_once() -> None:
    sink = ScriptedSink(answer=by_insert_id({"cs_c": transient()}))
    rig = Rig(sink)
    body = checkout("c")
    assert rig.run(record(body)) == ["msg-evt_c"]
    assert rig.dead_letters.sent == [] and rig.sink.imported == []
    sink.answer = by_insert_id({})
    assert rig.run(record(body, attempts=2)) == []
    assert len(sink.delivered()) == 1 and rig.ledger.totals["stripe:cus_c"]["purchases"] == 1


def test_retries_run_out_into_the_dead_letter_queue_with_the_last_reason() -> None:
    rig = Rig(ScriptedSink(answer=lambda event: transient("mixpanel_503")))
    assert rig.run(record(checkout("d"), attempts=5)) == []
    assert rig.dead_letters.reasons() == ["retries_exhausted:mixpanel_503"]


def test_a_configuration_error_retries_the_whole_batch() -> None:
    rig = Rig(ScriptedSink(answer=lambda event: Result(Outcome.CONFIG, "mixpanel_401", "bad secret")))
    retried = rig.run(record(checkout("e1")), record(checkout("e2")))
    assert sorted(retried) == ["msg-evt_e1", "msg-evt_e2"] and rig.dead_letters.sent == []


def test_an_unavailable_ledger_retries_and_sends_nothing() -> None:
    rig = Rig()
    rig.ledger.down = True
    assert rig.run(record(checkout("f"))) == ["msg-evt_f"]
    assert rig.sink.imported == []


def test_a_profile_that_fails_retries_its_message_without_counting_twice() -> None:
    sink = ScriptedSink(profile_answer=lambda update: transient("mixpanel_500"))
    rig = Rig(sink)
    body = checkout("g", user_id="user-g")
    assert rig.run(record(body)) == ["msg-evt_g"]
    sink.profile_answer = lambda update: Result(Outcome.DELIVERED)
    assert rig.run(record(body, attempts=2)) == []
    assert len(sink.delivered()) == 1 and sink.profiles[-1]["$set"]["Purchase Count"] == 1


def test_events_not_sent_before_the_deadline_are_retried() -> None:
    rig = Rig(ScriptedSink(answer=lambda event: Result(Outcome.TRANSIENT, "not_sent", "deadline")))
    assert rig.run(record(checkout("h")), remaining_ms=9_000) == ["msg-evt_h"]


def test_a_dead_letter_that_cannot_be_sent_is_retried_never_dropped() -> None:
    rig = Rig(ScriptedSink(answer=lambda event: Result(Outcome.INVALID, "mixpanel_rejected_event", "no")))
    rig.dead_letters.down = True
    assert rig.run(record(checkout("i"))) == ["msg-evt_i"]


# ---- dead-lettered ---------------------------------------------------------------------------------------


def test_an_event_mixpanel_refuses_is_dead_lettered_at_once_and_the_rest_delivered() -> None:
    refused = Result(Outcome.INVALID, "mixpanel_rejected_event", "'time' is in the future", "time")
    rig = Rig(ScriptedSink(answer=by_insert_id({"cs_j1": refused})))
    assert rig.run(record(checkout("j1")), record(checkout("j2"))) == []
    assert rig.dead_letters.reasons() == ["mixpanel_rejected_event"]
    (letter,) = rig.dead_letters.sent
    assert letter["MessageAttributes"]["dead_letter_field"]["StringValue"] == "time"
    assert [e["properties"]["Order ID"] for e in rig.sink.imported] == ["cs_j2"]
    assert "stripe:payment:cs_j1" in rig.ledger.rejected, "a fixed mapping re-renders it on redrive"


def test_a_poison_message_is_isolated_and_the_rest_of_its_batch_delivered() -> None:
    rig = Rig()
    assert rig.run(record(b"{not json", message_id="poison"), record(checkout("k"))) == []
    assert rig.dead_letters.reasons() == ["mapping_error"]
    assert [e["properties"]["Order ID"] for e in rig.sink.imported] == ["cs_k"]


def test_a_message_for_no_configured_provider_is_dead_lettered() -> None:
    rig = Rig()
    assert rig.run(record(checkout("l"), provider="nobody")) == []
    assert rig.dead_letters.reasons() == ["unknown_provider"]


def test_a_message_this_receiver_did_not_write_is_dead_lettered() -> None:
    rig = Rig()
    foreign = {"messageId": "foreign", "body": "{}", "attributes": {}, "messageAttributes": {}}
    assert rig.run(foreign) == []
    assert rig.dead_letters.reasons() == ["mapping_error"]


# ---- refunds and their payments -------------------------------------------------------------------------


def refund_history() -> tuple[bytes, bytes]:
    story = Story(customer="cus_r", user_id="user-r")
    payment = story.checkout("cs_r", 4999, "usd", payment_intent="pi_r")
    refund = story.refund_created(story.refund("re_r", 1000, "usd", charge="ch_r", payment_intent="pi_r"))
    return json.dumps(payment).encode(), json.dumps(refund).encode()


def test_a_refund_before_its_payment_waits_then_lands_on_the_payers_user() -> None:
    payment, refund = refund_history()
    rig = Rig()
    assert rig.run(record(refund)) == [record(refund)["messageId"]], "waits for its payment"
    assert rig.sink.imported == [] and rig.dead_letters.sent == []
    rig.run(record(payment))
    assert rig.run(record(refund, attempts=2)) == []
    refund_event = next(e for e in rig.sink.imported if e["event"] == "Refund Issued")
    assert refund_event["properties"]["distinct_id"] == "user-r"


def test_a_refund_in_the_same_batch_as_its_payment_needs_no_retry() -> None:
    payment, refund = refund_history()
    rig = Rig()
    assert rig.run(record(refund), record(payment)) == []
    assert {e["event"] for e in rig.sink.imported} == {"Purchase Completed", "Refund Issued"}


# ---- order independence ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_any_interleaving_and_duplication_gives_the_in_order_totals_and_events(seed: int) -> None:
    history = [json.dumps(event).encode() for event in full_history(customer="cus_o", user_id="user-o")]
    in_order = Rig()
    for body in history:
        in_order.run(record(body))
    shuffled = Rig()
    deliveries = history + random.Random(seed).sample(history, len(history) // 2)
    random.Random(seed).shuffle(deliveries)
    pending = [record(body) for body in deliveries]
    for attempt in range(1, 6):  # a refund that came first waits for its payment, as SQS would redeliver it
        retried = set(shuffled.run(*pending))
        pending = [
            dict(r, attributes={"ApproximateReceiveCount": str(attempt + 1)})
            for r in pending
            if r["messageId"] in retried
        ]
        if not pending:
            break
    assert pending == []
    assert shuffled.ledger.totals == in_order.ledger.totals
    assert shuffled.sink.delivered() == in_order.sink.delivered()
