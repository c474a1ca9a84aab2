"""Stripe objects rendered from real payloads, in the shape of the API version asked for.

A record is what the account knows about an object: its public fields in the current API shape plus
private links (keys starting with `_`). Rendering starts from a real Stripe payload of that type, resets the
placeholder values of Stripe's published examples to those of a plain card payment, lays the record over it,
and, for versions before a shape change (see `versions`), puts back what older versions carried, with the
values of the real payloads of that time.

- Current shape (2026): Stripe's own example resources, `tests/fixtures/stripe-openapi/fixtures3.*.json`.
- Legacy shape (2020-08-27): the stripe-ruby-mock payloads in `tests/fixtures/stripe/`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from ..template import ROOT
from .versions import BASIL, CHARGES_LIST_REMOVED, at_least

FIXTURES = ROOT / "tests" / "fixtures"
CURRENT_EXAMPLES = FIXTURES / "stripe-openapi" / "fixtures3.2026-07-29.extract.json"
LEGACY_PAYLOADS = FIXTURES / "stripe"

Record = dict[str, Any]
Lookup = Callable[[str], Record | None]


@cache
def _current_examples() -> dict[str, str]:
    # Kept as JSON text: parsing a copy is several times faster than deep-copying one, and every render copies.
    resources = json.loads(CURRENT_EXAMPLES.read_text(encoding="utf-8"))["resources"]
    return {kind: json.dumps(obj) for kind, obj in resources.items()}


def current_example(kind: str) -> dict[str, Any]:
    """A copy of Stripe's published example of `kind` (e.g. "invoice"), in the current API shape."""
    return json.loads(_current_examples()[kind])


@cache
def _legacy_payload(name: str) -> str:
    return json.dumps(json.loads((LEGACY_PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))["data"]["object"])


def legacy_payload(name: str) -> dict[str, Any]:
    """A copy of `data.object` of the real 2020-08-27 webhook `tests/fixtures/stripe/<name>.json`."""
    return json.loads(_legacy_payload(name))


def public(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if not key.startswith("_")}


# ----------------------------------------------------------------------------------------------- per type

# Stripe's examples fill optional parts with placeholders ("currency": "currency", a discount on every
# customer); a plain card payment has none of them.
_RESETS: dict[str, dict[str, Any]] = {
    "customer": {
        "address": None,
        "currency": None,
        "discount": None,
        "shipping": None,
        "test_clock": None,
        "balance": 0,
        "delinquent": False,
        "preferred_locales": [],
    },
    "payment_intent": {
        "amount_capturable": 0,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "last_payment_error": None,
        "next_action": None,
        "processing": None,
        "shipping": None,
        "transfer_data": None,
        "managed_payments": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "capture_method": "automatic_async",
    },
    "charge": {
        "captured": True,
        "paid": True,
        "status": "succeeded",
        "source": None,
        "transfer_data": None,
        "shipping": None,
        "receipt_url": None,
        "calculated_statement_descriptor": "REVENUE WEBHOOKS",
    },
    "refund": {"customer_account": None},
    "checkout.session": {
        "after_expiration": None,
        "adaptive_pricing": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "currency_conversion": None,
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer_creation": "if_required",
        "discounts": [],
        "invoice_creation": None,
        "managed_payments": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "permissions": None,
        "saved_payment_method_options": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": None,
        "wallet_options": None,
    },
    "subscription": {
        "billing_cycle_anchor_config": None,
        "billing_schedules": [],
        "billing_thresholds": None,
        "managed_payments": None,
        "next_pending_invoice_item_invoice": None,
        "pause_collection": None,
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_start": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
    },
    "invoice": {
        "amount_overpaid": 0,
        "amount_shipping": 0,
        "automatically_finalizes_at": None,
        "customer_address": None,
        "customer_shipping": None,
        "due_date": None,
        "ending_balance": 0,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "last_finalization_error": None,
        "latest_revision": None,
        "next_payment_attempt": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "total_discount_amounts": [],
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
    },
}

# What versions before 2025-03-31.basil carry that the current shape does not, beyond the links.
_LEGACY_INVOICE_FIELDS = ("application_fee_amount", "discount", "paid_out_of_band", "quote", "tax", "total_tax_amounts")


def _base(kind: str) -> dict[str, Any]:
    obj = current_example(kind)
    obj.update(copy.deepcopy(_RESETS.get(kind, {})))
    return obj


def price(record: Mapping[str, Any], livemode: bool) -> dict[str, Any]:
    """A recurring monthly price: `record` has id, product, unit_amount, currency, nickname, created."""
    base = current_example("subscription")["items"]["data"][0]["price"]
    base.update(
        id=record["id"],
        product=record["product"],
        unit_amount=record["unit_amount"],
        unit_amount_decimal=str(record["unit_amount"]),
        currency=record["currency"],
        nickname=record.get("nickname"),
        created=record["created"],
        livemode=livemode,
        custom_unit_amount=None,
        transform_quantity=None,
    )
    return base


