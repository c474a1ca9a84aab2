"""Subscription economics of Paddle, RevenueCat, Lemon Squeezy, Shopify and Standard Webhooks senders, over their
published samples (tests/fixtures/<provider>): MRR and its movement, tax, discount, net, fee, settlement and the
providers' own conversions. Each expected value is computed here from the payload's fields.
"""

from __future__ import annotations

import copy
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from revenue_webhooks import providers
from revenue_webhooks.config import Settings, from_environ
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Fact
from revenue_webhooks.domain.fx import choose, day_of
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.mixpanel.rendering import mixpanel_event

USD = from_environ({"REPORTING_CURRENCY": "USD"})


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def mapped(route: str, body: dict[str, Any], event_type: str, settings: Settings = USD) -> list[Fact]:
    provider = providers.get_provider(route, settings)
    assert provider is not None
    raw = json.dumps(body).encode()
    return [
        f for f in provider.map(QueuedEvent(route, "evt", event_type, 1_700_000_000_000, raw)) if isinstance(f, Fact)
    ]


def rendered(facts: list[Fact], settings: Settings = USD) -> list[tuple[str, dict[str, Any]]]:
    """Each fact's Mixpanel properties, with the provider's own conversion (if any) as the rate: the rest of the
    rate logic is the forwarder's (tests/unit/service/test_reporting.py)."""
    out = []
    for fact in facts:
        if fact.currency and settings.reporting_currency:
            from dataclasses import replace

            rate = choose(fact.currency, settings.reporting_currency, day_of(fact.time), fact.conversions)
            fact = replace(fact, rate=rate)
        properties = mixpanel_event(fact, settings)["properties"]
        documented = c.properties_of(fact.event, settings.reporting_currency)
        assert set(properties) <= documented, f"{fact.event} emits undocumented {set(properties) - documented}"
        out.append((fact.event, properties))
    return out


def economics(props: dict[str, Any]) -> tuple[Any, Any, Any]:
    return props.get(c.MRR), props.get(c.MRR_CHANGE), props.get(c.MRR_MOVEMENT)


# ---- Paddle ---------------------------------------------------------------------------------------------


@pytest.fixture
def paddle(fixture_json):
    def make(event_type: str, data: str, **entity: Any) -> dict[str, Any]:
        body = copy.deepcopy(fixture_json(f"paddle/data_{data}.json"))
        body.update(entity)
        return {"event_id": f"evt_{event_type}", "event_type": event_type, "occurred_at": "2024-04-12T10:18:49Z",
                "data": body}  # fmt: skip

    return make


def paddle_mrr(sub: dict[str, Any]) -> int:
    """The sample's recurring items by hand: unit price x quantity, monthly here."""
    return sum(int(i["price"]["unit_price"]["amount"]) * i["quantity"] for i in sub["items"])


def test_paddle_subscription_created_is_new_mrr_of_its_items(paddle, fixture_json):
    sub = fixture_json("paddle/data_subscription.created.json")
    assert paddle_mrr(sub) == 3000 * 10 + 10000 * 1  # 10 seats at 30.00 and one add-on at 100.00, monthly
    ((name, p),) = rendered(
        mapped("paddle", paddle("subscription.created", "subscription.created"), "subscription.created")
    )
    # The sample's discount ends at next_billed_at: it does not recur, so it is not in MRR.
    assert (name, *economics(p), p[c.CURRENCY]) == (c.SUBSCRIPTION_STARTED, 400, 400, "New", "USD")


