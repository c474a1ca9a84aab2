"""The ports the services need, and nothing more: the ledger, the event sink (Mixpanel), a queue, the
webhook secrets, and the relay the browser proxy forwards through. The adapters (adapters/) implement them against AWS and Mixpanel; the unit tests with
in-memory fakes (tests/unit/service/)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from ..domain.amounts import Settlement
from ..domain.facts import Fact, Identity, PaymentOwner
from ..domain.fx import RateTable
from ..domain.lookups import Found, Lookup
from ..domain.outcomes import Result

# What `Ledger.record_all` says of each fact: (its canonical event, newly recorded), or the error that stopped it.
# The event is None when the fact is another purchase's (a PaymentIntent's own fact whose Checkout Session or
# invoice linked it, `Fact.yields_to`): nothing is sent for it.
Recorded = tuple[dict[str, Any] | None, bool] | Exception


class LedgerUnavailable(Exception):
    """The ledger could not be read or written: the message must be retried, not dropped."""


class Ledger(ABC):
    """Each business fact recorded once with its canonical Mixpanel event, and exact customer totals.

    The first webhook about a fact fixes its event; later ones get that event back (so Mixpanel's
    deduplication sees the same bytes). A fact's effect on its customer's totals (domain/totals.py)
    is applied in the same write as the fact, so a retry never counts it twice. A fact whose `same_as`
    fact is recorded is that fact; a fact that `yields_to` a payment another purchase linked is nothing;
    both are decided in the same write, so the order in which they arrive does not matter.
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
    def link_owners(self, refs: Iterable[str]) -> dict[str, str]:
        """The purchase (fact key) each linked payment reference belongs to, "" where an older link does not say."""

    @abstractmethod
    def add_owners(self, owners: Sequence[PaymentOwner]) -> None:
        """Record which purchase payments belong to (a link that exists already stays); LedgerUnavailable if not."""

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


class LookupUnavailable(Exception):
    """The provider's API could not answer now (rate limit, outage, timeout): ask again later."""


class PaymentLookup(Protocol):
    """A provider's API, asked about a payment the ledger never saw (adapters/stripe_payments.py)."""

    def available(self) -> bool:
        """Whether the API can be asked (a key is configured)."""
        ...

    def purchase(self, payment_id: str) -> Fact | None:
        """The Purchase Completed fact this payment counts under, as its webhooks would make it (its Checkout
        Session's, its invoice's, or its own); None when the API knows no such purchase. Raises
        `LookupUnavailable` when the API cannot answer now."""
        ...


class StripeEvents(Protocol):
    """Stripe's `GET /v1/events` (adapters/stripe_events.py), read newest first within its 30 days."""

    def events(
        self, types: Sequence[str], created_gte: int, created_lt: int, *, deadline: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events of `types` created in [created_gte, created_lt), as Stripe's JSON; raises LookupUnavailable."""
        ...


class Checkpoints(Protocol):
    """Small named states that survive between runs (adapters/checkpoints.py: items of the ledger table)."""

    def get(self, name: str) -> dict[str, Any] | None: ...

    def put(self, name: str, value: dict[str, Any]) -> None: ...


class WebhookSecrets(Protocol):
    """A route's signing secrets, several while one is rotated (adapters/secrets.py)."""

    def for_route(self, route: str) -> list[str]: ...


# ---- what a fact needs looked up before it is rendered (service/reporting.py, service/settlements.py) -------


class EnrichmentUnavailable(Exception):
    """A lookup a fact's rendering needs failed: the message waits, and on its last attempt goes out without it."""

    reason = "lookup_unavailable"  # the retry reason logged and, when retries run out, never a dead letter


class FactEnricher(Protocol):
    """Adds to facts what a lookup says (a rate, a settlement) before they are rendered."""

    def attach(self, facts: Sequence[Fact], *, fetch: bool = True) -> list[Fact]:
        """`facts` with what is known; without `fetch`, only what needs no remote call (the last attempt)."""
        ...


class RatesUnavailable(EnrichmentUnavailable):
    """Reference rates could be neither read from the cache nor fetched: retry, or render unconverted at the end."""

    reason = "rates_unavailable"


class RateCache(Protocol):
    """Reference tables kept per fact day (adapters/dynamodb_ledger.py): the first one stored for a day is the
    one every later rendering uses, so a replay or redrive renders the same bytes."""

    def rate_tables(self, source: str, days: Iterable[str]) -> dict[str, RateTable]: ...

    def keep_rate_tables(self, source: str, tables: Mapping[str, RateTable]) -> dict[str, RateTable]:
        """Store each day's table unless one is stored already; returns what is stored for those days."""
        ...


class RateSource(Protocol):
    """Published reference tables (adapters/reference_rates.py: the ECB's); raises RatesUnavailable."""

    name: str

    def tables(self, days: Collection[str]) -> list[RateTable]:
        """Every table published from a little before the oldest of `days` (YYYY-MM-DD) on."""
        ...


class SettlementsUnavailable(EnrichmentUnavailable):
    """The provider's API could not say how a payment settled (unreachable, rate-limited, refused)."""

    reason = "settlements_unavailable"


class SettlementLookup(Protocol):
    """The provider's own books (adapters/stripe_settlements.py: Stripe's balance transactions)."""

    def settlements(self, refs: Sequence[str]) -> dict[str, Settlement]:
        """The settlement of each reference that has one (a pending payment has none yet); raises
        SettlementsUnavailable when the API cannot be asked."""
        ...


class PurchaseLookups(Protocol):
    """A provider's API, for the documents its mappings need (adapters/google_play.py): one answer per lookup,
    the document or a `LookupFailed`; never raises for one lookup's trouble."""

    def fetch(self, lookups: Sequence[Lookup]) -> Found: ...
