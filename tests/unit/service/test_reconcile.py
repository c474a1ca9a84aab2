"""The reconciliation's comparison: per currency, per object, which period, and the repair command."""

from __future__ import annotations

from revenue_webhooks.config import from_environ
from revenue_webhooks.domain.money import Money
from revenue_webhooks.mixpanel.export import deduplicated
from revenue_webhooks.service.reconcile import Expected, Held, compare, held

SINCE, UNTIL = 1_700_000_000, 1_700_086_400


def paid(object_id: str, minor: int, currency: str = "USD", at: int = SINCE + 100, kind: str = "payment") -> Expected:
    return Expected(object_id, kind, Money(minor, currency), at, f"stripe:{kind}:{object_id}", f"iid-{object_id}")


def seen(expected: Expected, minor: int | None = None, at: int | None = None) -> Held:
    money = expected.money if minor is None else Money(minor, expected.money.currency)
    return Held(expected.insert_id or "", expected.kind, money, expected.time if at is None else at, expected.object_id)


def test_all_agree_per_currency() -> None:
    stripe = [
        paid("cs_1", 4900),
        paid("in_2", 5120, "KWD"),
        paid("re_3", 900, kind="refund"),
        paid("pi_4", 3000, "JPY"),
    ]
    mixpanel = [seen(e) for e in stripe]
    report = compare(stripe, {e.fact_key or "": seen(e) for e in stripe}, mixpanel, SINCE, UNTIL)
    assert report.agree and report.repair_command() is None
    usd = report.totals["USD"]
    assert (usd["stripe"].gross, usd["stripe"].refunds, usd["stripe"].net) == (4900, 900, 4000)
    assert usd["stripe"] == usd["ledger"] == usd["mixpanel"]
    assert report.as_json()["currencies"]["KWD"]["mixpanel"] == {
        "gross": "5.120",
        "refunds": "0.000",
        "net": "5.120",
        "payments": 1,
        "refund_count": 0,
    }


def test_each_kind_of_difference_names_the_object_and_its_repair() -> None:
    missing, wrong, twice = paid("cs_1", 4900), paid("in_2", 1500), paid("re_3", 900, kind="refund")
    uncounted = Expected("pi_4", "payment", Money(700, "USD"), SINCE + 5, None, None, "not mapped")
    stripe = [missing, wrong, twice, uncounted]
    mixpanel = [seen(wrong, 1400), seen(twice), seen(twice, at=twice.time + 1)]
    extra = Held("iid-stranger", "payment", Money(100, "USD"), SINCE + 7, "cs_stranger")
    ledger = {wrong.fact_key or "": seen(wrong), twice.fact_key or "": seen(twice)}
    report = compare(stripe, ledger, [*mixpanel, extra], SINCE, UNTIL)
    problems = {d.object_id: d.problem for d in report.differences}
    assert problems == {
        "cs_1": "not in Mixpanel; not in the ledger",
        "in_2": "Mixpanel has 14.00 USD",
        "re_3": "2 events in Mixpanel (different time or user)",
        "pi_4": "not mapped",
        "cs_stranger": "in Mixpanel (at 2023-11-14T22:13:27Z) but not in Stripe's payments of the period",
    }
    assert report.repair_command() == 'make backfill ARGS="--ids cs_1,in_2,re_3"'
    repairs = {d.object_id: d.repair for d in report.differences}
    assert repairs["pi_4"] is None and repairs["cs_stranger"] is None
    usd = report.totals["USD"]
    assert usd["stripe"].gross == 4900 + 1500 + 700 and usd["mixpanel"].gross == 1400 + 100
    assert usd["mixpanel"].refunds == 1800 and usd["ledger"].gross == 1500
    as_json = {d["object_id"]: d for d in report.as_json()["differences"]}
    assert not report.agree and (as_json["cs_1"]["stripe"], as_json["cs_1"]["mixpanel"]) == ("49.00", None)


def test_a_payment_counts_in_the_period_of_its_stripe_time_in_every_column() -> None:
    inside = paid("cs_in", 1000, at=UNTIL - 1)
    outside = paid("cs_out", 2000, at=UNTIL + 5)  # read through the margin: known, not counted
    mixpanel = [seen(inside, at=UNTIL + 1), seen(outside, at=UNTIL - 2)]
    report = compare([inside, outside], None, mixpanel, SINCE, UNTIL)
    assert report.agree and not report.ledger_checked
    assert report.totals["USD"]["mixpanel"].gross == report.totals["USD"]["stripe"].gross == 1000


def test_mixpanel_events_are_read_as_its_queries_see_them() -> None:
    settings = from_environ(
        {"EVENT_NAMES": '{"Purchase Completed": "Order Paid"}', "PROPERTY_NAMES": '{"Revenue": "amount"}'}
    )
    event = {
        "event": "Order Paid",
        "properties": {
            "time": 1_700_000_123,
            "distinct_id": "u1",
            "$insert_id": "a",
            "amount": 5.12,
            "Currency": "KWD",
            "Order ID": "cs_9",
        },
    }
    refund = {
        "event": "Refund Issued",
        "properties": {**event["properties"], "$insert_id": "b", "amount": 3, "Currency": "JPY", "Refund ID": "re_1"},
    }
    other = {"event": "Subscription Renewed", "properties": {**event["properties"], "$insert_id": "c"}}
    exported = deduplicated(
        [event, dict(event), refund, other, {**event, "properties": {**event["properties"], "time": 1_700_000_124}}]
    )
    assert len(exported) == 4  # the exact copy collapses, another time does not
    found = held(exported, settings)
    assert [(h.kind, h.money, h.reference) for h in found] == [
        ("payment", Money(5120, "KWD"), "cs_9"),
        ("refund", Money(3, "JPY"), "re_1"),
        ("payment", Money(5120, "KWD"), "cs_9"),
    ]