def test_paddle_trial_is_zero_then_activation_converts_it(paddle, fixture_json):
    sub = fixture_json("paddle/data_subscription.created.json")
    items = copy.deepcopy(sub["items"])
    for item in items:
        item["trial_dates"] = {"starts_at": "2024-04-12T10:18:47Z", "ends_at": "2024-04-26T10:18:47Z"}
    trial = paddle("subscription.created", "subscription.created", status="trialing", items=items)
    activated = paddle("subscription.activated", "subscription.created", status="active", items=items,
                       first_billed_at="2024-04-26T10:18:48Z")  # fmt: skip
    assert [economics(p) for _, p in rendered(mapped("paddle", trial, "subscription.created"))] == [(0, 0, None)]
    ((name, p),) = rendered(mapped("paddle", activated, "subscription.activated"))
    assert (name, *economics(p)) == (c.TRIAL_CONVERTED, paddle_mrr(sub) / 100, paddle_mrr(sub) / 100, "New")
    plain = paddle("subscription.activated", "subscription.created")  # no trial dates: the creation counted it
    assert mapped("paddle", plain, "subscription.activated") == []


def test_paddle_pause_churns_and_resume_reactivates(paddle, fixture_json):
    paying = paddle_mrr(fixture_json("paddle/data_subscription.created.json")) / 100
    paused = paddle("subscription.paused", "subscription.created", status="paused", paused_at="2024-05-01T00:00:00Z")
    resumed = paddle("subscription.resumed", "subscription.created", status="active", updated_at="2024-06-01T00:00:00Z")
    ((name, p),) = rendered(mapped("paddle", paused, "subscription.paused"))
    assert (name, p[c.STATUS], *economics(p)) == (c.SUBSCRIPTION_CHANGED, "paused", 0, -paying, "Churn")
    ((name, p),) = rendered(mapped("paddle", resumed, "subscription.resumed"))
    assert (name, p[c.STATUS], *economics(p)) == (c.SUBSCRIPTION_CHANGED, "active", paying, paying, "Reactivation")


def test_paddle_cancellation_churns_unless_it_was_paused(paddle, fixture_json):
    paying = paddle_mrr(fixture_json("paddle/data_subscription.canceled.json")) / 100
    canceled = paddle("subscription.canceled", "subscription.canceled")
    ((name, p),) = rendered(mapped("paddle", canceled, "subscription.canceled"))
    assert (name, *economics(p)) == (c.SUBSCRIPTION_CANCELLED, 0, -paying, "Churn")
    after_pause = paddle("subscription.canceled", "subscription.canceled", paused_at="2024-04-01T00:00:00Z")
    assert economics(rendered(mapped("paddle", after_pause, "subscription.canceled"))[0][1]) == (0, 0, None)


def test_paddle_eur_yearly_plan_is_normalised(paddle, fixture_json):
    sub = fixture_json("paddle/data_subscription.created.json")
    item = copy.deepcopy(sub["items"][0])
    item["price"]["billing_cycle"] = {"interval": "year", "frequency": 1}
    item["price"]["unit_price"] = {"amount": "119900", "currency_code": "EUR"}
    item["quantity"] = 2
    body = paddle("subscription.created", "subscription.created", items=[item], currency_code="EUR", discount=None)
    expected = half_up(Decimal(119900 * 2) / 12)  # 2 x 1,199.00 EUR a year = 199.83 EUR a month
    ((_, p),) = rendered(mapped("paddle", body, "subscription.created"))
    assert economics(p) == (expected / 100, expected / 100, "New") and p[c.CURRENCY] == "EUR"


def test_paddle_recurring_discount_of_unstated_amount_leaves_mrr_unknown(paddle):
    body = paddle(
        "subscription.created", "subscription.created", discount={"id": "dsc_1", "starts_at": None, "ends_at": None}
    )
    ((_, p),) = rendered(mapped("paddle", body, "subscription.created"))
    assert c.MRR not in p


def test_paddle_updates_carry_mrr_but_no_change(paddle, fixture_json):
    change = {"action": "cancel", "effective_at": "2024-05-12T10:18:47Z", "resume_at": None}
    body = paddle("subscription.updated", "subscription.created", scheduled_change=change)
    ((name, p),) = rendered(mapped("paddle", body, "subscription.updated"))
    assert (name, *economics(p)) == (c.SUBSCRIPTION_CANCELLATION_SCHEDULED, 400, None, None)


