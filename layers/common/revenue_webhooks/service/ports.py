"""The ports the services need, and nothing more: the ledger, the event sink (Mixpanel), a queue, the
webhook secrets, and the relay the browser proxy forwards through. The adapters (adapters/) implement them against AWS and Mixpanel; the unit tests with
in-memory fakes (tests/unit/service/)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from ..domain.facts import Fact, Identity
from ..domain.lookups import Found, Lookup
from ..domain.outcomes import Result

# What `Ledger.record_all` says of each fact: (its canonical event, newly recorded), or the error that stopped it.
Recorded = tuple[dict[str, Any], bool] | Exception


class LedgerUnavailable(Exception):
    """The ledger could not be read or written: the message must be retried, not dropped."""


class Ledger(ABC):
    """Each business fact recorded once with its canonical Mixpanel event, and exact customer totals.

    The first webhook about a fact fixes its event; later ones get that event back (so Mixpanel's
    deduplication sees the same bytes). A fact's effect on its customer's totals (domain/totals.py)
    is applied in the same write as the fact, so a retry never counts it twice.
    """

    @abstractmethod
    def record_all(
        self,
        items: Sequence[tuple[Fact, dict[str, Any]]],
        written_totals: dict[str, dict[str, Any]] | None = None,
        written_companies: dict[str, dict[str, Any]] | None = None,
    ) -> list[Recorded]:
        """Record a batch of facts; per item (canonical event, newly recorded) or the error that stopped it.

        `written_totals` receives the totals stored for each customer key this call changed, and
        `written_companies` those of each company (`totals.company_key`, Group Analytics).
        """

    @abstractmethod
    def facts(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Canonical events already recorded for these fact keys."""

    @abstractmethod
    def links(self, refs: Iterable[str]) -> dict[str, Identity]:
        """Who paid each payment reference a purchase recorded (`facts.payment_ref`)."""

    @abstractmethod
    def customers(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Customer totals by customer key (`totals.customer_key`)."""

    @abstractmethod
    def companies(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Company totals by company key (`totals.company_key`)."""

    @abstractmethod
    def mark_rejected(self, keys: Iterable[str]) -> None:
        """Mixpanel refused these facts' events: the next webhook or redrive renders them afresh (best effort)."""


class EventSink(Protocol):
    """Where events and profile updates go (mixpanel/client.py): one Result per item, in order."""

    def import_events(self, events: Sequence[dict[str, Any]], *, deadline: float | None = None) -> list[Result]: ...

    def update_profiles(self, updates: Sequence[dict[str, Any]], *, deadline: float | None = None) -> list[Result]: ...

    def update_groups(self, updates: Sequence[dict[str, Any]], *, deadline: float | None = None) -> list[Result]: ...


class Relay(Protocol):
    """Mixpanel's ingestion host for the browser proxy (mixpanel/relay.py): one request forwarded as it came.

    Returns (status, content type, body); raises `RelayUnavailable` when Mixpanel cannot be reached in time.
    """

    def forward(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str, bytes]: ...


class RelayUnavailable(Exception):
    """Mixpanel's ingestion host did not answer (connection refused, timeout): the browser's SDK retries."""


class MessageQueue(Protocol):
    """SendMessage with boto3's keywords (adapters/sqs.py): returns once the queue holds the message, else raises."""

    def send_message(
        self, *, QueueUrl: str, MessageBody: str, MessageAttributes: Mapping[str, Any] | None = None
    ) -> dict[str, Any]: ...


class WebhookSecrets(Protocol):
    """A route's signing secrets, several while one is rotated (adapters/secrets.py)."""

    def for_route(self, route: str) -> list[str]: ...


class PurchaseLookups(Protocol):
    """A provider's API, for the documents its mappings need (adapters/google_play.py): one answer per lookup,
    the document or a `LookupFailed`; never raises for one lookup's trouble."""

    def fetch(self, lookups: Sequence[Lookup]) -> Found: ...
