"""Stripe API versions: which one a response is rendered in, and where the shapes this stand-in serves change.

Stripe renders list and retrieve answers in the request's `Stripe-Version` (else the account's default), and
each event in the version that was current when it was created. Only the changes that touch the objects
served here are modelled; versions compare by their date.
"""

from __future__ import annotations

from stripe._api_version import _ApiVersion

# What the pinned `stripe` library sends: the shape the backfill and catch-up will read.
LIBRARY_VERSION: str = _ApiVersion.CURRENT
# The version of tests/fixtures/stripe (real payloads of stripe-ruby-mock).
LEGACY_VERSION = "2020-08-27"
# PaymentIntent loses its embedded `charges` list (`latest_charge` instead).
CHARGES_LIST_REMOVED = "2022-11-15"
# Invoice loses `subscription`, `charge`, `payment_intent`, `paid` (`parent`, `payments` instead); subscription
# loses `current_period_*` (moved to its items), `plan`, `quantity`; charge and PaymentIntent lose `invoice`.
BASIL = "2025-03-31.basil"


def at_least(version: str, boundary: str) -> bool:
    """Whether `version` renders the shape introduced at `boundary` (dates compare as strings)."""
    return version[:10] >= boundary[:10]


def valid(version: str) -> bool:
    """A Stripe version string: `YYYY-MM-DD` with an optional `.name` (e.g. `2026-10-28.endive`)."""
    date, _, name = version.partition(".")
    parts = date.split("-")
    return (
        len(parts) == 3
        and all(p.isdigit() for p in parts)
        and [len(p) for p in parts] == [4, 2, 2]
        and (not name or name.isalpha())
    )
