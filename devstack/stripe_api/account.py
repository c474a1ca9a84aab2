"""A Stripe account whose history tests write: customers, payments, subscriptions, refunds, and their events.

Each action stores the objects Stripe would create (with the times given) and the events Stripe would emit
for them, and returns the main event, so a test can also sign that event and POST it as the webhook. Ids
come from a seeded generator: the same calls give the same account.

    account = StripeAccount(seed=7)
    ada = account.customer(email="ada@example.com", at=day(2025, 1, 3)).object_id
    paid = account.pay_checkout(4900, "usd", customer=ada, at=day(2025, 1, 3))
    account.refund(paid.object["payment_intent"], 1900, at=day(2025, 3, 1))
"""

from __future__ import annotations

import random
import string
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .shapes import Record, render
from .store import Event, Store
from .versions import LIBRARY_VERSION

Moment = int | datetime
_ALPHABET = string.ascii_letters + string.digits
MONTH_S = 30 * 86400  # a billing period here; Stripe's calendar months do not matter to what is counted


def seconds(moment: Moment) -> int:
    """Unix seconds for an int or an aware datetime (naive datetimes are taken as UTC)."""
    if isinstance(moment, datetime):
        return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    return int(moment)


class StripeAccount:
    """One Stripe account (test or live mode) and its history. Thread-safe."""

    def __init__(
        self,
        *,
        seed: int = 1,
        livemode: bool = False,
        api_version: str = LIBRARY_VERSION,
        account_id: str | None = None,
    ) -> None:
        self.livemode = livemode
        self.api_version = api_version  # the account's default: events are rendered in it
        self.store = Store()
        self._rng = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self._lock = threading.RLock()
        self._invoice_numbers = 0
        self.id = account_id or self.new_id("acct_", 16)

    # ------------------------------------------------------------------------------------------ building

    def new_id(self, prefix: str, length: int = 24) -> str:
        with self._lock:
            return prefix + "".join(self._rng.choice(_ALPHABET) for _ in range(length))

    def _mode(self, prefix: str) -> str:
        return f"{prefix}{'live' if self.livemode else 'test'}_"

    def _save(self, record: Record, at: int) -> Record:
        return self.store.put(record, at)

    def _emit(self, event_type: str, object_id: str, at: int, previous: Mapping[str, Any] | None = None) -> Event:
        record = self.store.get(object_id)
        assert record is not None, object_id
        event = Event(
            id=self.new_id("evt_"),
            type=event_type,
            created=at,
            api_version=self.api_version,
            livemode=self.livemode,
            object=render(record, self.api_version, self.store.get),
            previous_attributes=dict(previous) if previous is not None else None,
        )
        self.store.add_event(event)
        return event

    def render(self, object_id: str, api_version: str | None = None) -> dict[str, Any]:
        """An object as the API returns it now, in `api_version` (default: the account's)."""
        record = self.store.get(object_id)
        if record is None:
            raise KeyError(object_id)
        return render(record, api_version or self.api_version, self.store.get)

    def events(
        self, types: tuple[str, ...] = (), since: Moment | None = None, until: Moment | None = None
    ) -> list[Event]:
        """Events oldest first, optionally of `types` and with `since <= created < until`."""
        low = seconds(since) if since is not None else None
        high = seconds(until) if until is not None else None
        found = [
            e
            for e in reversed(self.store.events())
            if (not types or e.type in types)
            and (low is None or e.created >= low)
            and (high is None or e.created < high)
        ]
        return found

    # ---------------------------------------------------------------------------------------- customers

    def customer(
        self,
        *,
        at: Moment,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Event:
        """A customer (`customer.created`)."""
        when = seconds(at)
        customer_id = self.new_id("cus_", 14)
        record: dict[str, Any] = {
            "object": "customer",
            "id": customer_id,
            "created": when,
            "email": email,
            "name": name,
            "description": None,
            "phone": None,
            "metadata": dict(metadata or {}),
            "livemode": self.livemode,
            "next_invoice_sequence": 1,
        }
        self._save(record, when)
        return self._emit("customer.created", customer_id, when)

    def _customer(self, customer: str | None) -> Record | None:
        if customer is None:
            return None
        record = self.store.get(customer)
        if record is None or record["object"] != "customer":
            raise KeyError(f"no customer {customer!r} in this account")
        return record

    def price(self, unit_amount: int, currency: str, *, nickname: str | None = None, at: Moment = 0) -> dict[str, Any]:
        """A monthly recurring price to subscribe to (no event: products and prices are not what is counted)."""
        return {
            "id": self.new_id("price_"),
            "product": self.new_id("prod_", 14),
            "unit_amount": unit_amount,
            "currency": currency.lower(),
            "nickname": nickname,
            "created": seconds(at),
        }

    # ----------------------------------------------------------------------------------------- payments

    def _charge_payment(
        self,
        amount: int,
        currency: str,
        when: int,
        customer: Record | None,
        email: str | None,
        metadata: Mapping[str, str] | None,
        description: str | None,
        invoice: str | None = None,
    ) -> tuple[Record, Record]:
        """A succeeded PaymentIntent with its charge and balance transaction (events: the caller's)."""
        currency = currency.lower()
        pi_id, charge_id, txn_id = self.new_id("pi_"), self.new_id("ch_"), self.new_id("txn_")
        email = email or (customer or {}).get("email")
        name = (customer or {}).get("name")
        fee = amount * 29 // 1000
        self._save(
            {
                "object": "balance_transaction",
                "id": txn_id,
                "created": when,
                "available_on": when + 2 * 86400,
                "amount": amount,
                "currency": currency,
                "fee": fee,
                "fee_details": [
                    {
                        "amount": fee,
                        "application": None,
                        "currency": currency,
                        "description": "Stripe processing fees",
                        "type": "stripe_fee",
                    }
                ],
                "net": amount - fee,
                "source": charge_id,
                "type": "charge",
                "reporting_category": "charge",
                "description": description,
                "status": "available",
            },
            when,
        )
        charge = self._save(
            {
                "object": "charge",
                "id": charge_id,
                "created": when,
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "refunded": False,
                "currency": currency,
                "customer": customer["id"] if customer else None,
                "description": description,
                "metadata": dict(metadata or {}),
                "livemode": self.livemode,
                "payment_intent": pi_id,
                "payment_method": self.new_id("pm_"),
                "balance_transaction": txn_id,
                "receipt_email": email,
                "_email": email,
                "_name": name,
                "_refunds": [],
                "_invoice": invoice,
            },
            when,
        )
        intent = self._save(
            {
                "object": "payment_intent",
                "id": pi_id,
                "created": when,
                "amount": amount,
                "amount_received": amount,
                "currency": currency,
                "customer": customer["id"] if customer else None,
                "description": description,
                "metadata": dict(metadata or {}),
                "livemode": self.livemode,
                "status": "succeeded",
                "latest_charge": charge_id,
                "payment_method": charge["payment_method"],
                "payment_method_types": ["card"],
                "receipt_email": email,
                "_invoice": invoice,
            },
            when,
        )
        return intent, charge

    def _announce_payment(self, intent: Record, charge: Record, when: int) -> Event:
        first = self._emit("payment_intent.succeeded", intent["id"], when)
        self._emit("charge.succeeded", charge["id"], when)
        return first

    def pay_direct(
        self,
        amount: int,
        currency: str,
        *,
        at: Moment,
        customer: str | None = None,
        email: str | None = None,
        metadata: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> Event:
        """A PaymentIntent paid without Checkout or an invoice (Payment Element): `payment_intent.succeeded`."""
        when = seconds(at)
        with self._lock:
            intent, charge = self._charge_payment(
                amount, currency, when, self._customer(customer), email, metadata, description
            )
            return self._announce_payment(intent, charge, when)

    def pay_checkout(
        self,
        amount: int,
        currency: str,
        *,
        at: Moment,
        customer: str | None = None,
        email: str | None = None,
        client_reference_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Event:
        """A one-off Checkout payment (a guest one when `customer` is None): `checkout.session.completed`."""
        when = seconds(at)
        with self._lock:
            buyer = self._customer(customer)
            email = email or (buyer or {}).get("email")
            intent, charge = self._charge_payment(amount, currency, when, buyer, email, metadata, None)
            session = self._checkout_session(
                when, amount, intent["currency"], buyer, email, client_reference_id, metadata
            )
            session.update(mode="payment", payment_intent=intent["id"])
            self._save(session, when)
            self._announce_payment(intent, charge, when)
            return self._emit("checkout.session.completed", session["id"], when)

    def _checkout_session(
        self,
        when: int,
        amount: int,
        currency: str,
        buyer: Record | None,
        email: str | None,
        client_reference_id: str | None,
        metadata: Mapping[str, str] | None,
    ) -> Record:
        return {
            "object": "checkout.session",
            "id": self.new_id(self._mode("cs_"), 58),
            "created": when - 120,  # the buyer spent two minutes on the page
            "expires_at": when - 120 + 86400,
            "amount_subtotal": amount,
            "amount_total": amount,
            "currency": currency,
            "customer": buyer["id"] if buyer else None,
            "customer_email": None if buyer else email,
            "client_reference_id": client_reference_id,
            "metadata": dict(metadata or {}),
            "livemode": self.livemode,
            "payment_status": "paid",
            "status": "complete",
            "payment_intent": None,
            "subscription": None,
            "invoice": None,
            "_email": email,
            "_name": (buyer or {}).get("name"),
        }

    # ------------------------------------------------------------------------------------ subscriptions

    def subscribe(
        self,
        customer: str,
        price: Mapping[str, Any],
        *,
        at: Moment,
        quantity: int = 1,
        checkout: bool = True,
        metadata: Mapping[str, str] | None = None,
    ) -> Event:
        """An active monthly subscription and its paid first invoice: `customer.subscription.created`.

        With `checkout`, the buyer subscribed through Checkout (a `mode=subscription` session completes too).
        """
        when = seconds(at)
        with self._lock:
            buyer = self._customer(customer)
            assert buyer is not None
            item = {
                "id": self.new_id("si_", 14),
                "created": when,
                "quantity": quantity,
                "price": dict(price),
                "current_period_start": when,
                "current_period_end": when + MONTH_S,
            }
            subscription = {
                "object": "subscription",
                "id": self.new_id("sub_"),
                "created": when,
                "start_date": when,
                "billing_cycle_anchor": when,
                "customer": customer,
                "currency": price["currency"],
                "status": "active",
                "items": [item],
                "latest_invoice": None,
                "cancel_at_period_end": False,
                "cancel_at": None,
                "canceled_at": None,
                "ended_at": None,
                "description": None,
                "metadata": dict(metadata or {}),
                "livemode": self.livemode,
            }
            self._save(subscription, when)
            created = self._emit("customer.subscription.created", subscription["id"], when)
            invoice = self._invoice(subscription, when, "subscription_create", price["unit_amount"] * quantity)
            if checkout:
                session = self._checkout_session(
                    when, invoice["amount_paid"], price["currency"], buyer, None, None, metadata
                )
                session.update(mode="subscription", subscription=subscription["id"], invoice=invoice["id"])
                self._save(session, when)
                self._emit("checkout.session.completed", session["id"], when)
            return created

    def _invoice(
        self, subscription: Record, when: int, billing_reason: str, amount: int, price: Mapping[str, Any] | None = None
    ) -> Record:
        """A paid subscription invoice with its payment, and the events Stripe sends for it."""
        buyer = self._customer(subscription["customer"])
        assert buyer is not None
        item = subscription["items"][0]
        price = dict(price or item["price"])
        self._invoice_numbers += 1
        invoice_id = self.new_id("in_")
        intent, charge = self._charge_payment(
            amount,
            price["currency"],
            when,
            buyer,
            None,
            None,
            "Subscription creation" if billing_reason == "subscription_create" else "Subscription update",
            invoice_id,
        )
        period = {"start": item["current_period_start"], "end": item["current_period_end"]}
        invoice = {
            "object": "invoice",
            "id": invoice_id,
            "number": f"{buyer['id'][-8:].upper()}-{self._invoice_numbers:04d}",
            "created": when,
            "customer": buyer["id"],
            "customer_email": buyer.get("email"),
            "customer_name": buyer.get("name"),
            "currency": price["currency"],
            "amount_due": amount,
            "amount_paid": amount,
            "amount_remaining": 0,
            "subtotal": amount,
            "total": amount,
            "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "status": "paid",
            "attempt_count": 1,
            "attempted": True,
            "auto_advance": False,
            "period_start": period["start"],
            "period_end": period["end"],
            "status_transitions": {
                "finalized_at": when,
                "marked_uncollectible_at": None,
                "paid_at": when,
                "voided_at": None,
            },
            "metadata": {},
            "livemode": self.livemode,
            "lines": [
                {
                    "id": self.new_id("il_"),
                    "amount": amount,
                    "description": f"{item['quantity']} × {price.get('nickname') or 'Subscription'}",
                    "period": period,
                    "quantity": item["quantity"],
                    "price": price,
                    "proration": billing_reason == "subscription_update",
                    "subscription_item": item["id"],
                    "metadata": dict(subscription.get("metadata") or {}),
                }
            ],
            "_subscription": subscription["id"],
            "_subscription_metadata": dict(subscription.get("metadata") or {}),
            "_charge": charge["id"],
            "_payment_intent": intent["id"],
        }
        self._save(invoice, when)
        subscription["latest_invoice"] = invoice_id
        self._save(subscription, when)
        self._emit("invoice.created", invoice_id, when)
        self._emit("invoice.finalized", invoice_id, when)
        self._announce_payment(intent, charge, when)
        paid = self._emit("invoice.paid", invoice_id, when)
        self._emit("invoice.payment_succeeded", invoice_id, when)
        return {**invoice, "_event": paid.id}

    def renew(self, subscription: str, *, at: Moment) -> Event:
        """The next period's invoice, paid (`billing_reason=subscription_cycle`): `invoice.paid`."""
        when = seconds(at)
        with self._lock:
            record = self._subscription(subscription)
            before = self.render(subscription)
            item = record["items"][0]
            item.update(current_period_start=when, current_period_end=when + MONTH_S)
            self._save(record, when)
            # Stripe puts a changed array whole in previous_attributes: the items list as it was (in versions
            # before basil the periods are the subscription's own fields, which changed too).
            previous = {"items": before["items"], "latest_invoice": before.get("latest_invoice")}
            for name in ("current_period_start", "current_period_end"):
                if name in before:
                    previous[name] = before[name]
            self._emit("customer.subscription.updated", subscription, when, previous)
            invoice = self._invoice(record, when, "subscription_cycle", item["price"]["unit_amount"] * item["quantity"])
            event = self.store.event(invoice["_event"])
            assert event is not None
            return event

    def upgrade(
        self, subscription: str, price: Mapping[str, Any], *, at: Moment, proration: int | None = None
    ) -> Event:
        """A plan change billed at once (`billing_reason=subscription_update`): `customer.subscription.updated`.

        `proration` is what the change costs now (default: the price difference for a whole period).
        """
        when = seconds(at)
        with self._lock:
            record = self._subscription(subscription)
            before = self.render(subscription)
            item = record["items"][0]
            old_price = item["price"]
            item["price"] = dict(price)
            self._save(record, when)
            previous = {"items": before["items"]}
            if "plan" in before:
                previous["plan"] = before["plan"]
            updated = self._emit("customer.subscription.updated", subscription, when, previous)
            amount = (
                proration
                if proration is not None
                else (price["unit_amount"] - old_price["unit_amount"]) * item["quantity"]
            )
            if amount > 0:
                self._invoice(record, when, "subscription_update", amount, price)
            return updated

    def cancel(self, subscription: str, *, at: Moment) -> Event:
        """The subscription ends now: `customer.subscription.deleted`."""
        when = seconds(at)
        with self._lock:
            record = self._subscription(subscription)
            record.update(status="canceled", canceled_at=when, ended_at=when)
            record["cancellation_details"] = {"comment": None, "feedback": None, "reason": "cancellation_requested"}
            self._save(record, when)
            return self._emit("customer.subscription.deleted", subscription, when, {"status": "active"})

    def _subscription(self, subscription: str) -> Record:
        record = self.store.get(subscription)
        if record is None or record["object"] != "subscription":
            raise KeyError(f"no subscription {subscription!r} in this account")
        return record

    # ------------------------------------------------------------------------------------------ refunds

    def refund(
        self, payment: str, amount: int | None = None, *, at: Moment, reason: str = "requested_by_customer"
    ) -> Event:
        """Refund (part of) a payment, named by its charge, PaymentIntent, Checkout Session or invoice: `refund.created`.

        `amount` defaults to what is left to refund. `charge.refunded` follows, with `amount_refunded` cumulative.
        """
        when = seconds(at)
        with self._lock:
            charge = self._charge_of(payment)
            left = charge["amount"] - charge["amount_refunded"]
            amount = left if amount is None else amount
            if not 0 < amount <= left:
                raise ValueError(f"refund of {amount} on {charge['id']}: {left} is left to refund")
            refund_id, txn_id = self.new_id("re_"), self.new_id("txn_")
            self._save(
                {
                    "object": "balance_transaction",
                    "id": txn_id,
                    "created": when,
                    "available_on": when,
                    "amount": -amount,
                    "currency": charge["currency"],
                    "fee": 0,
                    "fee_details": [],
                    "net": -amount,
                    "source": refund_id,
                    "type": "refund",
                    "reporting_category": "refund",
                    "description": "REFUND FOR CHARGE",
                    "status": "available",
                },
                when,
            )
            self._save(
                {
                    "object": "refund",
                    "id": refund_id,
                    "created": when,
                    "amount": amount,
                    "balance_transaction": txn_id,
                    "charge": charge["id"],
                    "payment_intent": charge["payment_intent"],
                    "currency": charge["currency"],
                    "customer": charge["customer"],
                    "metadata": {},
                    "payment_method": charge["payment_method"],
                    "reason": reason,
                    "receipt_number": None,
                    "status": "succeeded",
                },
                when,
            )
            previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            charge["_refunds"] = [*charge["_refunds"], refund_id]
            self._save(charge, when)
            if previous["refunded"] == charge["refunded"]:
                del previous["refunded"]
            self._emit("charge.refunded", charge["id"], when, previous)
            return self._emit("refund.created", refund_id, when)

    def _charge_of(self, payment: str) -> Record:
        record = self.store.get(payment)
        if record is None:
            raise KeyError(f"no payment {payment!r} in this account")
        kind = record["object"]
        charge_id = {
            "charge": lambda: record["id"],
            "payment_intent": lambda: record["latest_charge"],
            "checkout.session": lambda: (self.store.get(record["payment_intent"] or "") or {}).get("latest_charge"),
            "invoice": lambda: record.get("_charge"),
        }.get(kind, lambda: None)()
        charge = self.store.get(charge_id) if charge_id else None
        if charge is None:
            raise KeyError(f"{payment!r} ({kind}) has no charge to refund")
        return charge
