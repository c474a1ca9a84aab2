"""The forwarder: an SQS batch in, Mixpanel events and profiles out, and the exact list of retries.

Every message ends in one of three places: delivered (all its events accepted by
Mixpanel), retried (reported in `batchItemFailures`: transient trouble, or a fact waiting
for another webhook), or dead-lettered by us with a reason (Mixpanel refused it, it cannot
be parsed or mapped, or its retries ran out). A dead-letter send that fails is retried
too, so nothing is dropped silently.

Powertools' BatchProcessor calls a handler per record; here the whole batch must become a
few Mixpanel requests and ledger transactions, so the partial batch response is built here
(Logger and Metrics are Powertools').
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from .. import observability
from ..config import Settings
from ..domain.facts import Deferred, Fact, PaymentOwner
from ..domain.lookups import Lookup, LookupFailed
from ..domain.outcomes import Outcome, Result, worst
from ..domain.totals import company_key, customer_key
from ..domain.webhook import QueuedEvent
from ..mixpanel.rendering import group_update, mixpanel_event, profile_update
from ..providers.base import Mapped, Provider
from .envelope import dead_letter_attributes, from_record, sqs_attributes_from_record
from .payments import Payments
from .ports import (
    EnrichmentUnavailable,
    EventSink,
    FactEnricher,
    Ledger,
    LedgerUnavailable,
    MessageQueue,
    PaymentLookup,
    PurchaseLookups,
)

logger = observability.logger

# Time kept back from the Lambda deadline for ledger writes, dead letters and the answer.
SAFETY_MARGIN_S = 8.0
# What a profile request must leave of the invocation (dead letters and the answer).
FINISH_MARGIN_S = 2.0


@dataclass
class Message:
    """One SQS record and what became of it."""

    record: dict[str, Any]
    queued: QueuedEvent | None = None
    facts: list[Fact] = field(default_factory=list)
    owners: list[PaymentOwner] = field(default_factory=list)  # which purchase a payment belongs to (no event)
    events: list[dict[str, Any]] = field(default_factory=list)
    fact_keys: list[str] = field(default_factory=list)  # the fact behind each event
    customers: set[str] = field(default_factory=set)  # whose profile totals its facts changed
    wanted: tuple[Lookup, ...] = ()  # what its mapping needs from the provider's API first
    companies: set[str] = field(default_factory=set)  # whose company totals its facts changed (Group Analytics)
    result: Result | None = None  # None until decided; DELIVERED when every event was accepted

    @property
    def id(self) -> str:
        return self.record["messageId"]

    @property
    def attempts(self) -> int:
        return int((self.record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))

    @property
    def label(self) -> tuple[str, str]:
        if self.queued:
            return (self.queued.provider, self.queued.event_type)
        attributes = self.record.get("messageAttributes") or {}
        return (
            (attributes.get("provider") or {}).get("stringValue", "unknown"),
            (attributes.get("event_type") or {}).get("stringValue", "unknown"),
        )

    def decide(self, result: Result) -> None:
        """Keep the worst outcome (the first of equals): a message is only as good as its worst event."""
        self.result = worst(self.result, result)


class Forwarder:
    """One SQS batch at a time: facts mapped, recorded once in the ledger, sent to the event sink."""

    def __init__(
        self,
        settings: Settings,
        providers: Callable[[str], Provider | None],
        ledger: Ledger,
        sink: EventSink,
        dead_letters: MessageQueue,
        project_token: str,
        *,
        mode: str = "live",
        dead_letter_queue_url: str = "",
        lookups: PurchaseLookups | None = None,
        payment_lookups: Callable[[str], PaymentLookup | None] | None = None,
        enrichers: Sequence[FactEnricher] = (),
    ) -> None:
        self.settings = settings
        self.providers = providers  # route -> its provider, None when no such route is configured
        self.ledger = ledger
        self.sink = sink
        self.dead_letters = dead_letters
        self.project_token = project_token  # "" : profiles are not sent
        self.mode = mode  # the lane: live, or test (test-mode webhooks, their own project and dead letters)
        self.dead_letter_queue_url = dead_letter_queue_url or settings.dead_letter_queue_url
        self.lookups = lookups  # the providers' APIs (Google Play), for mappings that need a document first
        # provider -> its API, asked about payments the ledger never saw (Stripe's, with a key)
        self.payments = Payments(settings, ledger, payment_lookups)
        # Lookups each fact needs before rendering, in order: settlements (service/settlements.py), then the
        # reporting currency's rates (service/reporting.py); none when neither is configured.
        self.enrichers = list(enrichers)

    def process(self, records: list[dict[str, Any]], remaining_ms: Callable[[], int]) -> dict[str, Any]:
        """Handle one SQS batch; returns the partial batch response Lambda expects."""
        end = time.monotonic() + remaining_ms() / 1000
        deadline = max(time.monotonic(), end - SAFETY_MARGIN_S)
        messages = [Message(record) for record in records]
        observability.add("MessagesProcessed", len(messages))
        for message in messages:
            self._map(message)
        self._look_up(messages)
        self.payments.record_owners(messages)  # each Message is a payments.Held
        self.payments.resolve_owners(messages, deadline)
        self.payments.resolve_identities(messages, deadline)
        self._enrich(messages)
        companies: dict[str, dict[str, Any]] = {}
        totals = self._record(messages, companies)
        touched = sorted({ck for m in messages if m.result is None for ck in m.customers})
        touched_companies = sorted({co for m in messages if m.result is None for co in m.companies})

        def deliver_profiles() -> dict[str, Result]:
            failed = self._deliver_profiles(touched, totals, end - FINISH_MARGIN_S)
            return failed | {
                f"company:{co}": result
                for co, result in self._deliver_companies(touched_companies, companies, end - FINISH_MARGIN_S).items()
            }

        # Events and profiles go out together: the totals are the ledger's, whatever Mixpanel says of
        # the events (a refused event's fact stays counted; a retried one is counted once already).
        with ThreadPoolExecutor(max_workers=1) as background:
            profiles = background.submit(deliver_profiles)
            self._deliver_events(messages, deadline)
            failed_profiles = profiles.result()
        for message in messages:
            owners = [*message.customers, *(f"company:{co}" for co in message.companies)]
            problem = next((failed_profiles[key] for key in owners if key in failed_profiles), None)
            if problem is not None and message.result and message.result.outcome is Outcome.DELIVERED:
                message.result = problem
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in self._finish(messages)]}

    # ---- steps --------------------------------------------------------------------------

    def _map(self, message: Message) -> None:
        try:
            message.queued = from_record(message.record)
            provider = self.providers(message.queued.provider)
            if provider is None:
                message.decide(Result(Outcome.INVALID, "unknown_provider", message.queued.provider))
                return
            message.wanted = provider.lookups(message.queued)
            if message.wanted:
                return  # mapped by `_look_up`, once what it needs is fetched
            mapped = provider.map(message.queued)
        except Exception as error:  # a bug or an unexpected shape: isolate this message, keep the batch
            logger.exception("mapping failed", extra=self._log_context(message))
            message.decide(Result(Outcome.INVALID, "mapping_error", f"{type(error).__name__}: {error}"))
            return
        self._take(message, mapped)

    def _take(self, message: Message, mapped: Sequence[Mapped]) -> None:
        deferred = [item for item in mapped if isinstance(item, Deferred)]
        if deferred:
            message.decide(Result(Outcome.TRANSIENT, "deferred", deferred[0].reason))
        message.facts = [item for item in mapped if isinstance(item, Fact)]
        message.owners = [item for item in mapped if isinstance(item, PaymentOwner)]

    def _look_up(self, messages: list[Message]) -> None:
        """Fetch what the batch's mappings need from the providers' APIs (all at once), then map those messages.

        An API outage is transient (the message is retried, and dead-lettered with the reason when its retries
        run out); an answer that the purchase does not exist is not.
        """
        waiting = [m for m in messages if m.result is None and m.wanted]
        if not waiting:
            return
        if self.lookups is None:
            for message in waiting:
                message.decide(Result(Outcome.TRANSIENT, "lookups_not_configured", f"{message.label[0]} needs its API"))
            return
        found = self.lookups.fetch(sorted({lookup for m in waiting for lookup in m.wanted}, key=repr))
        for message in waiting:
            failures = [found.get(lookup) for lookup in message.wanted if not _fetched(found, lookup)]
            if failures:
                failure = next((f for f in failures if isinstance(f, LookupFailed)), None)
                failure = failure or LookupFailed("lookup_missing", "the API port gave no answer")
                outcome = Outcome.TRANSIENT if failure.transient else Outcome.INVALID
                message.decide(Result(outcome, failure.reason, failure.detail))
                continue
            assert message.queued is not None
            provider = self.providers(message.queued.provider)
            try:
                assert provider is not None
                mapped = provider.map_with(message.queued, {lookup: found[lookup] for lookup in message.wanted})
            except Exception as error:  # a bug or an unexpected document: isolate this message
                logger.exception("mapping failed", extra=self._log_context(message))
                message.decide(Result(Outcome.INVALID, "mapping_error", f"{type(error).__name__}: {error}"))
                continue
            self._take(message, mapped)

    def _enrich(self, messages: list[Message]) -> None:
        """What each fact needs looked up before it is rendered: a settlement, the reporting currency's rate.

        While a lookup fails the messages wait; on their last attempt they go out without it rather than to
        the dead-letter queue (their revenue matters more than its conversion or fee).
        """
        for enricher in self.enrichers:
            pending = [m for m in messages if m.result is None and m.facts]
            if not pending:
                return
            try:
                enriched = enricher.attach([fact for m in pending for fact in m.facts])
            except EnrichmentUnavailable as error:
                logger.warning("lookup unavailable", extra={"reason": error.reason, "detail": str(error)})
                observability.add(type(error).__name__)
                last = [m for m in pending if m.attempts >= self.settings.max_receive_count]
                for message in pending:
                    if message not in last:
                        message.decide(Result(Outcome.TRANSIENT, error.reason, str(error)))
                pending = last
                try:
                    enriched = enricher.attach([fact for m in pending for fact in m.facts], fetch=False)
                except EnrichmentUnavailable:
                    enriched = [fact for m in pending for fact in m.facts]
            position = 0
            for message in pending:
                count = len(message.facts)
                message.facts, position = enriched[position : position + count], position + count

    def _record(self, messages: list[Message], companies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Ledger: the first webhook about a fact fixes its event; later ones re-send that event.

        Returns the customer totals this batch stored; `companies` receives the company totals it stored.
        """
        entries: list[tuple[Message, Fact, dict[str, Any]]] = []
        for message in (m for m in messages if m.result is None and m.facts):
            try:
                rendered = []
                for fact in message.facts:
                    if fact.email and not self.settings.send_email:
                        fact = replace(fact, email=None)  # PII stays out of the ledger unless asked for
                    rendered.append((message, fact, mixpanel_event(fact, self.settings)))
            except Exception as error:  # a fact we cannot render is a mapping bug: isolate it
                logger.exception("rendering failed", extra=self._log_context(message))
                message.decide(Result(Outcome.INVALID, "mapping_error", f"{type(error).__name__}: {error}"))
                continue
            entries += rendered
        totals: dict[str, dict[str, Any]] = {}
        if not entries:
            return totals
        try:
            outcomes = self.ledger.record_all([(fact, event) for _, fact, event in entries], totals, companies)
        except Exception as error:  # not a ledger outage (those come back per fact): retry the batch's facts
            outcomes = [error] * len(entries)
        for (message, fact, _), outcome in zip(entries, outcomes, strict=True):
            if isinstance(outcome, Exception):
                reason = "ledger_unavailable" if isinstance(outcome, LedgerUnavailable) else "ledger_error"
                message.decide(Result(Outcome.TRANSIENT, reason, f"{type(outcome).__name__}: {outcome}"))
                continue
            if outcome[0] is None:
                continue  # another purchase's payment (its Checkout or invoice counts it): nothing to send
            message.events.append(outcome[0])
            message.fact_keys.append(fact.key)
            if fact.profile is not None or fact.identity.user_id:
                ck = customer_key(fact)
                if ck:
                    message.customers.add(ck)
            co = company_key(fact)
            if co and fact.profile is not None:
                message.companies.add(co)
        return totals

    def _deliver_events(self, messages: list[Message], deadline: float) -> None:
        sending = [m for m in messages if m.result is None and m.events]
        batch = [event for m in sending for event in m.events]
        results = self.sink.import_events(batch, deadline=deadline) if batch else []
        position = 0
        refused: list[str] = []
        for message in sending:
            for event, key in zip(message.events, message.fact_keys, strict=True):
                result = results[position]
                position += 1
                if result.outcome is Outcome.INVALID:
                    refused.append(key)
                if result.outcome is not Outcome.DELIVERED:
                    logger.warning(
                        "event not delivered",
                        extra={
                            **self._log_context(message),
                            "insert_id": event["properties"].get("$insert_id"),
                            "outcome": result.outcome.value,
                            "reason": result.reason,
                            "detail": result.detail,
                        },
                    )
                message.decide(result)
        if refused:
            self.ledger.mark_rejected(refused)
        for message in messages:
            if message.result is None:  # no events (e.g. a subscription-mode Checkout): nothing to send
                message.decide(Result(Outcome.DELIVERED))

    def _deliver_profiles(
        self, keys: list[str], stored: dict[str, dict[str, Any]], deadline: float
    ) -> dict[str, Result]:
        """Absolute totals for every customer the recorded facts touched; returns the customers that failed."""
        return self._deliver_totals(
            keys,
            stored,
            self.ledger.customers,
            lambda _ck, totals: profile_update(totals, self.settings, self.project_token),
            lambda updates: self.sink.update_profiles(updates, deadline=deadline),
            ("customer", "ProfileRejected"),
        )

    def _deliver_companies(
        self, keys: list[str], stored: dict[str, dict[str, Any]], deadline: float
    ) -> dict[str, Result]:
        """Absolute company totals (`/groups` `$set`) for every company the recorded facts touched."""
        if not self.settings.group_key:
            return {}
        return self._deliver_totals(
            keys,
            stored,
            self.ledger.companies,
            lambda co, totals: group_update(co, totals, self.settings, self.project_token) if totals else None,
            lambda updates: self.sink.update_groups(updates, deadline=deadline),
            ("company", "GroupProfileRejected"),
        )

    def _deliver_totals(
        self,
        keys: list[str],
        stored: dict[str, dict[str, Any]],
        read: Callable[[list[str]], dict[str, dict[str, Any]]],
        render: Callable[[str, dict[str, Any]], dict[str, Any] | None],
        send: Callable[[list[dict[str, Any]]], list[Result]],
        whose: tuple[str, str],
    ) -> dict[str, Result]:
        """Send the absolute totals of `keys` (a user's or a company's profile); returns the keys that failed.

        Totals this batch stored are sent as stored; the others (facts recorded earlier, or by the one-fact
        fallback) are read back. A retry re-sends them harmlessly: each is a `$set` of the whole truth.
        """
        if not self.project_token or not keys:
            return {}
        totals = {key: stored[key] for key in keys if key in stored}
        missing = [key for key in keys if key not in stored]
        try:
            totals.update(read(missing) if missing else {})
        except LedgerUnavailable as error:
            return dict.fromkeys(keys, Result(Outcome.TRANSIENT, "ledger_unavailable", str(error)))
        updates, owners = [], []
        for key in keys:
            update = render(key, totals.get(key, {}))
            if update is not None:
                updates.append(update)
                owners.append(key)
        failed: dict[str, Result] = {}
        label, rejected_metric = whose
        for key, result in zip(owners, send(updates) if updates else [], strict=True):
            if result.outcome is Outcome.TRANSIENT or result.outcome is Outcome.CONFIG:
                failed[key] = result
            elif result.outcome is Outcome.INVALID:
                logger.error(f"{label} profile rejected by Mixpanel", extra={label: key, "detail": result.detail})
                observability.add(rejected_metric)
        return failed

    def _finish(self, messages: list[Message]) -> list[str]:
        """Dead-letter what must be, count everything, and return the ids to retry."""
        retry: list[str] = []
        tallies: dict[str, Counter[tuple[str, str]]] = {}
        for message in messages:
            result = message.result or Result(Outcome.TRANSIENT, "undecided")
            if result.outcome is Outcome.DELIVERED:
                status = "Delivered"
            elif result.outcome is Outcome.INVALID or message.attempts >= self.settings.max_receive_count:
                if self._dead_letter(message, result):
                    status = "DeadLettered"
                else:
                    status = "Retried"
                    retry.append(message.id)
            else:
                status = "Retried"
                retry.append(message.id)
            if result.outcome is Outcome.CONFIG:
                observability.add("MixpanelConfigError")
            tallies.setdefault(status, Counter())[message.label] += 1
            # Every message that did not get through is logged; delivered ones only at DEBUG, since at
            # 2000 messages a batch their lines cost more CPU and CloudWatch money than the delivery.
            log = logger.debug if status == "Delivered" else logger.warning
            insert_ids = [event["properties"].get("$insert_id") for event in message.events]
            log(status.lower(), extra={**self._log_context(message), "reason": result.reason, "insert_ids": insert_ids})
        for name, counter in tallies.items():
            observability.count(name, counter, self.mode)
        logger.info("batch done", extra={"messages": len(messages), **{k: sum(v.values()) for k, v in tallies.items()}})
        return retry

    def _dead_letter(self, message: Message, result: Result) -> bool:
        reason = result.reason if result.outcome is Outcome.INVALID else f"retries_exhausted:{result.reason}"
        try:
            self.dead_letters.send_message(
                QueueUrl=self.dead_letter_queue_url,
                MessageBody=message.record["body"],
                MessageAttributes={
                    **sqs_attributes_from_record(message.record),
                    **dead_letter_attributes(
                        reason, result.detail, result.field or None, int(time.time() * 1000), message.attempts
                    ),
                },
            )
            return True
        except Exception:
            logger.exception("dead-letter send failed; the message will be retried", extra=self._log_context(message))
            return False

    @staticmethod
    def _log_context(message: Message) -> dict[str, Any]:
        provider, event_type = message.label
        context = {"message_id": message.id, "provider": provider, "event_type": event_type}
        if message.queued:
            context["event_id"] = message.queued.event_id
        return context


def _fetched(found: dict[Lookup, Any], lookup: Lookup) -> bool:
    return lookup in found and not isinstance(found[lookup], LookupFailed)