def plan(record: Mapping[str, Any], livemode: bool) -> dict[str, Any]:
    """The legacy `plan` view of the same price (Stripe still renders it on subscription items)."""
    base = current_example("subscription")["items"]["data"][0]["plan"]
    base.update(
        id=record["id"],
        product=record["product"],
        amount=record["unit_amount"],
        amount_decimal=str(record["unit_amount"]),
        currency=record["currency"],
        nickname=record.get("nickname"),
        created=record["created"],
        interval="month",
        interval_count=1,
        billing_scheme="per_unit",
        livemode=livemode,
        metadata={},
        transform_usage=None,
    )
    return base


def _customer(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    obj = _base("customer")
    obj.update(public(record))
    obj["invoice_prefix"] = record["id"][-8:].upper()
    return obj


def _payment_intent(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    obj = _base("payment_intent")
    obj.update(public(record))
    obj["client_secret"] = f"{record['id']}_secret_{record['id'][-12:]}"
    if not at_least(version, BASIL):
        obj["invoice"] = record.get("_invoice")
    if not at_least(version, CHARGES_LIST_REMOVED):
        charge = lookup(record["latest_charge"]) if record.get("latest_charge") else None
        data = [render(charge, version, lookup)] if charge else []
        url = f"/v1/charges?payment_intent={record['id']}"
        obj["charges"] = {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}
    return obj


def _charge(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    obj = _base("charge")
    obj.update(public(record))
    card = obj["payment_method_details"]["card"]
    card["overcapture"]["maximum_amount_capturable"] = record["amount"]
    card["amount_authorized"] = record["amount"]
    card["installments"] = None
    card["wallet"] = None
    obj["outcome"].update(
        network_status="approved_by_network", seller_message="Payment complete.", type="authorized", reason=None
    )
    obj["billing_details"].update(email=record.get("_email"), name=record.get("_name"))
    refunds = [render(r, version, lookup) for r in map(lookup, record.get("_refunds", [])) if r is not None]
    refunds.sort(key=lambda r: r["created"], reverse=True)
    obj["refunds"] = {
        "object": "list",
        "data": refunds,
        "has_more": False,
        "total_count": len(refunds),
        "url": f"/v1/charges/{record['id']}/refunds",
    }
    if not at_least(version, BASIL):
        obj["invoice"] = record.get("_invoice")
    return obj


def _balance_transaction(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    obj = _base("balance_transaction")
    obj.update(public(record))
    return obj


def _refund(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    obj = _base("refund")
    obj.update(public(record))
    return obj


def _checkout_session(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    obj = _base("checkout.session")
    obj.update(public(record))
    details = obj["customer_details"]
    details.update(email=record.get("_email"), name=record.get("_name"), address=None, tax_ids=[])
    return obj


def _subscription_item(item: Mapping[str, Any], subscription: Record, version: str) -> dict[str, Any]:
    obj = current_example("subscription")["items"]["data"][0]
    livemode = subscription["livemode"]
    obj.update(
        id=item["id"],
        created=item["created"],
        quantity=item["quantity"],
        subscription=subscription["id"],
        price=price(item["price"], livemode),
        plan=plan(item["price"], livemode),
        billing_thresholds=None,
        metadata={},
        discounts=[],
        tax_rates=[],
        current_period_start=item["current_period_start"],
        current_period_end=item["current_period_end"],
    )
    if not at_least(version, BASIL):
        del obj["current_period_start"], obj["current_period_end"]
    return obj


def _subscription(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    obj = _base("subscription")
    obj.update(public(record))
    items = [_subscription_item(item, record, version) for item in record["items"]]
    obj["items"] = {
        "object": "list",
        "data": items,
        "has_more": False,
        "total_count": len(items),
        "url": f"/v1/subscription_items?subscription={record['id']}",
    }
    obj["cancellation_details"] = copy.deepcopy(record.get("cancellation_details")) or {
        "comment": None,
        "feedback": None,
        "reason": None,
    }
    if not at_least(version, BASIL):
        first = record["items"][0]
        obj.update(
            current_period_start=first["current_period_start"],
            current_period_end=first["current_period_end"],
            plan=plan(first["price"], record["livemode"]),
            quantity=first["quantity"],
            discount=None,
        )
    return obj


def _invoice_line(line: Mapping[str, Any], invoice: Record, version: str) -> dict[str, Any]:
    livemode = invoice["livemode"]
    common = {
        "id": line["id"],
        "amount": line["amount"],
        "currency": invoice["currency"],
        "description": line["description"],
        "livemode": livemode,
        "metadata": dict(line.get("metadata") or {}),
        "period": dict(line["period"]),
        "quantity": line["quantity"],
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
    }
    subscription, item = invoice.get("_subscription"), line.get("subscription_item")
    if at_least(version, BASIL):
        obj = current_example("line_item")
        obj.update(common)
        obj.update(
            invoice=invoice["id"],
            subtotal=line["amount"],
            pretax_credit_amounts=[],
            taxes=[],
            quantity_decimal=str(line["quantity"]),
            subscription=subscription,
            pricing={
                "type": "price_details",
                "price_details": {"price": line["price"]["id"], "product": line["price"]["product"]},
                "unit_amount_decimal": str(line["price"]["unit_amount"]),
            },
            parent={
                "type": "subscription_item_details",
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": line["proration"],
                    "proration_details": {"credited_items": None},
                    "subscription": subscription,
                    "subscription_item": item,
                },
            }
            if subscription
            else None,
        )
        return obj
    obj = legacy_payload("invoice.paid")["lines"]["data"][0]
    obj.pop("invoice_item", None)  # a subscription line names no invoice item (the field is not nullable)
    obj.update(common)
    obj.update(
        price=price(line["price"], livemode),
        plan=plan(line["price"], livemode),
        proration=line["proration"],
        subscription=subscription,
        subscription_item=item,
        type="subscription" if subscription else "invoiceitem",
        tax_amounts=[],
        tax_rates=[],
    )
    return obj


def _invoice(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    obj = _base("invoice")
    obj.update(public(record))
    lines = [_invoice_line(line, record, version) for line in record["lines"]]
    obj["lines"] = {
        "object": "list",
        "data": lines,
        "has_more": False,
        "total_count": len(lines),
        "url": f"/v1/invoices/{record['id']}/lines",
    }
    total = record["total"]
    obj.update(
        subtotal_excluding_tax=total,
        total_excluding_tax=total,
        effective_at=record["status_transitions"]["finalized_at"],
    )
    subscription = record.get("_subscription")
    if at_least(version, BASIL):
        obj["parent"] = (
            {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(record.get("_subscription_metadata") or {}),
                    "subscription": subscription,
                },
            }
            if subscription
            else None
        )
        obj.pop("subscription", None)  # Stripe's 2026 example still lists it; the API version no longer has it
        return obj
    legacy = legacy_payload("invoice.paid")
    obj.pop("parent", None)
    obj.update({name: copy.deepcopy(legacy[name]) for name in _LEGACY_INVOICE_FIELDS if name in legacy})
    obj.update(
        subscription=subscription,
        charge=record.get("_charge"),
        payment_intent=record.get("_payment_intent"),
        paid=record["status"] == "paid",
    )
    return obj


def invoice_payments(record: Record) -> dict[str, Any]:
    """The invoice's `payments` list, which the API includes only when asked (`expand[]=payments`)."""
    data = []
    if record.get("_payment_intent"):
        obj = current_example("invoice_payment")
        paid = record["status"] == "paid"
        obj.update(
            id=record.get("_invoice_payment") or "inpay_" + record["id"][3:],
            amount_paid=record["amount_paid"] if paid else None,
            amount_requested=record["amount_due"],
            created=record["created"],
            currency=record["currency"],
            invoice=record["id"],
            is_default=True,
            livemode=record["livemode"],
            payment={"type": "payment_intent", "payment_intent": record["_payment_intent"]},
            status="paid" if paid else "open",
            status_transitions={"canceled_at": None, "paid_at": record["status_transitions"].get("paid_at")},
        )
        data.append(obj)
    return {"object": "list", "data": data, "has_more": False, "url": f"/v1/invoice_payments?invoice={record['id']}"}


def _invoice_payment(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    """An invoice's payment (basil on) as `invoice_payment.paid` carries it: its invoice's `payments` entry."""
    invoice = lookup(record["_invoice"])
    assert invoice is not None, record["_invoice"]
    payment: dict[str, Any] = invoice_payments(invoice)["data"][0]
    return payment


RENDERERS: dict[str, Callable[[Record, str, Lookup], dict[str, Any]]] = {
    "balance_transaction": _balance_transaction,
    "charge": _charge,
    "checkout.session": _checkout_session,
    "customer": _customer,
    "invoice": _invoice,
    "invoice_payment": _invoice_payment,
    "payment_intent": _payment_intent,
    "refund": _refund,
    "subscription": _subscription,
}


def render(record: Record, version: str, lookup: Lookup) -> dict[str, Any]:
    """`record` as the Stripe API renders it in `version` (`lookup` finds the records it embeds).

    The answer shares nothing with `record`: callers may change either.
    """
    return RENDERERS[record["object"]](json.loads(json.dumps(record)), version, lookup)
