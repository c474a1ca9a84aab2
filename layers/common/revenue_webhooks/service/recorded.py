"""Whether the ledger holds what an event means: one answer for the forwarder, the ledger's write, catch-up and
the backfill.

One payment is often announced as several objects (a Checkout Session or an invoice, and the PaymentIntent that
paid it), and the ledger records it once, under whichever key came first (domain/facts.py `same_as`,
`yields_to`). So "is this fact recorded?" is never "is its own key there?": it is held when the ledger has its
key, or one of its `same_as` keys, or when another purchase owns its payment (a link naming another fact, or
`invoice_payment.paid`). Asking it any other way counts a payment twice, or enqueues again what is there.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain.facts import Fact, PaymentOwner
from .ports import Ledger


def other_owner(fact: Fact, owners: Mapping[str, str]) -> str | None:
    """The purchase of another key that owns this fact's payment ("" for a link older than owners), or None.

    `owners` is payment reference -> the purchase that linked it (`Ledger.link_owners`, or a batch's own).
    """
    for ref in fact.yields_to:
        owner = owners.get(ref)
        if owner is not None and owner != fact.key:
            return owner
    return None


def recorded_under(fact: Fact, recorded: Collection[str]) -> str | None:
    """The key the ledger holds this fact's money under: its own, else a `same_as` key; None when neither."""
    return next((key for key in (fact.key, *fact.same_as) if key in recorded), None)


@dataclass(frozen=True)
class Holdings:
    """What the ledger holds of some events' facts: recorded fact keys and the owners of their payments."""

    facts: frozenset[str] = frozenset()
    owners: Mapping[str, str] = field(default_factory=dict)

    def holds_fact(self, fact: Fact) -> bool:
        return recorded_under(fact, self.facts) is not None or other_owner(fact, self.owners) is not None

    def holds(self, items: Iterable[Any]) -> bool:
        """Whether everything an event maps to is in the ledger (an event that maps to nothing misses nothing):
        each fact (see `holds_fact`) and each payment's owner; a Deferred item is never held (it is undecided)."""
        for item in items:
            if isinstance(item, Fact):
                if not self.holds_fact(item):
                    return False
            elif isinstance(item, PaymentOwner):
                if item.ref not in self.owners:
                    return False
            else:
                return False
        return True


def holdings(ledger: Ledger, mapped: Iterable[Sequence[Any]]) -> Holdings:
    """Read what the ledger holds of these events' mapped items: their fact and `same_as` keys, and the owners of
    the payments they yield to or name (two batched reads). Raises LedgerUnavailable."""
    items = [item for event in mapped for item in event]
    facts = [item for item in items if isinstance(item, Fact)]
    keys = {key for fact in facts for key in (fact.key, *fact.same_as)}
    refs = {ref for fact in facts for ref in fact.yields_to}
    refs |= {item.ref for item in items if isinstance(item, PaymentOwner)}
    return Holdings(
        frozenset(ledger.facts(keys)) if keys else frozenset(),
        ledger.link_owners(refs) if refs else {},
    )


def held(ledger: Ledger, mapped: Sequence[Sequence[Any]]) -> list[bool]:
    """For each event's mapped items, whether the ledger holds them all (`Holdings.holds`)."""
    found = holdings(ledger, mapped)
    return [found.holds(items) for items in mapped]
