"""Stripe event payloads for one customer's history, built from the real fixtures' shapes.

The fixtures (tests/fixtures/stripe, API 2020-08-27) are the base objects; this module sets
ids, amounts, currencies and times, and renders invoices in the old shape or the
2025-03-31.basil shape (no `subscription`, `charge`, `payment_intent`, `paid` on invoices;
`parent.subscription_details` and `payments` instead).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
BASIL = "2025-03-31.basil"


@cache
def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _object(name: str) -> dict[str, Any]:
    return copy.deepcopy(_fixture(name)["data"]["object"])


class Story:
    """Builds the webhooks one Stripe customer produces, with ids and times under the caller's control."""

    def __init__(
        self,
        customer: str = "cus_story1",
        user_id: str | None = "user-42",
        api_version: str = "2020-08-27",
        start: int = 1_750_000_000,
    ) -> None:
        self.customer = customer
        self.user_id = user_id
        self.api_version = api_version
        self.clock = start
        self.sequence = 0

    def _event(self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        self.sequence += 1
        self.clock += 60
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        return {
            "id": f"evt_{self.customer}_{self.sequence:04d}",
            "object": "event",
            "api_version": self.api_version,
            "created": self.clock,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    @property
    def metadata(self) -> dict[str, str]:
        return {"user_id": self.user_id} if self.user_id else {}

    # ---- Checkout ---------------------------------------------------------------------

    def checkout(
        self,
        session_id: str,
        amount: int,
        currency: str = "usd",
        *,
        mode: str = "payment",
        payment_status: str = "paid",
        payment_intent: str | None = None,
        subscription: str | None = None,
        event_type: str = "checkout.session.completed",
    ) -> dict[str, Any]:
        session = _object("checkout.session.completed")
        session.update(
            id=session_id,
            amount_total=amount,
            amount_subtotal=amount,
            currency=currency,
            customer=self.customer,
            client_reference_id=self.user_id,
            metadata={},
            mode=mode,
            payment_status=payment_status,
            payment_intent=payment_intent if mode == "payment" else None,
            subscription=subscription if mode == "subscription" else None,
            status="complete",
        )
        return self._event(event_type, session)

    # ---- subscriptions ---------------------------------------------------------------

    def subscription(
        self,
        sub_id: str,
        status: str = "active",
        price: str = "price_basic",
        plan_name: str = "Basic",
        quantity: int = 1,
        *,
        unit_amount: int = 1000,
        currency: str = "usd",
        interval: str = "month",
    ) -> dict[str, Any]:
        sub = _object("customer.subscription.created")
        item = sub["items"]["data"][0]
        item["price"].update(
            id=price,
            nickname=plan_name,
            unit_amount=unit_amount,
            unit_amount_decimal=str(unit_amount),
            currency=currency,
        )
        item["price"]["recurring"] = {**(item["price"].get("recurring") or {}), "interval": interval}
        item["quantity"] = quantity
        sub.update(
            id=sub_id,
            customer=self.customer,
            status=status,
            metadata=self.metadata,
            cancel_at_period_end=False,
            cancel_at=None,
            plan=copy.deepcopy(item["price"]),
            quantity=quantity,
        )
        return sub

    def subscription_created(self, sub: dict[str, Any]) -> dict[str, Any]:
        return self._event("customer.subscription.created", copy.deepcopy(sub))

    def subscription_updated(self, sub: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
        return self._event("customer.subscription.updated", copy.deepcopy(sub), previous)

    def subscription_deleted(self, sub: dict[str, Any]) -> dict[str, Any]:
        ended = copy.deepcopy(sub)
        ended.update(status="canceled", ended_at=self.clock + 60, canceled_at=self.clock + 60)
        return self._event("customer.subscription.deleted", ended)

    def trial_will_end(self, sub: dict[str, Any], trial_end: int) -> dict[str, Any]:
        trialing = copy.deepcopy(sub)
        trialing.update(status="trialing", trial_end=trial_end)
        return self._event("customer.subscription.trial_will_end", trialing)

    # ---- invoices ----------------------------------------------------------------------

    def invoice(
        self,
        invoice_id: str,
        amount: int,
        currency: str = "usd",
        *,
        subscription: dict[str, Any] | None = None,
        billing_reason: str = "subscription_cycle",
        payment_intent: str | None = None,
        charge: str | None = None,
        paid_at: int | None = None,
        attempt_count: int = 1,
        status: str = "paid",
    ) -> dict[str, Any]:
        invoice = _object("invoice.paid")
        line = invoice["lines"]["data"][0]
        if subscription is not None:
            price = copy.deepcopy(subscription["items"]["data"][0]["price"])
            line.update(price=price, plan=copy.deepcopy(price), metadata=dict(subscription.get("metadata") or {}))
        invoice.update(
            id=invoice_id,
            amount_paid=amount if status == "paid" else 0,
            amount_due=amount,
            total=amount,
            subtotal=amount,
            currency=currency,
            customer=self.customer,
            billing_reason=billing_reason if subscription else "manual",
            status=status,
            attempt_count=attempt_count,
            metadata={},
            status_transitions={"paid_at": paid_at or self.clock + 30, "finalized_at": self.clock},
        )
        if self.api_version >= BASIL:
            for gone in ("subscription", "charge", "payment_intent", "paid"):
                invoice.pop(gone, None)
            invoice["parent"] = (
                {
                    "type": "subscription_details",
                    "subscription_details": {
                        "subscription": subscription["id"],
                        "metadata": dict(subscription.get("metadata") or {}),
                    },
                }
                if subscription
                else None
            )
            invoice["payments"] = {
                "object": "list",
                "data": [
                    {
                        "object": "invoice_payment",
                        "payment": {"type": "payment_intent", "payment_intent": payment_intent},
                    }
                ]
                if payment_intent
                else [],
            }
        else:
            invoice.update(
                subscription=subscription["id"] if subscription else None,
                charge=charge,
                payment_intent=payment_intent,
                paid=status == "paid",
            )
        return invoice

    def invoice_event(self, event_type: str, invoice: dict[str, Any]) -> dict[str, Any]:
        return self._event(event_type, copy.deepcopy(invoice))

    # ---- PaymentIntents ------------------------------------------------------------------

    def payment_intent_succeeded(
        self,
        intent_id: str,
        amount: int,
        currency: str = "usd",
        *,
        invoice: str | None = None,
        charge: str | None = None,
        metadata: dict[str, str] | None = None,
        customer: str | None = "",
    ) -> dict[str, Any]:
        """`payment_intent.succeeded` (Stripe sends it for every payment): before basil it names its invoice."""
        intent = _object("payment_intent.succeeded")
        intent.update(
            id=intent_id,
            amount=amount,
            amount_received=amount,
            currency=currency,
            customer=self.customer if customer == "" else customer,
            metadata=dict(self.metadata if metadata is None else metadata),
            status="succeeded",
        )
        intent.pop("charges", None)
        intent["latest_charge"] = charge
        if self.api_version >= BASIL:
            intent.pop("invoice", None)
        else:
            intent["invoice"] = invoice
        return self._event("payment_intent.succeeded", intent)

    def invoice_payment_paid(
        self, invoice_id: str, intent_id: str, amount: int, currency: str = "usd"
    ) -> dict[str, Any]:
        """basil+: `invoice_payment.paid`, the only payload that says which invoice a PaymentIntent paid."""
        payment = {
            "id": f"inpay_{invoice_id[3:]}",
            "object": "invoice_payment",
            "amount_paid": amount,
            "amount_requested": amount,
            "created": self.clock,
            "currency": currency,
            "invoice": invoice_id,
            "is_default": True,
            "livemode": False,
            "payment": {"type": "payment_intent", "payment_intent": intent_id},
            "status": "paid",
            "status_transitions": {"canceled_at": None, "paid_at": self.clock},
        }
        return self._event("invoice_payment.paid", payment)

    # ---- refunds ------------------------------------------------------------------------

    def refund(self, refund_id: str, amount: int, currency: str, *, charge: str, payment_intent: str) -> dict[str, Any]:
        self.clock += 1
        return {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": charge,
            "created": self.clock,
            "currency": currency,
            "metadata": {},
            "payment_intent": payment_intent,
            "reason": "requested_by_customer",
            "status": "succeeded",
        }

    def refund_created(self, refund: dict[str, Any]) -> dict[str, Any]:
        return self._event("refund.created", copy.deepcopy(refund))

    def charge_refunded(
        self, charge_id: str, payment_intent: str, amount: int, currency: str, refunds: list[dict[str, Any]]
    ) -> dict[str, Any]:
        charge = _object("charge.refunded")
        total = sum(r["amount"] for r in refunds)
        charge.update(
            id=charge_id,
            amount=amount,
            amount_captured=amount,
            amount_refunded=total,
            refunded=total >= amount,
            currency=currency,
            customer=self.customer,
            payment_intent=payment_intent,
            metadata={},
            refunds={"object": "list", "data": copy.deepcopy(refunds), "has_more": False, "total_count": len(refunds)},
        )
        previous = {"amount_refunded": total - refunds[-1]["amount"]}
        return self._event("charge.refunded", charge, previous)


def full_history(
    api_version: str = "2020-08-27",
    customer: str = "cus_story1",
    user_id: str = "user-42",
    *,
    payment_intents: bool = False,
) -> list[dict[str, Any]]:
    """A customer's year: a one-time purchase, a subscription with renewals and a plan change, refunds, the end.

    `payment_intents`: also every `payment_intent.succeeded` Stripe sends (for each Checkout and invoice
    payment), `invoice_payment.paid` in basil+, and a direct PaymentIntent payment with its refund.
    """
    s = Story(customer=customer, user_id=user_id, api_version=api_version)
    events = [s.checkout(f"cs_{customer}_1", 4999, "usd", payment_intent=f"pi_{customer}_1")]
    basic = s.subscription(f"sub_{customer}", status="incomplete")
    events.append(s.checkout(f"cs_{customer}_2", 1000, "usd", mode="subscription", subscription=basic["id"]))
    events.append(s.subscription_created(basic))
    active = {**basic, "status": "active"}
    events.append(s.subscription_updated(active, {"status": "incomplete"}))
    first = s.invoice(
        f"in_{customer}_1",
        1000,
        subscription=active,
        billing_reason="subscription_create",
        payment_intent=f"pi_{customer}_2",
        charge=f"ch_{customer}_2",
    )
    events += [s.invoice_event("invoice.paid", first), s.invoice_event("invoice.payment_succeeded", first)]
    renewal = s.invoice(
        f"in_{customer}_2", 1000, subscription=active, payment_intent=f"pi_{customer}_3", charge=f"ch_{customer}_3"
    )
    events.append(s.invoice_event("invoice.paid", renewal))
    pro = s.subscription(basic["id"], price="price_pro", plan_name="Pro", quantity=2)
    events.append(
        s.subscription_updated(
            pro, {"items": copy.deepcopy(active["items"]), "plan": copy.deepcopy(active["plan"]), "quantity": 1}
        )
    )
    proration = s.invoice(
        f"in_{customer}_3",
        1500,
        subscription=pro,
        billing_reason="subscription_update",
        payment_intent=f"pi_{customer}_4",
        charge=f"ch_{customer}_4",
    )
    events.append(s.invoice_event("invoice.paid", proration))
    failed = s.invoice(f"in_{customer}_4", 2000, subscription=pro, status="open", attempt_count=1)
    events.append(s.invoice_event("invoice.payment_failed", failed))
    zero = s.invoice(f"in_{customer}_5", 0, subscription=pro)
    events.append(s.invoice_event("invoice.paid", zero))
    refund_a = s.refund(f"re_{customer}_1", 1000, "usd", charge=f"ch_{customer}_1", payment_intent=f"pi_{customer}_1")
    refund_b = s.refund(f"re_{customer}_2", 500, "usd", charge=f"ch_{customer}_1", payment_intent=f"pi_{customer}_1")
    events += [
        s.refund_created(refund_a),
        s.charge_refunded(f"ch_{customer}_1", f"pi_{customer}_1", 4999, "usd", [refund_a]),
        s.refund_created(refund_b),
        s.charge_refunded(f"ch_{customer}_1", f"pi_{customer}_1", 4999, "usd", [refund_a, refund_b]),
    ]
    scheduled = {**pro, "cancel_at_period_end": True}
    events.append(s.subscription_updated(scheduled, {"cancel_at_period_end": False}))
    events.append(s.subscription_updated(pro, {"cancel_at_period_end": True}))
    events.append(s.subscription_updated(scheduled, {"cancel_at_period_end": False}))
    events.append(s.subscription_deleted(scheduled))
    events.append(s.checkout(f"cs_{customer}_3", 1200, "jpy", payment_intent=f"pi_{customer}_5"))
    events.append(s.checkout(f"cs_{customer}_4", 5120, "kwd", payment_intent=f"pi_{customer}_6"))
    events.append(s.checkout(f"cs_{customer}_5", 0, "usd", mode="setup"))
    if payment_intents:
        events += _payment_intent_events(s, customer)
    return events


def _payment_intent_events(s: Story, customer: str) -> list[dict[str, Any]]:
    """What `full_history` adds with `payment_intents`: the PaymentIntents behind its payments, and a direct one."""
    owned = [  # (PaymentIntent, amount, currency, its invoice or None for a Checkout's)
        (f"pi_{customer}_1", 4999, "usd", None),
        (f"pi_{customer}_2", 1000, "usd", f"in_{customer}_1"),
        (f"pi_{customer}_3", 1000, "usd", f"in_{customer}_2"),
        (f"pi_{customer}_4", 1500, "usd", f"in_{customer}_3"),
        (f"pi_{customer}_5", 1200, "jpy", None),
        (f"pi_{customer}_6", 5120, "kwd", None),
    ]
    events = []
    for intent, amount, currency, invoice in owned:
        events.append(s.payment_intent_succeeded(intent, amount, currency, invoice=invoice, metadata={}))
        if invoice and s.api_version >= BASIL:
            events.append(s.invoice_payment_paid(invoice, intent, amount, currency))
    direct = f"pi_{customer}_direct"
    events.append(s.payment_intent_succeeded(direct, 2500, "eur", charge=f"ch_{customer}_direct"))
    refund = s.refund(f"re_{customer}_direct", 2500, "eur", charge=f"ch_{customer}_direct", payment_intent=direct)
    events.append(s.refund_created(refund))
    return events