def test_paddle_transaction_states_tax_discount_fee_and_payout(paddle, fixture_json):
    totals = fixture_json("paddle/data_transaction.completed.json")["details"]["totals"]
    payout = fixture_json("paddle/data_transaction.completed.json")["details"]["payout_totals"]
    ((name, p),) = rendered(
        mapped("paddle", paddle("transaction.completed", "transaction.completed"), "transaction.completed")
    )
    assert name == c.PURCHASE_COMPLETED
    assert p[c.REVENUE] == int(totals["grand_total"]) / 100 == 652.15
    assert p[c.TAX] == int(totals["tax"]) / 100 and p[c.DISCOUNT] == 0 and p[c.FEE] == int(totals["fee"]) / 100
    assert p[c.NET_REVENUE] == (int(totals["grand_total"]) - int(totals["tax"])) / 100 == 599
    assert (p[c.SETTLEMENT_AMOUNT], p[c.SETTLEMENT_CURRENCY]) == (int(payout["earnings"]) / 100, "USD")
    assert p["Revenue (USD)"] == p[c.REVENUE] and c.EXCHANGE_RATE not in p  # USD already: nothing converted


def test_paddle_kwd_transaction_converts_at_paddles_payout_totals(paddle, fixture_json):
    txn = fixture_json("paddle/data_transaction.completed.json")
    details = copy.deepcopy(txn["details"])
    details["totals"].update(currency_code="KWD", grand_total="20480", total="20480", tax="2560", fee="1040",
                             discount="0", earnings="16880")  # fmt: skip
    details["payout_totals"].update(currency_code="USD", grand_total="6732", total="6732", earnings="5549")
    body = paddle("transaction.completed", "transaction.completed", details=details, currency_code="KWD")
    ((_, p),) = rendered(mapped("paddle", body, "transaction.completed"))
    assert (p[c.REVENUE], p[c.CURRENCY], p[c.TAX], p[c.NET_REVENUE]) == (20.48, "KWD", 2.56, 17.92)
    assert p["Revenue (USD)"] == 67.32, "Paddle's own converted grand total, exactly"
    rate = Decimal("67.32") / Decimal("20.480")
    assert p["Tax (USD)"] == half_up(Decimal("2.560") * rate * 100) / 100
    assert p["Net Revenue (USD)"] == half_up(Decimal("17.920") * rate * 100) / 100
    assert p[c.EXCHANGE_RATE_SOURCE] == "paddle_payout_totals" and p[c.EXCHANGE_RATE_DATE] == "2024-04-12"
    assert (p[c.SETTLEMENT_AMOUNT], p[c.SETTLEMENT_CURRENCY]) == (55.49, "USD")


def test_paddle_renewal_carries_the_billed_recurring_items_as_mrr(paddle, fixture_json):
    txn = fixture_json("paddle/data_transaction.completed.json")
    recurring = sum(
        int(i["price"]["unit_price"]["amount"]) * i["quantity"] for i in txn["items"] if i["price"]["billing_cycle"]
    )
    body = paddle("transaction.completed", "transaction.completed", origin="subscription_recurring")
    renewed = [
        p for name, p in rendered(mapped("paddle", body, "transaction.completed")) if name == c.SUBSCRIPTION_RENEWED
    ]
    assert [economics(p) for p in renewed] == [(recurring / 100, None, None)]  # the one-time add-on left out


def test_paddle_approved_refund_states_its_tax_fee_and_earnings(paddle, fixture_json):
    adjustment = fixture_json("paddle/data_adjustment.created.json")
    ((name, p),) = rendered(
        mapped("paddle", paddle("adjustment.created", "adjustment.created", status="approved"), "adjustment.created")
    )
    totals = adjustment["totals"]
    assert (name, p[c.REVENUE], p[c.TAX], p[c.FEE]) == (c.REFUND_ISSUED, 1.0, int(totals["tax"]) / 100, 0.05)
    assert p[c.NET_REVENUE] == (int(totals["total"]) - int(totals["tax"])) / 100
    assert p[c.SETTLEMENT_AMOUNT] == int(adjustment["payout_totals"]["earnings"]) / 100


