"""A local Stripe API with history: Stripe's list and retrieve endpoints over an account that tests write.

`StripeAccount` writes the history (and returns the events Stripe would send), `write_history` writes a
varied one, `StripeApiServer` serves it to the `stripe` library over HTTP on 127.0.0.1, and `SpecChecker`
holds what it serves to Stripe's published OpenAPI spec. Why not localstripe: see docs in SOURCES.md of
tests/fixtures/stripe-openapi/.
"""

from .account import StripeAccount, seconds
from .faults import Fault, FaultPlan
from .history import History, write_history
from .server import ApiKey, StripeApiServer
from .spec import SpecChecker, Violation, spec_checker
from .store import Event

__all__ = [
    "ApiKey",
    "Event",
    "Fault",
    "FaultPlan",
    "History",
    "SpecChecker",
    "StripeAccount",
    "StripeApiServer",
    "Violation",
    "seconds",
    "spec_checker",
    "write_history",
]
