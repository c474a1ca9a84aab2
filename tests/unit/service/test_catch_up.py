"""Missed-webhook catch-up on in-memory fakes: what it enqueues, what it leaves, its checkpoint, without a key.

The ledger is filled by the forwarder itself (the webhooks that did arrive), then catch-up runs on the same
ledger against a scripted `/v1/events`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from fakes import InMemoryCheckpoints, InMemoryLedger, ListedEvents, RecordingQueue, ScriptedStripeEvents
from revenue_webhooks import providers
from revenue_webhooks.providers.stripe import PRODUCES
from revenue_webhooks.service.catchup import CHECKPOINT, CatchUp
from revenue_webhooks.service.envelope import from_message
from stripe_story import BASIL, Story, full_history
from test_forwarder import SETTINGS, Rig, record

NOW = 1_800_000_000
CATCH_UP_SETTINGS = replace(SETTINGS, mode="any")  # the story's events are test-mode ones
DELAY, OVERLAP = SETTINGS.catch_up_delay_s, SETTINGS.catch_up_overlap_s
PLENTY = lambda: 120_000  # noqa: E731  (remaining Lambda milliseconds)


class CatchUpRig:
    def __init__(self, listed: ListedEvents | None, *, ledger: InMemoryLedger | None = None) -> None:
        self.ledger = ledger or InMemoryLedger()
        self.checkpoints = InMemoryCheckpoints()
        self.queue = RecordingQueue()
        self.now = NOW
        stripe = providers.get_provider("stripe", SETTINGS)
        assert stripe is not None
        self.catch_up = CatchUp(
            CATCH_UP_SETTINGS,
            stripe,
            list(PRODUCES),
            ScriptedStripeEvents(listed) if listed is not None else None,
            self.ledger,
            self.checkpoints,
            self.queue,
            clock=lambda: self.now,
        )

    def run(self) -> dict[str, Any]:
        return self.catch_up.run(PLENTY)

    def enqueued(self) -> list[str]:
        return [
            from_message({"Body": m["MessageBody"], "MessageAttributes": m["MessageAttributes"]}).event_id
            for m in self.queue.sent
        ]


def history(start: int, **options: Any) -> list[dict[str, Any]]:
    return full_history(api_version=BASIL, customer="cus_c", user_id="user-c", payment_intents=True, **options)


def timed(events: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    """The events one minute apart from `start` (Story's clock starts elsewhere)."""
    return [{**e, "created": start + 60 * n} for n, e in enumerate(events)]


def webhooks_arrived(ledger: InMemoryLedger, events: list[dict[str, Any]]) -> None:
    """What the forwarder records of the webhooks that did arrive (held messages redelivered until done)."""
    rig = Rig()
    rig.ledger = ledger
    rig.forwarder.ledger = ledger
    rig.forwarder.payments.ledger = ledger
    pending = [record(json.dumps(e).encode()) for e in events]
    for attempt in range(2, 8):
        retried = set(rig.run(*pending))
        pending = [
            dict(r, attributes={"ApproximateReceiveCount": str(attempt)}) for r in pending if r["messageId"] in retried
        ]
    assert not pending and rig.dead_letters.sent == []


def test_without_a_key_it_does_nothing_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    rig = CatchUpRig(None)
    assert rig.run() == {"status": "disabled"}
    assert rig.run() == {"status": "disabled"}
    assert [r.message for r in caplog.records if "catch-up is off" in r.message] != []
    assert len([r for r in caplog.records if "catch-up is off" in r.message]) == 1
    assert rig.checkpoints.values[CHECKPOINT]["disabled_noted"] is True and rig.queue.sent == []


def test_the_first_run_starts_the_checkpoint_and_recovers_nothing_from_before_it() -> None:
    events = timed(history(0), NOW - 5000)
    rig = CatchUpRig(ListedEvents(events))
    answer = rig.run()
    assert answer["status"] == "complete" and rig.queue.sent == []
    assert rig.checkpoints.values[CHECKPOINT] == {"origin": NOW - DELAY, "until": NOW - DELAY, "disabled_noted": False}


def test_only_the_events_no_webhook_delivered_are_enqueued() -> None:
    start = NOW - 3000
    events = timed(history(start), start)
    lost = {e["id"] for e in events[::4]}  # every fourth webhook never arrived
    ledger = InMemoryLedger()
    webhooks_arrived(ledger, [e for e in events if e["id"] not in lost])
    rig = CatchUpRig(ListedEvents(events), ledger=ledger)
    rig.checkpoints.values[CHECKPOINT] = {"origin": start - 10, "until": start - 10}
    answer = rig.run()
    expected = {e["id"] for e in events if e["id"] in lost and e["created"] < NOW - DELAY and meaningful(e, ledger)}
    assert set(rig.enqueued()) == expected and expected
    assert answer["recovered"] == len(expected) and answer["checked"] == len(
        [e for e in events if e["created"] < NOW - DELAY]
    )
    assert rig.checkpoints.values[CHECKPOINT]["until"] == NOW - DELAY


def meaningful(event: dict[str, Any], ledger: InMemoryLedger) -> bool:
    """Whether an event's loss changes anything (some events map to nothing, or to what another event recorded)."""
    from revenue_webhooks.service.recorded import Holdings

    stripe = providers.get_provider("stripe", SETTINGS)
    assert stripe is not None
    from revenue_webhooks.domain.webhook import QueuedEvent

    items = stripe.map(QueuedEvent("stripe", event["id"], event["type"], 0, json.dumps(event).encode()))
    return not Holdings(frozenset(ledger.events), ledger.owner_table).holds(items)


def test_a_run_when_every_webhook_arrived_enqueues_nothing_and_writes_only_its_checkpoint() -> None:
    start = NOW - 3000
    events = timed(history(start), start)
    ledger = InMemoryLedger()
    webhooks_arrived(ledger, events)
    writes = ledger.writes
    rig = CatchUpRig(ListedEvents(events), ledger=ledger)
    rig.checkpoints.values[CHECKPOINT] = {"origin": start - 10, "until": start - 10}
    answer = rig.run()
    assert rig.queue.sent == [] and answer["recovered"] == 0 and answer["checked"] > 20
    assert ledger.writes == writes and rig.checkpoints.puts == 1


def test_recovered_events_delivered_make_the_ledger_whole_and_a_second_run_adds_nothing() -> None:
    start = NOW - 3000
    events = timed(history(start), start)
    ledger = InMemoryLedger()
    webhooks_arrived(ledger, events[len(events) // 2 :])
    rig = CatchUpRig(ListedEvents(events), ledger=ledger)
    rig.checkpoints.values[CHECKPOINT] = {"origin": start - 10, "until": start - 10}
    rig.run()
    recovered = [json.loads(m["MessageBody"]) for m in rig.queue.sent]
    webhooks_arrived(ledger, recovered)
    everything = InMemoryLedger()
    webhooks_arrived(everything, [e for e in events if e["created"] < NOW - DELAY])
    assert ledger.totals == everything.totals
    rig.queue.sent.clear()
    rig.now += 900
    assert rig.run()["recovered"] == 0 and rig.queue.sent == []


def test_events_younger_than_the_delay_wait_for_the_next_run() -> None:
    events = timed(history(0), NOW - 300)  # all within the last DELAY seconds: webhooks may still be on their way
    rig = CatchUpRig(ListedEvents(events))
    rig.checkpoints.values[CHECKPOINT] = {"origin": NOW - 7200, "until": NOW - 1200}
    assert rig.run()["checked"] == 0 and rig.queue.sent == []


def test_each_run_lists_from_the_checkpoint_less_the_overlap() -> None:
    listed = ListedEvents([])
    rig = CatchUpRig(listed)
    rig.checkpoints.values[CHECKPOINT] = {"origin": NOW - 86400, "until": NOW - 2000}
    rig.run()
    assert listed.calls == [(NOW - 2000 - OVERLAP, NOW - DELAY)]


def test_an_unavailable_stripe_leaves_the_checkpoint_for_the_next_run() -> None:
    start = NOW - 3000
    events = timed(history(start), start)
    listed = ListedEvents(events, fail_after=5)
    rig = CatchUpRig(listed)
    rig.checkpoints.values[CHECKPOINT] = {"origin": start - 10, "until": start - 10}
    assert rig.run()["status"] == "stripe_unavailable"
    assert rig.checkpoints.values[CHECKPOINT]["until"] == start - 10
    listed.fail_after = None
    assert rig.run()["status"] == "complete"


def test_a_checkpoint_older_than_stripes_30_days_lists_what_stripe_still_has() -> None:
    listed = ListedEvents([])
    rig = CatchUpRig(listed)
    rig.checkpoints.values[CHECKPOINT] = {"origin": NOW - 90 * 86400, "until": NOW - 60 * 86400}
    rig.run()
    ((since, _),) = listed.calls
    assert since == NOW - 30 * 86400 + 600


def test_catch_up_lists_every_type_the_stripe_mapping_reads() -> None:
    story = Story(api_version=BASIL)
    listed = ListedEvents([{**story.invoice_payment_paid("in_t", "pi_t", 100), "created": NOW - 1000}])
    rig = CatchUpRig(listed)
    rig.checkpoints.values[CHECKPOINT] = {"origin": NOW - 5000, "until": NOW - 2000}
    rig.run()
    assert rig.enqueued() == [listed.events[0]["id"]], "a relation never recorded is recovered too"
    assert len(PRODUCES) <= 20, "Stripe's types[] filter takes at most 20 types"


def test_events_go_to_their_lane_as_the_receiver_sends_them_and_an_ignored_mode_is_left() -> None:
    """A test-mode event (a test key) with a test lane: checked in the test lane's ledger, enqueued in its queue;
    a live deployment (Mode=live) leaves test-mode events, as its receiver does."""
    event = {**timed(history(0), NOW - 2000)[0], "livemode": False}
    live_ledger, test_ledger = InMemoryLedger(), InMemoryLedger()
    rig = CatchUpRig(ListedEvents([event]))
    lanes = replace(CATCH_UP_SETTINGS, test_events_queue_url="https://sqs.local/test-events")
    rig.catch_up.settings = lanes
    rig.catch_up.ledger_for = lambda livemode: live_ledger if livemode else test_ledger
    rig.checkpoints.values[CHECKPOINT] = {"origin": NOW - 5000, "until": NOW - 3000}
    assert rig.run()["recovered"] == 1
    assert [m["QueueUrl"] for m in rig.queue.sent] == ["https://sqs.local/test-events"]
    webhooks_arrived(test_ledger, [event])
    rig.queue.sent.clear()
    assert rig.run()["recovered"] == 0, "found in the test lane's ledger"
    rig.catch_up.settings = replace(lanes, mode="live")
    rig.catch_up.ledger_for = lambda livemode: InMemoryLedger()  # nothing recorded: only the mode leaves it
    rig.checkpoints.values[CHECKPOINT] = {"origin": NOW - 5000, "until": NOW - 3000}
    assert rig.run()["recovered"] == 0 and rig.queue.sent == []
