"""MRR normalisation and movements (domain/mrr.py): each figure computed by hand beside the call."""

from __future__ import annotations

from decimal import Decimal

import pytest
from revenue_webhooks.domain.money import Money
from revenue_webhooks.domain.mrr import (
    CHURN,
    CONTRACTION,
    EXPANSION,
    NEW,
    REACTIVATION,
    Charge,
    Discount,
    MrrChange,
    billing_interval,
    monthly_recurring,
    movement,
)


@pytest.mark.parametrize(
    ("charge", "currency", "expected_minor"),
    [
        (Charge(Decimal(1500), "month"), "USD", 1500),  # $15.00 a month
        (Charge(Decimal(12000), "year"), "USD", 1000),  # $120 a year / 12 = $10.00
        (Charge(Decimal(10000), "year"), "USD", 833),  # $100 / 12 = 833.33 cents -> 833
        (Charge(Decimal(25000), "year"), "EUR", 2083),  # 250 EUR / 12 = 2083.33 cents
        (Charge(Decimal(9000), "month", 3), "USD", 3000),  # $90 every 3 months
        (Charge(Decimal(1200), "week"), "USD", 5200),  # $12 a week x 52 / 12 = $52.00
        (Charge(Decimal(100), "day"), "USD", 3042),  # $1 a day x 365 / 12 = 3041.67 cents
        (Charge(Decimal(9800), "year"), "JPY", 817),  # 9,800 yen a year / 12 = 816.67 -> 817 yen
        (Charge(Decimal(30000), "year"), "KWD", 2500),  # 30.000 KWD a year / 12 = 2.500 KWD (fils)
        (Charge(Decimal(1250), "month", 2), "USD", 625),
    ],
)
def test_a_charge_normalised_to_a_month_rounds_once_half_up(charge: Charge, currency: str, expected_minor: int) -> None:
    assert monthly_recurring([charge], currency) == Money(expected_minor, currency)


def test_half_a_minor_unit_rounds_up() -> None:
    assert monthly_recurring([Charge(Decimal(30), "year")], "USD") == Money(3, "USD")  # 2.5 cents -> 3
    assert monthly_recurring([Charge(Decimal(18), "year")], "USD") == Money(2, "USD")  # 1.5 -> 2


def test_quantities_and_items_add_before_rounding() -> None:
    seats = Charge(Decimal(3000 * 10), "month")  # 10 seats x $30
    addon = Charge(Decimal(10000), "month")
    assert monthly_recurring([seats, addon], "USD") == Money(40000, "USD")


def test_recurring_discounts_apply_in_order_and_never_below_zero() -> None:
    monthly = [Charge(Decimal(5000), "month")]
    assert monthly_recurring(monthly, "USD", [Discount(percent=Decimal(20))]) == Money(4000, "USD")
    assert monthly_recurring(monthly, "USD", [Discount(percent=Decimal("12.5"))]) == Money(4375, "USD")
    assert monthly_recurring(monthly, "USD", [Discount(amount_off=1000)]) == Money(4000, "USD")
    assert monthly_recurring(monthly, "USD", [Discount(amount_off=9000)]) == Money(0, "USD")
    yearly = [Charge(Decimal(60000), "year")]  # $600 a year, $120 off each (yearly) invoice: (600 - 120) / 12 = 40
    assert monthly_recurring(yearly, "USD", [Discount(amount_off=12000)]) == Money(4000, "USD")


@pytest.mark.parametrize(
    ("interval", "count", "expected"),
    [
        ("month", 1, ("month", 1)),
        ("YEAR", "2", ("year", 2)),
        ("fortnight", 1, None),
        ("month", 0, None),
        (None, 1, None),
    ],
)
def test_billing_intervals_are_read_strictly(interval: object, count: object, expected: object) -> None:
    assert billing_interval(interval, count) == expected


@pytest.mark.parametrize(
    ("before", "after", "was_paying", "expected"),
    [
        (0, 1500, False, NEW),
        (0, 1500, True, REACTIVATION),
        (1500, 3000, False, EXPANSION),
        (3000, 1500, False, CONTRACTION),
        (1500, 0, False, CHURN),
        (1500, 1500, False, None),
        (0, 0, False, None),
    ],
)
def test_movements_follow_chartmoguls_meanings(before: int, after: int, was_paying: bool, expected: str | None) -> None:
    assert movement(before, after, was_paying=was_paying) == expected


def test_a_change_needs_a_known_before_in_the_same_currency() -> None:
    known = MrrChange("sub_1", Money(3000, "USD"), Money(1500, "USD"))
    assert known.change == Money(1500, "USD") and known.movement == EXPANSION
    unknown = MrrChange("sub_1", Money(3000, "USD"))
    assert unknown.change is None and unknown.movement is None
    assert MrrChange("sub_1", Money(3000, "USD"), Money(1500, "EUR")).change is None
    assert known.without_change().change == Money(0, "USD") and known.without_change().movement is None
