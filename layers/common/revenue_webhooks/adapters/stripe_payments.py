"""The `PaymentLookup` port on Stripe's API: the purchase a payment the ledger never saw counts under.

A PaymentIntent's purchase is its Checkout Session's (sessions filtered by `payment_intent`), its invoice's
(the PaymentIntent rendered in 2025-02-24.acacia, the last API version whose PaymentIntents name their
invoice; Stripe renders any object in the version a request asks for), or its own; a charge's is its
PaymentIntent's, else its invoice's. Each object is turned into the webhook Stripe sends for it and mapped
by the Stripe provider itself, so the answer is the very fact those webhooks make: its key tells whose
payment it is, its identity who paid (for a refund of it).

Restricted-key permissions used here: Checkout Sessions, PaymentIntents, Invoices and Charges, read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .. import observability
from ..domain import catalog as c
from ..domain.facts import Fact
from ..domain.webhook import QueuedEvent
from ..providers.base import Provider
from ..providers.stripe import id_of
from ..service.ports import LookupUnavailable
from .stripe_api import rate_limited, stripe_client

# The last API version whose PaymentIntents and charges name the invoice they paid (basil removed the field).
BEFORE_BASIL = "2025-02-24.acacia"
# Event ids of the webhooks rebuilt here, so logs never mistake them for Stripe's.
LOOKUP_EVENT_PREFIX = "evt_lookup_"

logger = observability.logger


class StripePayments:
    """Asks Stripe's API which purchase a payment is, with the key `api_key()` returns ("" when none)."""

    def __init__(
        self,
        api_key: Callable[[], str],
        api_base: str,
        provider: Provider,
        *,
        timeout_s: float = 5.0,
        rate_limit_wait_s: float = 10.0,
    ) -> None:
        self.api_key = api_key
        self.api_base = api_base
        self.provider = provider
        self.timeout_s = timeout_s
        self.rate_limit_wait_s = rate_limit_wait_s
        self._clients: dict[str, Any] = {}

    def available(self) -> bool:
        try:
            return bool(self.api_key())
        except Exception:  # an unreadable or malformed key: the forwarder goes on without lookups, loudly
            logger.exception("the Stripe API key cannot be used: payment lookups are off")
            observability.add("StripeApiKeyUnusable")
            return False

    def purchase(self, payment_id: str) -> Fact | None:
        """The purchase fact of a PaymentIntent (`pi_`) or charge (`ch_`, `py_`); None for a payment that counts
        under none (a Charges API payment). LookupUnavailable when Stripe cannot say (429s past the backoff,
        5xx, timeouts, a payment this key cannot see)."""
        import stripe

        client = self._client()
        try:
            if payment_id.startswith("pi_"):
                return self._of_intent(client, payment_id)
            if payment_id.startswith(("ch_", "py_")):
                return self._of_charge(client, payment_id)
            return None
        except stripe.InvalidRequestError as error:
            # 404: not this key's account or mode (a live key asked about a test-mode payment): no answer, so
            # the forwarder waits for webhooks as it would without a key, rather than take "none" for a fact.
            raise LookupUnavailable(_describe(error)) from error
        except stripe.StripeError as error:  # 429 after our backoff, 5xx and timeouts after the library's retries
            raise LookupUnavailable(_describe(error)) from error

    # ---- the objects ---------------------------------------------------------------------------------------

    def _of_intent(self, client: Any, intent_id: str) -> Fact | None:
        sessions = self._call(
            lambda: client.v1.checkout.sessions.list(params={"payment_intent": intent_id, "limit": 1})
        )
        for session in sessions.data:
            return self._fact("checkout.session.completed", session.to_dict(for_json=True))
        intent = self._call(
            lambda: client.v1.payment_intents.retrieve(intent_id, options={"stripe_version": BEFORE_BASIL})
        ).to_dict(for_json=True)
        invoice_id = id_of(intent.get("invoice"))
        if invoice_id:
            return self._of_invoice(client, invoice_id)
        return self._fact("payment_intent.succeeded", intent)

    def _of_charge(self, client: Any, charge_id: str) -> Fact | None:
        charge = self._call(
            lambda: client.v1.charges.retrieve(charge_id, options={"stripe_version": BEFORE_BASIL})
        ).to_dict(for_json=True)
        intent_id = id_of(charge.get("payment_intent"))
        if intent_id:
            return self._of_intent(client, intent_id)
        invoice_id = id_of(charge.get("invoice"))
        return self._of_invoice(client, invoice_id) if invoice_id else None  # a Charges API payment: no purchase

    def _of_invoice(self, client: Any, invoice_id: str) -> Fact | None:
        invoice = self._call(lambda: client.v1.invoices.retrieve(invoice_id)).to_dict(for_json=True)
        paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
        return self._fact("invoice.paid", invoice, paid_at)

    def _fact(self, event_type: str, obj: dict[str, Any], created: Any = None) -> Fact | None:
        """The Purchase Completed fact the Stripe provider makes of this object's webhook, if any."""
        event_id = f"{LOOKUP_EVENT_PREFIX}{obj.get('id')}"
        event = {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": int(created or obj.get("created") or 0),
            "livemode": bool(obj.get("livemode")),
            "data": {"object": obj},
        }
        queued = QueuedEvent("stripe", event_id, event_type, int(time.time() * 1000), json.dumps(event).encode())
        return next(
            (f for f in self.provider.map(queued) if isinstance(f, Fact) and f.event == c.PURCHASE_COMPLETED), None
        )

    # ---- plumbing ---------------------------------------------------------------------------------------

    def _client(self) -> Any:
        key = self.api_key()
        if key not in self._clients:
            self._clients.clear()  # a rotated key replaces the old client
            self._clients[key] = stripe_client(key, self.api_base, timeout_s=self.timeout_s, network_retries=1)
        return self._clients[key]

    def _call(self, call: Callable[[], Any]) -> Any:
        return rate_limited(call, deadline=time.monotonic() + self.rate_limit_wait_s)


def _describe(error: Exception) -> str:
    status = getattr(error, "http_status", None)
    message = getattr(error, "user_message", None) or str(error)
    return f"{type(error).__name__}{f' {status}' if status else ''}: {message}"[:300]
