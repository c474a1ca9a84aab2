"""Missed-webhook catch-up: Stripe's events that no webhook delivered, enqueued as if they had been.

Stripe disables an endpoint after days of failures and never resends what was created meanwhile; an event
can also be lost with a 200. Each run lists the mapped event types from Stripe's `GET /v1/events` created
since the last run (less an overlap, for events listed late), up to `delay` ago (a webhook still in flight,
or a message the forwarder holds for a moment, is not missed), maps each with the Stripe provider and asks
the ledger whether its facts are recorded (service/recorded.py, the forwarder's and the backfill's answer too). That is reads only: a run in which every webhook arrived adds
no forwarder work and no writes but its checkpoint. The others are enqueued in the queue message format,
as the receiver would have, and counted (`EventsRecovered`, with an alarm: the endpoint is losing events).

The checkpoint (`catch-up#stripe-events` in the ledger table) moves only after a complete run; a run cut
short by the deadline, or by Stripe's unavailability, is redone by the next one. Without a Stripe API key
catch-up does nothing and says so once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import observability
from ..config import Settings
from ..domain.webhook import QueuedEvent
from ..providers.base import Provider
from .envelope import to_sqs
from .ports import Checkpoints, Ledger, LookupUnavailable, MessageQueue, StripeEvents
from .recorded import held

logger = observability.logger

CHECKPOINT = "stripe-events"
EVENTS_KEPT_S = 30 * 86400  # "List events, going back up to 30 days"
RETENTION_MARGIN_S = 600  # what is older than 30 days less this may already be gone by the time it is read
CHUNK = 100  # events checked against the ledger at once (DynamoDB's BatchGetItem takes 100 keys)
# Time kept back from the Lambda deadline to record the checkpoint and the metrics.
SAFETY_MARGIN_S = 10.0


@dataclass
class Run:
    """What one run did, returned by the handler (and logged)."""

    status: str  # complete | partial | stripe_unavailable | disabled
    since: int = 0
    until: int = 0
    checked: int = 0
    recovered: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status} if self.status == "disabled" else dict(vars(self))


class CatchUp:
    """One Stripe account's missed-webhook catch-up (the StripeApiKey's account)."""

    def __init__(
        self,
        settings: Settings,
        provider: Provider,
        types: Sequence[str],
        events: StripeEvents | None,
        ledger: Ledger | Callable[[bool], Ledger],
        checkpoints: Checkpoints,
        queue: MessageQueue,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`events` is None when no Stripe API key is configured; `types` are the event types the provider maps;
        `ledger` is the ledger, or livemode -> the ledger of that mode's lane (a test lane has its own)."""
        self.settings = settings
        self.provider = provider
        self.types = sorted(types)
        self.events = events
        self.ledger_for: Callable[[bool], Ledger] = ledger if callable(ledger) else (lambda livemode: ledger)
        self.checkpoints = checkpoints
        self.queue = queue
        self.clock = clock

    def run(self, remaining_ms: Callable[[], int]) -> dict[str, Any]:
        deadline = time.monotonic() + remaining_ms() / 1000 - SAFETY_MARGIN_S
        if self.events is None:
            return self._disabled().as_json()
        run = self._run(deadline)
        observability.add("CatchUpEventsChecked", run.checked)
        observability.add("EventsRecovered", run.recovered)
        logger.info("catch-up run", extra=run.as_json())
        return run.as_json()

    def _disabled(self) -> Run:
        """Says once (per time it is turned off) that there is nothing to do, in the log and a metric."""
        state = self.checkpoints.get(CHECKPOINT) or {}
        if not state.get("disabled_noted"):
            logger.warning(
                "catch-up is off: no Stripe API key. Put a restricted key in the StripeApiKey secret "
                "(docs/operations.md, 'Catch-up') to recover webhooks Stripe never delivered."
            )
            observability.add("CatchUpDisabled")
            self.checkpoints.put(CHECKPOINT, {**state, "disabled_noted": True})
        return Run("disabled")

    def _run(self, deadline: float) -> Run:
        assert self.events is not None
        now = int(self.clock())
        until = now - self.settings.catch_up_delay_s
        state = self.checkpoints.get(CHECKPOINT) or {}
        origin = int(state.get("origin") or until)  # never before the first run: backfill covers what was before
        previous = int(state.get("until") or until)
        since = max(origin, previous - self.settings.catch_up_overlap_s, now - EVENTS_KEPT_S + RETENTION_MARGIN_S)
        if previous < now - EVENTS_KEPT_S:
            logger.error(
                "catch-up has not run for more than 30 days: events before Stripe's 30 days are gone; "
                "run a backfill from the last run",
                extra={"last_run_until": previous},
            )
        run = Run("complete", since=since, until=until)
        try:
            chunk: list[dict[str, Any]] = []
            for event in self.events.events(self.types, since, until, deadline=deadline):
                chunk.append(event)
                if len(chunk) == CHUNK:
                    self._check(chunk, run)
                    chunk = []
                if time.monotonic() > deadline:
                    run.status = "partial"
                    break
            if chunk:
                self._check(chunk, run)
        except LookupUnavailable as error:
            logger.warning(
                "Stripe's events could not be listed: the next run tries again", extra={"detail": str(error)}
            )
            run.status = "stripe_unavailable"
        if run.status == "complete":
            self.checkpoints.put(CHECKPOINT, {"origin": origin, "until": until, "disabled_noted": False})
        return run

    def _check(self, events: list[dict[str, Any]], run: Run) -> None:
        """Enqueue those of `events` whose facts their lane's ledger does not hold (as the receiver would, in the
        lane's queue; events of a mode this deployment ignores are checked and left, as the receiver leaves them)."""
        run.checked += len(events)
        for livemode in (True, False):
            lane = [e for e in events if bool(e.get("livemode")) is livemode and self.settings.accepts_mode(livemode)]
            if lane:
                self._check_lane(lane, livemode, run)

    def _check_lane(self, events: list[dict[str, Any]], livemode: bool, run: Run) -> None:
        ledger = self.ledger_for(livemode)
        received_ms = int(self.clock() * 1000)
        queued = [
            QueuedEvent("stripe", e["id"], e["type"], received_ms, json.dumps(e, separators=(",", ":")).encode())
            for e in events
        ]
        mapped = [list(self.provider.map(q)) for q in queued]
        for event, delivered in zip(queued, held(ledger, mapped), strict=True):
            if delivered:
                continue
            self.queue.send_message(QueueUrl=self.settings.queue_for(livemode), **to_sqs(event))
            run.recovered += 1
            logger.info(
                "recovered a webhook Stripe never delivered",
                extra={"event_id": event.event_id, "event_type": event.event_type},
            )
