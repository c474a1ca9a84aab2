"""Which purchase a payment belongs to, and who paid it: the forwarder's questions about payments it has not seen.

Two kinds of fact depend on another webhook:
- a PaymentIntent's own purchase (`Fact.yields_to`) is nothing when a Checkout Session or an invoice paid
  with it: told by this batch, the ledger (the owner's link, or `invoice_payment.paid`), or the provider's
  API when a key is configured; without one, after one wait for the owner's webhook, it counts;
- a refund (`Fact.identity_from`) takes the identity its payment recorded: from this batch, the ledger,
  the provider's API, or, after the wait, its own payload with the anonymous id the payment itself
  would have had (identity.fallback_device), so a refund of a payment never seen still lands.

The ledger's write holds the same conditions (same_as, yields_to), so a decision made here from a read
that another forwarder overtakes is still counted once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from .. import observability
from ..config import Settings
from ..domain.facts import Fact, Identity, PaymentOwner, payment_id
from ..domain.identity import payer
from ..domain.outcomes import Outcome, Result
from .ports import Ledger, LedgerUnavailable, LookupUnavailable, PaymentLookup
from .recorded import other_owner

logger = observability.logger

# Without an API to ask, a PaymentIntent's own purchase waits for its Checkout's or invoice's webhook until
# this delivery (one visibility timeout: Stripe sends them within seconds of each other).
OWNER_WAIT_DELIVERIES = 2
# Share of the invocation's time that API lookups may take; what is left over waits for the next delivery.
LOOKUP_SHARE = 0.4


class Held(Protocol):
    """What these steps need of a forwarder message (service/forwarder.py: Message)."""

    facts: list[Fact]
    owners: list[PaymentOwner]
    result: Result | None

    @property
    def attempts(self) -> int: ...

    def decide(self, result: Result) -> None: ...


class Payments:
    """The batch's payment questions, answered from the batch, the ledger, and the providers' APIs."""

    def __init__(
        self, settings: Settings, ledger: Ledger, lookups: Callable[[str], PaymentLookup | None] | None = None
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.lookups = lookups or (lambda provider: None)

    # ---- which purchase a payment belongs to -----------------------------------------------------------

    def record_owners(self, messages: Sequence[Held]) -> None:
        """`invoice_payment.paid` and the like: stored before any fact, so a PaymentIntent later in the batch yields."""
        holding = [m for m in messages if m.result is None and m.owners]
        if not holding:
            return
        try:
            self.ledger.add_owners([owner for m in holding for owner in m.owners])
        except LedgerUnavailable as error:
            for message in holding:
                message.decide(Result(Outcome.TRANSIENT, "ledger_unavailable", str(error)))

    def resolve_owners(self, messages: Sequence[Held], deadline: float) -> None:
        """A PaymentIntent's own purchase: dropped when another purchase owns its payment, held while it may."""
        pending = [(m, f) for m in messages if m.result is None for f in m.facts if f.yields_to]
        if not pending:
            return
        try:
            recorded = self.ledger.link_owners({ref for _, f in pending for ref in f.yields_to})
        except LedgerUnavailable as error:
            for message, _ in pending:
                message.decide(Result(Outcome.TRANSIENT, "ledger_unavailable", str(error)))
            return
        in_batch = _batch_owners(m for m in messages if m.result is None)
        budget = _Budget(deadline)
        absorbed: dict[int, set[str]] = {}
        for message, fact in pending:
            if message.result is not None:
                continue
            owner = self._owner(message, fact, recorded, in_batch, budget)
            if owner is None:
                continue  # its own: counts
            absorbed.setdefault(id(message), set()).add(fact.key)
        for message in messages:
            if id(message) in absorbed:
                message.facts = [f for f in message.facts if f.key not in absorbed[id(message)]]

    def _owner(
        self,
        message: Held,
        fact: Fact,
        recorded: dict[str, str],
        in_batch: dict[str, set[str]],
        budget: _Budget,
    ) -> str | None:
        """The purchase that owns this fact's payment; None when it is its own (or is held: see `message`)."""
        if any(recorded.get(ref) == fact.key for ref in fact.yields_to):
            return None  # recorded as its own before: a redelivery re-sends its event
        owner = other_owner(fact, recorded)
        if owner is not None:
            return owner
        for ref in fact.yields_to:
            others = in_batch.get(ref, set()) - {fact.key}
            if others:
                return min(others)
        lookup = self.lookups(fact.provider)
        if lookup is None or not lookup.available():
            if message.attempts < OWNER_WAIT_DELIVERIES:
                message.decide(
                    Result(Outcome.TRANSIENT, "awaiting_owner", f"{fact.key} waits for a Checkout or invoice")
                )
            return None
        if not budget.left():
            self._wait_or_go(message, fact, "lookup_budget", "no time left to ask the provider's API")
            return None
        ref = fact.yields_to[0]
        try:
            purchase = lookup.purchase(payment_id(ref) or ref)
        except LookupUnavailable as error:
            self._wait_or_go(message, fact, "lookup_unavailable", str(error))
            return None
        observability.add("PaymentLookups")
        if purchase is None or purchase.key == fact.key:
            return None
        try:  # so its redeliveries, and catch-up, find it without asking again
            self.ledger.add_owners([PaymentOwner(ref, purchase.key)])
        except LedgerUnavailable:
            logger.warning("could not record a payment's owner", extra={"fact": fact.key, "owner": purchase.key})
        return purchase.key

    def _wait_or_go(self, message: Held, fact: Fact, reason: str, detail: str) -> None:
        """Hold the message for another delivery while there is one to spare; on the last, let the fact count."""
        if message.attempts < self.settings.max_receive_count:
            message.decide(Result(Outcome.TRANSIENT, reason, f"{fact.key}: {detail}"))

    # ---- who paid ----------------------------------------------------------------------------------

    def resolve_identities(self, messages: Sequence[Held], deadline: float) -> None:
        """Facts that take their payment's identity (a refund): from the batch, the ledger, the API, or their own."""
        pending = [m for m in messages if m.result is None and any(f.identity_from for f in m.facts)]
        if not pending:
            return
        refs = {ref for m in pending for f in m.facts for ref in f.identity_from}
        try:
            links = self.ledger.links(refs)
        except LedgerUnavailable as error:
            for message in pending:
                message.decide(Result(Outcome.TRANSIENT, "ledger_unavailable", str(error)))
            return
        # A payment in this same batch is not in the ledger yet: the identity it is about to record serves too.
        for message in messages:
            if message.result is None:
                for fact in message.facts:
                    for ref in fact.links:
                        links.setdefault(ref, payer(fact))
        budget = _Budget(deadline)
        for message in pending:
            message.facts = [self._attributed(message, fact, links, budget) for fact in message.facts]

    def _attributed(self, message: Held, fact: Fact, links: dict[str, Identity], budget: _Budget) -> Fact:
        if not fact.identity_from:
            return fact
        link = next((links[ref] for ref in fact.identity_from if ref in links), None)
        if link is not None:
            return replace(fact, identity=_merge(link, fact.identity))
        looked_up, asked = self._payer_from_api(fact, budget)
        if looked_up is not None:
            observability.add("RefundsAttributedByLookup")
            return replace(fact, identity=_merge(looked_up, fact.identity))
        # Wait for the payment's webhook: to REFUND_WAIT_DELIVERIES (3: two visibility timeouts, ~13 minutes) when
        # the refund names its customer itself, which is enough to count it on the right profile; to the last
        # delivery when it names nobody. The API's "no such payment" ends the wait (no webhook would bring one).
        wait = (
            min(self.settings.refund_wait_deliveries, self.settings.max_receive_count)
            if fact.identity.known
            else self.settings.max_receive_count
        )
        if not asked and message.attempts < wait:
            message.decide(Result(Outcome.TRANSIENT, "awaiting_payment", f"{fact.key} waits for its payment"))
            return fact
        if not fact.identity.known:
            observability.add("RefundsAttributedAnonymously")
            logger.info("refund of a payment never seen: its anonymous id", extra={"fact": fact.key})
        return fact

    def _payer_from_api(self, fact: Fact, budget: _Budget) -> tuple[Identity | None, bool]:
        """(who paid, as the payment's purchase fact says; whether the API answered at all)."""
        lookup = self.lookups(fact.provider)
        if lookup is None or not budget.left() or not lookup.available():
            return None, False
        for ref in fact.identity_from:
            try:
                purchase = lookup.purchase(payment_id(ref) or ref)
            except LookupUnavailable as error:
                logger.warning("payment lookup failed", extra={"fact": fact.key, "detail": str(error)})
                return None, False
            observability.add("PaymentLookups")
            if purchase is not None:
                return payer(purchase), True
        return None, True


class _Budget:
    """The share of the invocation's time lookups may use (LOOKUP_SHARE of what is left at the first one)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.until: float | None = None

    def left(self) -> bool:
        now = time.monotonic()
        if self.until is None:
            self.until = now + max(0.0, self.deadline - now) * LOOKUP_SHARE
        return now < self.until


def _batch_owners(messages: Iterable[Held]) -> dict[str, set[str]]:
    """Payment reference -> the purchases in this batch that link it or own it."""
    owners: dict[str, set[str]] = {}
    for message in messages:
        for fact in message.facts:
            for ref in fact.links:
                owners.setdefault(ref, set()).add(fact.key)
        for owner in message.owners:
            owners.setdefault(owner.ref, set()).add(owner.fact_key)
    return owners


def _merge(link: Identity, own: Identity) -> Identity:
    return Identity(
        user_id=link.user_id or own.user_id,
        device_id=link.device_id or own.device_id,
        customer=link.customer or own.customer,
        company=link.company or own.company,
    )
