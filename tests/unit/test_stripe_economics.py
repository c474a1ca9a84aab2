"""Stripe subscription economics over the real fixtures' shapes: MRR, MRR Change and MRR Movement of each event,
read from the event itself (`previous_attributes`), and an invoice's or Checkout session's tax and discounts.

Every expected figure is computed here from the fields the test sets (unit amount x quantity / months in the
interval), never taken from the code under test.
"""

from __future__ import annotations

import copy
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Fact
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.mixpanel.rendering import mixpanel_event
from revenue_webhooks.providers.stripe import StripeProvider

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe"
SETTINGS = from_environ({})


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def subscription(
    sub_id: str,
    *,
    unit_amount: int,
    currency: str,
    interval: str = "month",
    interval_count: int = 1,
    quantity: int = 1,
    status: str = "active",
    price_id: str = "price_basic",
) -> dict[str, Any]:
    """The fixture's subscription (API 2020-08-27) with one item of this price."""
    sub = copy.deepcopy(fixture("customer.subscription.created")["data"]["object"])
    item = sub["items"]["data"][0]
    price = item["price"]
    price.update(id=price_id, nickname=price_id, unit_amount=unit_amount, unit_amount_decimal=str(unit_amount))
    price.update(currency=currency.lower())
    price["recurring"].update(interval=interval, interval_count=interval_count)
    item["plan"].update(id=price_id, nickname=price_id, amount=unit_amount, amount_decimal=str(unit_amount))
    item["plan"].update(currency=currency.lower(), interval=interval, interval_count=interval_count)
    item["quantity"] = quantity
    sub.update(id=sub_id, status=status, plan=copy.deepcopy(item["plan"]), quantity=quantity)
    sub.update(customer="cus_econ", metadata={"user_id": "user-econ"}, cancel_at_period_end=False, cancel_at=None)
    return sub


class Events:
    """Numbered Stripe events, one minute apart."""

    def __init__(self) -> None:
        self.clock, self.n = 1_607_000_000, 0

    def event(self, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        self.n += 1
        self.clock += 60
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        return {"id": f"evt_econ_{self.n:03d}", "object": "event", "api_version": "2020-08-27", "created": self.clock,
                "data": data, "livemode": False, "type": kind}  # fmt: skip


def facts(event: dict[str, Any]) -> list[Fact]:
    queued = QueuedEvent("stripe", event["id"], event["type"], 0, json.dumps(event).encode())
    mapped = StripeProvider(SETTINGS).map(queued)
    assert all(isinstance(f, Fact) for f in mapped)
    return mapped  # type: ignore[return-value]


def props(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f.event, mixpanel_event(f, SETTINGS)["properties"]) for f in facts(event)]


