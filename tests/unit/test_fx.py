"""Reporting-currency rates (domain/fx.py) on the ECB's published file (tests/fixtures/ecb): by hand, to the unit."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from revenue_webhooks.adapters.reference_rates import parse_reference_rates
from revenue_webhooks.domain.fx import Conversion, RateTable, choose, day_of, from_conversion, table_for
from revenue_webhooks.domain.money import Money

ECB_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "ecb" / "eurofxref-hist-90d.2020-12-10.xml"


@pytest.fixture(scope="module")
def tables() -> list[RateTable]:
    return parse_reference_rates(ECB_FILE.read_bytes())


def cents(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_the_published_file_reads_as_one_table_a_business_day(tables: list[RateTable]) -> None:
    assert len(tables) == 64 and tables[0].published == "2020-12-10" and tables[-1].published == "2020-09-14"
    assert tables[0].per_euro["USD"] == Decimal("1.2115") and tables[0].per_euro["JPY"] == Decimal("126.53")
    assert "KWD" not in tables[0].per_euro


def test_euro_to_dollar_is_the_published_rate(tables: list[RateTable]) -> None:
    rate = table_for("2020-12-10", tables).rate("EUR", "USD")
    assert rate.convert(Money(10000, "EUR")) == Money(12115, "USD")  # 100.00 EUR x 1.2115
    assert (rate.date, rate.source) == ("2020-12-10", "ecb")


def test_yen_to_dollar_is_crossed_through_the_euro(tables: list[RateTable]) -> None:
    rate = table_for("2020-12-10", tables).rate("JPY", "USD")
    # 9,800 JPY = 9800 / 126.53 EUR = 9800 / 126.53 x 1.2115 USD = 93.832... USD
    assert rate.convert(Money(9800, "JPY")) == Money(
        cents(Decimal(9800) / Decimal("126.53") * Decimal("1.2115") * 100), "USD"
    )
    assert rate.convert(Money(9800, "JPY")) == Money(9383, "USD")


def test_dollar_to_yen_rounds_to_whole_yen(tables: list[RateTable]) -> None:
    rate = table_for("2020-12-09", tables).rate("USD", "JPY")  # 2020-12-09: USD 1.2109, JPY 126.05
    assert rate.convert(Money(1999, "USD")) == Money(
        cents(Decimal("19.99") / Decimal("1.2109") * Decimal("126.05")), "JPY"
    )


def test_a_weekend_day_takes_the_last_business_days_table_and_says_so(tables: list[RateTable]) -> None:
    saturday = table_for("2020-12-05", tables)  # Friday 2020-12-04 was the last publication before it
    assert saturday.published == "2020-12-04"
    assert saturday.rate("EUR", "USD").date == "2020-12-04"


def test_no_table_for_a_day_before_the_file_or_long_after_it(tables: list[RateTable]) -> None:
    assert table_for("2020-09-13", tables) is None
    assert table_for("2020-12-17", tables) is not None  # a week after the newest table: still served
    assert table_for("2020-12-18", tables) is None  # eight days: the feed has stopped, no stale rate


def test_a_currency_the_ecb_does_not_publish_has_no_reference_rate(tables: list[RateTable]) -> None:
    rate = table_for("2020-12-10", tables).rate("KWD", "USD")
    assert rate.value is None and rate.convert(Money(5120, "KWD")) is None


def test_a_providers_own_conversion_comes_first_and_is_exact() -> None:
    paid, settled = Money(5120, "KWD"), Money(1688, "USD")  # 5.120 KWD settled as 16.88 USD
    rate = choose("KWD", "USD", "2020-12-10", [Conversion(paid, settled, "paddle_payout_totals")])
    assert rate is not None and rate.source == "paddle_payout_totals"
    assert rate.convert(paid) == settled and rate.convert(-paid) == -settled
    # Other amounts of the same payment (its tax) convert at the rate the provider implied: 16.88 / 5.12.
    assert rate.convert(Money(512, "KWD")) == Money(
        cents(Decimal("0.512") * Decimal("16.88") / Decimal("5.12") * 100), "USD"
    )


def test_the_same_currency_needs_no_rate_and_a_conversion_elsewhere_does_not_serve() -> None:
    assert choose("USD", "USD", "2020-12-10", []).value == 1
    eur = Conversion(Money(100, "GBP"), Money(115, "EUR"), "paddle_payout_totals")
    assert choose("GBP", "USD", "2020-12-10", [eur]) is None
    assert from_conversion(Conversion(Money(0, "GBP"), Money(0, "EUR"), "x"), "2020-12-10") is None


def test_a_table_survives_its_stored_form_exactly(tables: list[RateTable]) -> None:
    assert RateTable.from_json(tables[0].to_json()) == tables[0]


def test_a_facts_day_is_its_utc_day() -> None:
    assert day_of(1607644799) == "2020-12-10" and day_of(1607644800) == "2020-12-11"


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<a/>",
        b'<E xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube><Cube time="x"/></Cube></E>',
    ],
)
def test_anything_but_a_reference_rates_file_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_reference_rates(body)
