"""Stripe's balance transactions through the `stripe` library: the `SettlementLookup` port.

A PaymentIntent's settlement is its latest charge's balance transaction (one request, expanded); an invoice's,
its PaymentIntent's or charge's (an invoice from 2025-03-31.basil on names neither: it is read in the last
version that did, as adapters/stripe_payments.py does); a refund names its balance transaction, read directly. Requests run a few at a time (Stripe's read limit is 100 a
second in live mode, 25 in test), with the library's own retries and the 429 backoff it does not do
(adapters/stripe_api.py `rate_limited`, shared with the other readers). The client is built elsewhere
(adapters/stripe_api.py `stripe_client`, the one constructor) for the key configured at the time: this module
only asks it, and asks nothing while no key is configured.

Restricted-key permissions used here: PaymentIntents, Charges and Balance transactions, read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..domain.amounts import Settlement
from ..domain.money import Money
from ..service.ports import SettlementLookup, SettlementsUnavailable
from .stripe_api import rate_limited
from .stripe_payments import BEFORE_BASIL

SOURCE = "stripe_balance_transaction"
CONCURRENCY = 8


class StripeSettlements(SettlementLookup):
    """`SettlementLookup` on the `stripe.StripeClient` that `client()` gives (None: no key, nothing to ask)."""

    def __init__(self, client: Callable[[], Any], *, rate_limit_wait_s: float = 10.0) -> None:
        self.client = client
        self.rate_limit_wait_s = rate_limit_wait_s

    def settlements(self, refs: Sequence[str]) -> dict[str, Settlement]:
        stripe_client = self.client()
        if stripe_client is None:
            return {}
        with ThreadPoolExecutor(max_workers=max(1, min(CONCURRENCY, len(refs)))) as pool:
            found = list(pool.map(lambda ref: self._one(stripe_client, ref), refs))
        return {ref: settlement for ref, settlement in zip(refs, found, strict=True) if settlement is not None}

    def _one(self, client: Any, ref: str) -> Settlement | None:
        import stripe

        deadline = time.monotonic() + self.rate_limit_wait_s
        try:
            if ref.startswith("txn_"):
                return _settlement(
                    rate_limited(lambda: client.v1.balance_transactions.retrieve(ref), deadline=deadline)
                )
            if ref.startswith("pi_"):
                expand = {"expand": ["latest_charge.balance_transaction"]}
                intent = rate_limited(lambda: client.v1.payment_intents.retrieve(ref, params=expand), deadline=deadline)
                charge = getattr(intent, "latest_charge", None)
            elif ref.startswith("in_"):  # a basil invoice names no payment: ask in the last version that did
                expand = {"expand": ["payment_intent.latest_charge.balance_transaction", "charge.balance_transaction"]}
                version = {"stripe_version": BEFORE_BASIL}
                invoice = rate_limited(
                    lambda: client.v1.invoices.retrieve(ref, params=expand, options=version), deadline=deadline
                )
                intent = getattr(invoice, "payment_intent", None)
                charge = getattr(intent, "latest_charge", None) if intent else getattr(invoice, "charge", None)
            elif ref.startswith(("ch_", "py_")):
                expand = {"expand": ["balance_transaction"]}
                charge = rate_limited(lambda: client.v1.charges.retrieve(ref, params=expand), deadline=deadline)
            else:
                return None
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                return None  # another account's or a deleted object: nothing to say
            raise SettlementsUnavailable(f"Stripe refused {ref}: {error.user_message or error}") from error
        except stripe.StripeError as error:
            raise SettlementsUnavailable(
                f"Stripe {ref}: {type(error).__name__}: {error.user_message or error}"
            ) from error
        transaction = getattr(charge, "balance_transaction", None) if charge is not None else None
        return _settlement(transaction) if transaction is not None and not isinstance(transaction, str) else None


def _settlement(transaction: Any) -> Settlement | None:
    """A balance transaction's amount, fee and net, in its currency (the merchant's balance currency)."""
    currency = getattr(transaction, "currency", None)
    amount, fee, net = (getattr(transaction, field, None) for field in ("amount", "fee", "net"))
    if not isinstance(currency, str) or not all(isinstance(v, int) for v in (amount, fee, net)):
        return None
    return Settlement(Money(amount, currency), Money(fee, currency), Money(net, currency), SOURCE)  # type: ignore[arg-type]