def monthly(unit: int, quantity: int, months: int) -> int:
    """unit x quantity minor units every `months` months, per month, rounded half up."""
    return int((Decimal(unit * quantity) / months).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def mrr_of(event: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    return [(name, p.get(c.MRR), p.get(c.MRR_CHANGE), p.get(c.MRR_MOVEMENT)) for name, p in props(event)]


# ---- USD, monthly, quantities ------------------------------------------------------------------------------


def test_usd_monthly_seats_new_then_expansion_contraction_and_churn() -> None:
    e = Events()
    one = subscription("sub_usd", unit_amount=1500, currency="usd", quantity=1)
    three = subscription("sub_usd", unit_amount=1500, currency="usd", quantity=3)
    two = subscription("sub_usd", unit_amount=1500, currency="usd", quantity=2)
    history = [
        e.event("customer.subscription.created", one),
        e.event("customer.subscription.updated", three, {"items": one["items"], "quantity": 1}),
        e.event("customer.subscription.updated", two, {"items": three["items"], "quantity": 3}),
        e.event("customer.subscription.deleted", {**two, "status": "canceled", "ended_at": e.clock + 30}),
    ]
    assert mrr_of(history[0]) == [(c.SUBSCRIPTION_STARTED, 15, 15, "New")]  # $15 x 1
    assert mrr_of(history[1]) == [(c.SUBSCRIPTION_CHANGED, 45, 30, "Expansion")]  # $15 x 3
    assert mrr_of(history[2]) == [(c.SUBSCRIPTION_CHANGED, 30, -15, "Contraction")]  # $15 x 2
    assert mrr_of(history[3]) == [(c.SUBSCRIPTION_CANCELLED, 0, -30, "Churn")]
    changes = [p[c.MRR_CHANGE] for event in history for _, p in props(event)]
    assert sum(changes) == 0 == mrr_of(history[-1])[0][1], "the changes of a history add up to its final MRR"


# ---- EUR, yearly, plan changes ---------------------------------------------------------------------------


def test_eur_yearly_upgrade_and_downgrade_are_normalised_by_twelve() -> None:
    e = Events()
    basic = subscription("sub_eur", unit_amount=25000, currency="eur", interval="year", price_id="basic_yearly")
    pro = subscription("sub_eur", unit_amount=48000, currency="eur", interval="year", price_id="pro_yearly")
    lite = subscription("sub_eur", unit_amount=12000, currency="eur", interval="year", price_id="lite_yearly")
    created = e.event("customer.subscription.created", basic)
    upgrade = e.event("customer.subscription.updated", pro, {"items": basic["items"], "plan": basic["plan"]})
    downgrade = e.event("customer.subscription.updated", lite, {"items": pro["items"], "plan": pro["plan"]})
    basic_mrr, pro_mrr, lite_mrr = monthly(25000, 1, 12), monthly(48000, 1, 12), monthly(12000, 1, 12)
    assert (basic_mrr, pro_mrr, lite_mrr) == (2083, 4000, 1000)  # 250/12 = 20.83, 480/12 = 40, 120/12 = 10
    assert mrr_of(created) == [(c.SUBSCRIPTION_STARTED, 20.83, 20.83, "New")]
    ((name, p),) = props(upgrade)
    assert (name, p[c.FROM_PLAN], p[c.TO_PLAN], p[c.MRR], p[c.MRR_CHANGE], p[c.MRR_MOVEMENT], p[c.CURRENCY]) == (
        c.SUBSCRIPTION_CHANGED, "basic_yearly", "pro_yearly", 40, 19.17, "Expansion", "EUR"
    )  # fmt: skip
    assert mrr_of(downgrade) == [(c.SUBSCRIPTION_CHANGED, 10, -30, "Contraction")]


def test_interval_count_divides_the_price() -> None:
    quarterly = subscription("sub_q", unit_amount=9000, currency="usd", interval="month", interval_count=3)
    assert mrr_of(Events().event("customer.subscription.created", quarterly)) == [
        (c.SUBSCRIPTION_STARTED, 30, 30, "New")
    ]


# ---- JPY, a trial ---------------------------------------------------------------------------------------


def test_jpy_trial_counts_zero_until_it_converts_then_new() -> None:
    e = Events()
    trialing = {**subscription("sub_jpy", unit_amount=9800, currency="jpy", interval="year"), "status": "trialing"}
    trialing["trial_end"] = e.clock + 86_400 * 14
    active = {**trialing, "status": "active"}
    created = e.event("customer.subscription.created", trialing)
    ending = e.event("customer.subscription.trial_will_end", trialing)
    converted = e.event("customer.subscription.updated", active, {"status": "trialing"})
    assert mrr_of(created) == [(c.SUBSCRIPTION_STARTED, 0, 0, None)]
    assert mrr_of(ending) == [(c.TRIAL_ENDING, 0, 0, None)]
    assert mrr_of(converted) == [(c.TRIAL_CONVERTED, monthly(9800, 1, 12), 817, "New")]  # 9,800 / 12 = 816.67


def test_a_subscription_cancelled_during_its_trial_never_churns_money() -> None:
    e = Events()
    trialing = {**subscription("sub_t", unit_amount=2000, currency="usd"), "status": "trialing"}
    trialing["trial_end"] = e.clock + 86_400 * 14
    ended = {**trialing, "status": "canceled", "ended_at": e.clock + 600, "canceled_at": e.clock + 600}
    assert mrr_of(e.event("customer.subscription.deleted", ended)) == [(c.SUBSCRIPTION_CANCELLED, 0, 0, None)]


# ---- KWD, quarterly, scheduled cancellation, reactivation, end --------------------------------------------


def test_kwd_cancellation_scheduled_withdrawn_then_ended() -> None:
    e = Events()
    sub = subscription("sub_kwd", unit_amount=30000, currency="kwd", interval="month", interval_count=3)
    scheduled = {**sub, "cancel_at_period_end": True}
    history = [
        e.event("customer.subscription.created", sub),
        e.event("customer.subscription.updated", scheduled, {"cancel_at_period_end": False}),
        e.event("customer.subscription.updated", sub, {"cancel_at_period_end": True}),
        e.event("customer.subscription.updated", scheduled, {"cancel_at_period_end": False}),
        e.event("customer.subscription.deleted", {**scheduled, "status": "canceled", "ended_at": e.clock + 30}),
    ]
    kwd = monthly(30000, 1, 3) / 1000  # 30.000 KWD every 3 months = 10.000 KWD a month
    assert mrr_of(history[0]) == [(c.SUBSCRIPTION_STARTED, kwd, kwd, "New")]
    assert mrr_of(history[1]) == [(c.SUBSCRIPTION_CANCELLATION_SCHEDULED, kwd, 0, None)]  # still billed until it ends
    assert mrr_of(history[2]) == [(c.SUBSCRIPTION_REACTIVATED, kwd, 0, None)]
    assert mrr_of(history[4]) == [(c.SUBSCRIPTION_CANCELLED, 0, -kwd, "Churn")]


# ---- discounts, tax-inclusive prices, item kinds ----------------------------------------------------------


def coupon(percent: float | None = None, amount_off: int | None = None, duration: str = "forever") -> dict[str, Any]:
    return {"id": "di_1", "object": "discount", "coupon": {"id": "co_1", "percent_off": percent, "amount_off": amount_off,
            "currency": "usd" if amount_off else None, "duration": duration}}  # fmt: skip


def test_a_recurring_discount_added_is_a_contraction_and_its_end_an_expansion() -> None:
    e = Events()
    sub = subscription("sub_d", unit_amount=5000, currency="usd")
    discounted = {**sub, "discount": coupon(percent=20)}
    added = e.event("customer.subscription.updated", discounted, {"discount": None})
    ended = e.event("customer.subscription.updated", sub, {"discount": coupon(percent=20)})
    assert mrr_of(added) == [(c.SUBSCRIPTION_CHANGED, 40, -10, "Contraction")]  # $50 - 20%
    assert mrr_of(ended) == [(c.SUBSCRIPTION_CHANGED, 50, 10, "Expansion")]


@pytest.mark.parametrize(
    ("discount", "expected"),
    [
        (coupon(amount_off=1500, duration="repeating"), 35),  # $50 - $15 off each month
        (coupon(percent=100, duration="once"), 50),  # one invoice only: not recurring
    ],
)
def test_discount_kinds(discount: dict[str, Any], expected: float) -> None:
    sub = {**subscription("sub_k", unit_amount=5000, currency="usd"), "discount": discount}
    assert mrr_of(Events().event("customer.subscription.created", sub))[0][1] == expected


def test_a_discount_named_only_by_id_leaves_mrr_unknown_rather_than_wrong() -> None:
    sub = {**subscription("sub_id", unit_amount=5000, currency="usd"), "discounts": ["di_unexpanded"]}
    ((name, p),) = props(Events().event("customer.subscription.created", sub))
    assert name == c.SUBSCRIPTION_STARTED and c.MRR not in p and c.MRR_CHANGE not in p


def test_a_tax_inclusive_price_counts_without_its_inclusive_rate() -> None:
    sub = subscription("sub_vat", unit_amount=1200, currency="eur")
    sub["items"]["data"][0]["price"]["tax_behavior"] = "inclusive"
    sub["default_tax_rates"] = [{"id": "txr_1", "inclusive": True, "percentage": 20.0}]
    assert mrr_of(Events().event("customer.subscription.created", sub))[0][1] == 10  # 12.00 / 1.20


def test_metered_items_are_left_out_and_tiered_prices_make_mrr_unknown() -> None:
    sub = subscription("sub_m", unit_amount=1000, currency="usd")
    metered = copy.deepcopy(sub["items"]["data"][0])
    metered["price"]["recurring"]["usage_type"] = "metered"
    metered["price"]["unit_amount"], metered["price"]["unit_amount_decimal"] = 5, "5"
    sub["items"]["data"].append(metered)
    assert mrr_of(Events().event("customer.subscription.created", sub))[0][1] == 10
    tiered = subscription("sub_tier", unit_amount=1000, currency="usd")
    tiered["items"]["data"][0]["price"]["billing_scheme"] = "tiered"
    assert c.MRR not in props(Events().event("customer.subscription.created", tiered))[0][1]


def test_a_subscription_before_items_is_read_from_its_plan_and_quantity() -> None:
    sub = subscription("sub_old", unit_amount=700, currency="usd", quantity=4)
    del sub["items"]
    assert mrr_of(Events().event("customer.subscription.created", sub))[0][1] == 28  # $7 x 4


def test_a_status_change_alone_moves_mrr_on_a_subscription_changed() -> None:
    e = Events()
    sub = subscription("sub_p", unit_amount=2500, currency="usd")
    paused = {**sub, "status": "paused"}
    ((name, p),) = props(e.event("customer.subscription.updated", paused, {"status": "active"}))
    assert (name, p[c.STATUS], p[c.MRR], p[c.MRR_CHANGE], p[c.MRR_MOVEMENT]) == (
        c.SUBSCRIPTION_CHANGED, "paused", 0, -25, "Churn"
    )  # fmt: skip


def test_one_webhook_carries_its_change_once() -> None:
    """Activated and upgraded in one update: the Started fact carries the change, the Changed fact none."""
    e = Events()
    incomplete = {**subscription("sub_two", unit_amount=1000, currency="usd"), "status": "incomplete"}
    active_pro = subscription("sub_two", unit_amount=3000, currency="usd", price_id="pro")
    update = e.event(
        "customer.subscription.updated", active_pro, {"status": "incomplete", "items": incomplete["items"]}
    )
    assert mrr_of(update) == [(c.SUBSCRIPTION_STARTED, 30, 30, "New"), (c.SUBSCRIPTION_CHANGED, 30, 0, None)]


# ---- gross and net ----------------------------------------------------------------------------------


def test_an_invoice_states_its_tax_and_discounts() -> None:
    invoice = fixture("invoice.paid")
    obj = invoice["data"]["object"]
    obj.update(amount_paid=11400, total=11400, subtotal=10000, tax=1900, currency="eur")
    obj["total_discount_amounts"] = [{"amount": 500, "discount": "di_1"}]
    ((_, p),) = props(invoice)
    # paid 114.00 EUR, of which 19.00 tax: net 95.00; discounts took 5.00 off
    assert (p[c.REVENUE], p[c.TAX], p[c.DISCOUNT], p[c.NET_REVENUE]) == (114, 19, 5, 95)


def test_a_basil_invoice_states_tax_in_total_taxes() -> None:
    invoice = fixture("invoice.paid")
    obj = invoice["data"]["object"]
    obj.pop("tax")
    obj.update(amount_paid=1210, total=1210, currency="usd", total_taxes=[{"amount": 110}, {"amount": 100}])
    ((_, p),) = props(invoice)
    assert (p[c.TAX], p[c.NET_REVENUE]) == (2.1, 10)


def test_an_invoice_paid_in_part_by_credit_states_no_tax() -> None:
    invoice = fixture("invoice.paid")
    invoice["data"]["object"].update(amount_paid=1500, total=2000, tax=200)
    ((_, p),) = props(invoice)
    assert c.TAX not in p and c.NET_REVENUE not in p


def test_a_checkout_session_states_tax_and_discount_in_yen() -> None:
    session = fixture("checkout.session.completed.payment_mode")
    session["data"]["object"].update(amount_total=11000, currency="jpy")
    session["data"]["object"]["total_details"] = {"amount_tax": 1000, "amount_discount": 500, "amount_shipping": 0}
    ((_, p),) = props(session)
    assert (p[c.REVENUE], p[c.TAX], p[c.DISCOUNT], p[c.NET_REVENUE], p[c.CURRENCY]) == (11000, 1000, 500, 10000, "JPY")