# ---- RevenueCat ------------------------------------------------------------------------------------------


def rc(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return rendered(mapped("revenuecat", body, body["event"]["type"]))


def test_revenuecat_weekly_purchase_is_new_mrr_of_its_period(revenuecat_sample):
    sample = revenuecat_sample(1)["event"]
    assert (sample["expiration_at_ms"] - sample["purchased_at_ms"]) == 7 * 86_400_000  # a weekly product
    by_event = dict(rc(revenuecat_sample(1)))
    weekly = half_up(Decimal(499) * 52 / 12)  # 4.99 USD a week, tax 0: 21.62 a month
    assert economics(by_event[c.SUBSCRIPTION_STARTED]) == (weekly / 100, weekly / 100, "New")
    purchase = by_event[c.PURCHASE_COMPLETED]
    assert (purchase[c.TAX], purchase[c.NET_REVENUE]) == (0, 4.99)
    assert purchase[c.FEE] == half_up(Decimal(499) * Decimal("0.3")) / 100  # RevenueCat's 30% commission estimate


def test_revenuecat_yearly_and_yen_periods(revenuecat_sample):
    year_ms = 365 * 86_400_000
    yearly = revenuecat_sample(
        1, price_in_purchased_currency=59.99, price=59.99, expiration_at_ms=1658726374000 + year_ms
    )
    assert economics(dict(rc(yearly))[c.SUBSCRIPTION_STARTED])[0] == half_up(Decimal(5999) / 12) / 100  # 5.00
    yen = revenuecat_sample(1, currency="JPY", price_in_purchased_currency=1200, price=8.71,
                     expiration_at_ms=1658726374000 + 30 * 86_400_000)  # fmt: skip
    started = dict(rc(yen))[c.SUBSCRIPTION_STARTED]
    assert (economics(started), started[c.CURRENCY]) == ((1200, 1200, "New"), "JPY")
    assert dict(rc(yen))[c.PURCHASE_COMPLETED]["Revenue (USD)"] == 8.71, "RevenueCat's own USD price"


def test_revenuecat_estimated_tax_leaves_mrr(revenuecat_sample):
    taxed = revenuecat_sample(1, tax_percentage=0.2)
    expected = half_up((Decimal(499) - half_up(Decimal(499) * Decimal("0.2"))) * 52 / 12)  # 4.99 less 1.00 tax
    assert economics(dict(rc(taxed))[c.SUBSCRIPTION_STARTED])[0] == expected / 100


def test_revenuecat_trial_is_zero_until_its_renewal_converts_it(revenuecat_sample):
    assert economics(dict(rc(revenuecat_sample(11)))[c.SUBSCRIPTION_STARTED]) == (0, 0, None)  # PHP trial at price 0
    conversion = dict(rc(revenuecat_sample(2, is_trial_conversion=True)))
    weekly_eur = half_up(Decimal(799) * 52 / 12)  # 7.99 EUR a week
    assert economics(conversion[c.TRIAL_CONVERTED]) == (weekly_eur / 100, weekly_eur / 100, "New")
    assert economics(conversion[c.SUBSCRIPTION_RENEWED]) == (weekly_eur / 100, None, None)


def test_revenuecat_renewal_has_mrr_without_a_change_and_its_usd_price(revenuecat_sample):
    sample = revenuecat_sample(2)["event"]
    renewal = dict(rc(revenuecat_sample(2)))
    assert economics(renewal[c.SUBSCRIPTION_RENEWED]) == (half_up(Decimal(799) * 52 / 12) / 100, None, None)
    purchase = renewal[c.PURCHASE_COMPLETED]
    assert (purchase[c.REVENUE], purchase[c.CURRENCY], purchase["Revenue (USD)"]) == (7.99, "EUR", sample["price"])
    assert purchase[c.EXCHANGE_RATE_SOURCE] == "revenuecat_price_usd"


def test_revenuecat_expiration_is_zero_mrr_with_no_claimed_change(revenuecat_sample):
    ((name, p),) = rc(revenuecat_sample(13))
    assert (name, *economics(p)) == (c.SUBSCRIPTION_CANCELLED, 0, None, None)


def test_revenuecat_refund_states_estimated_tax_and_commission(revenuecat_sample):
    event = revenuecat_sample(9)["event"]
    ((name, p),) = rc(revenuecat_sample(9))
    tax = half_up(Decimal(999) * Decimal(str(event["tax_percentage"])))  # 9.99 x 11.09% = 1.11
    assert (name, p[c.REVENUE], p[c.TAX], p[c.NET_REVENUE]) == (c.REFUND_ISSUED, 9.99, tax / 100, (999 - tax) / 100)
    assert p[c.FEE] == half_up(Decimal(999) * Decimal("0.3")) / 100


# ---- Lemon Squeezy ------------------------------------------------------------------------------------


def test_lemonsqueezy_order_states_tax_and_discount(fixture_json):
    order = fixture_json("lemonsqueezy/order_created.json")
    a = order["data"]["attributes"]
    ((_, p),) = rendered(mapped("lemonsqueezy", order, "order_created"))
    assert (p[c.REVENUE], p[c.TAX], p[c.DISCOUNT], p[c.NET_REVENUE]) == (
        a["total"] / 100, a["tax"] / 100, a["discount_total"] / 100, (a["total"] - a["tax"]) / 100
    )  # fmt: skip


def test_lemonsqueezy_eur_order_converts_at_its_own_usd_amounts(fixture_json):
    order = fixture_json("lemonsqueezy/order_created.json")
    order["data"]["attributes"].update(currency="EUR", total=1190, tax=190, subtotal=1000, total_usd=1291, tax_usd=206)
    ((_, p),) = rendered(mapped("lemonsqueezy", order, "order_created"))
    assert (p[c.REVENUE], p["Revenue (USD)"], p[c.EXCHANGE_RATE_SOURCE]) == (11.9, 12.91, "lemonsqueezy_usd")
    assert (
        p["Tax (USD)"] == half_up(Decimal(190) * Decimal("12.91") / Decimal("11.90")) / 100
    )  # at Lemon Squeezy's rate


def test_lemonsqueezy_subscriptions_carry_no_mrr(fixture_json):
    ((_, p),) = rendered(
        mapped("lemonsqueezy", fixture_json("lemonsqueezy/subscription_created.json"), "subscription_created")
    )
    assert c.MRR not in p  # the subscription names a price id, not its amount or interval (docs/providers.md)


# ---- Shopify -----------------------------------------------------------------------------------------


def test_shopify_order_states_tax_and_discounts(fixture_json):
    order = fixture_json("shopify/rest_fixture_order.json")["order"]
    facts = mapped("shopify", order, "orders/paid")
    ((_, p),) = rendered(facts)
    assert (p[c.REVENUE], p[c.TAX], p[c.DISCOUNT]) == (float(order["total_price"]), float(order["total_tax"]), 0)
    assert p[c.NET_REVENUE] == float(Decimal(order["total_price"]) - Decimal(order["total_tax"])) == 398


def test_shopify_presentment_order_converts_at_shop_money(fixture_json):
    order = fixture_json("shopify/rest_fixture_order.json")["order"]
    order["total_price_set"] = {"shop_money": {"amount": "409.94", "currency_code": "USD"},
                                "presentment_money": {"amount": "61200", "currency_code": "JPY"}}  # fmt: skip
    order["total_tax_set"] = {"shop_money": {"amount": "11.94", "currency_code": "USD"},
                              "presentment_money": {"amount": "1782", "currency_code": "JPY"}}  # fmt: skip
    ((_, p),) = rendered(mapped("shopify", order, "orders/paid"))
    assert (p[c.REVENUE], p[c.CURRENCY], p[c.TAX], p[c.NET_REVENUE]) == (61200, "JPY", 1782, 59418)
    assert (p["Revenue (USD)"], p[c.EXCHANGE_RATE_SOURCE]) == (409.94, "shopify_shop_money")


def test_shopify_refund_states_the_tax_of_its_lines(fixture_json):
    refund = fixture_json("shopify/rest_fixture_refund.json")["refund"]
    for line in refund["refund_line_items"]:
        line["total_tax"] = line["line_item"]["tax_lines"][0]["price"]  # newer API versions state it per line
    ((_, p),) = rendered(mapped("shopify", refund, "refunds/create"))
    assert (p[c.REVENUE], p[c.TAX]) == (209, 3.98 * 2)


# ---- Standard Webhooks -----------------------------------------------------------------------------


SENDER = {
    "events": {
        "subscription.created": {
            "event": "Subscription Started", "time": "ts", "subscription_id": "data.id", "customer_id": "data.customer",
            "recurring_amount": "data.price", "interval": "data.interval", "interval_count": "data.every",
            "amount_unit": "minor", "currency": "data.currency",
        },
        "subscription.changed": {
            "event": "Subscription Changed", "time": "ts", "subscription_id": "data.id", "customer_id": "data.customer",
            "recurring_amount": "data.price", "previous_recurring_amount": "data.previous_price",
            "interval": {"value": "year"}, "amount_unit": "major", "currency": "data.currency",
        },
        "subscription.ended": {
            "event": "Subscription Cancelled", "time": "ts", "subscription_id": "data.id", "customer_id": "data.customer",
            "recurring_amount": "data.price", "interval": "data.interval", "amount_unit": "minor",
            "currency": "data.currency",
        },
        "payment.succeeded": {
            "event": "Purchase Completed", "time": "ts", "order_id": "data.id", "customer_id": "data.customer",
            "amount": "data.total", "tax": "data.tax", "fee": "data.fee", "amount_unit": "minor",
            "currency": "data.currency",
        },
    }
}  # fmt: skip


def sender(body: dict[str, Any], event_type: str) -> list[tuple[str, dict[str, Any]]]:
    settings = Settings(standard_webhooks_mapping={"acme": SENDER}, reporting_currency="USD")
    providers.forget_instances()
    return rendered(
        mapped("acme", {"type": event_type, "ts": 1_700_000_000, "data": body}, event_type, settings), settings
    )


def test_a_senders_mapping_gives_mrr_from_a_recurring_amount_per_interval():
    base = {"id": "sub_9", "customer": "cus_9", "currency": "EUR", "interval": "month", "every": 3}
    ((_, p),) = sender({**base, "price": 6000}, "subscription.created")
    assert economics(p) == (20, 20, "New")  # 60.00 EUR every 3 months
    ((_, p),) = sender({**base, "price": "480.00", "previous_price": "240.00"}, "subscription.changed")
    assert economics(p) == (40, 20, "Expansion")  # 480 a year / 12 = 40, was 240 / 12 = 20
    ((_, p),) = sender({**base, "price": 6000, "interval": "month"}, "subscription.ended")
    assert economics(p) == (0, -60, "Churn")


def test_a_senders_mapping_gives_tax_and_fee():
    ((_, p),) = sender({"id": "pay_1", "customer": "cus_9", "currency": "USD", "total": 1200, "tax": 200, "fee": 65},
                       "payment.succeeded")  # fmt: skip
    assert (p[c.REVENUE], p[c.TAX], p[c.NET_REVENUE], p[c.FEE]) == (12, 2, 10, 0.65)
    providers.forget_instances()
