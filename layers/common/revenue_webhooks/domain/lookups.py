"""What a mapping needs that its webhook does not say: a document only the provider's API has.

Google Play's notifications say "this purchase changed" and nothing else; the price, the user and the state
are in the Play Developer API. A provider names what it needs as `Lookup`s; the forwarder fetches them
through its `PurchaseLookups` port (service/ports.py) and hands them to the provider's mapping, which
stays a pure function of the webhook and what was fetched. The receiver never looks anything up: it
answers in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Lookup:
    """One document to fetch: `kind` says which (a subscription, a one-time purchase, an order), `ids` where."""

    provider: str
    kind: str
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LookupFailed:
    """Why a lookup has no document: `transient` (an outage, a 429, a timeout: retry later) or not (the
    API says the purchase does not exist, or refuses the credentials: dead-letter with `reason`)."""

    reason: str
    detail: str = ""
    transient: bool = True


Found = dict[Lookup, Any]  # each lookup's document, or its LookupFailed
