"""Stripe's balance transactions through the `stripe` library: the `SettlementLookup` port.

A PaymentIntent's settlement is its latest charge's balance transaction (one request, expanded); a refund
names its balance transaction, read directly. Requests run a few at a time (Stripe's read limit is 100 a
second in live mode, 25 in test), with the library's own retries. The client is built elsewhere
(adapters/stripe_api.py `stripe_client`, the one constructor): this module only asks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..domain.amounts import Settlement
from ..domain.money import Money
from ..service.ports import SettlementLookup, SettlementsUnavailable

SOURCE = "stripe_balance_transaction"
CONCURRENCY = 8


class StripeSettlements(SettlementLookup):
    """`SettlementLookup` on a `stripe.StripeClient`."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def settlements(self, refs: Sequence[str]) -> dict[str, Settlement]:
        with ThreadPoolExecutor(max_workers=max(1, min(CONCURRENCY, len(refs)))) as pool:
            found = list(pool.map(self._one, refs))
        return {ref: settlement for ref, settlement in zip(refs, found, strict=True) if settlement is not None}

    def _one(self, ref: str) -> Settlement | None:
        import stripe

        try:
            if ref.startswith("txn_"):
                return _settlement(self.client.v1.balance_transactions.retrieve(ref))
            if ref.startswith("pi_"):
                intent = self.client.v1.payment_intents.retrieve(
                    ref, params={"expand": ["latest_charge.balance_transaction"]}
                )
                charge = getattr(intent, "latest_charge", None)
            elif ref.startswith(("ch_", "py_")):
                charge = self.client.v1.charges.retrieve(ref, params={"expand": ["balance_transaction"]})
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
