"""Currency exponents and exact minor-to-major conversion."""

from decimal import Decimal

import pytest
from revenue_webhooks.domain.money import Money, exponent


@pytest.mark.parametrize(
    ("currency", "expected"),
    [("usd", 2), ("EUR", 2), ("JPY", 0), ("krw", 0), ("UGX", 0), ("KWD", 3), ("bhd", 3), ("ISK", 2), ("HUF", 2)],
)
def test_exponent_per_currency(currency: str, expected: int) -> None:
    assert exponent(currency) == expected


@pytest.mark.parametrize(
    ("minor", "currency", "revenue"),
    [
        (1999, "usd", 19.99),
        (2500, "usd", 25),
        (1200, "jpy", 1200),
        (5120, "kwd", 5.12),
        (1, "bhd", 0.001),
        (0, "usd", 0),
    ],
)
def test_revenue_in_major_units(minor: int, currency: str, revenue: float) -> None:
    assert Money(minor, currency).revenue() == revenue


def test_major_is_exact_decimal() -> None:
    assert Money(1999, "USD").major == Decimal("19.99")
    assert Money(5125, "KWD").major == Decimal("5.125")


@pytest.mark.parametrize(
    ("major", "currency", "minor"),
    [
        ("19.99", "USD", 1999),
        (9.99, "USD", 999),
        ("1200", "JPY", 1200),
        ("5.125", "KWD", 5125),
        (Decimal("0.1"), "EUR", 10),
    ],
)
def test_from_major(major: object, currency: str, minor: int) -> None:
    assert Money.from_major(major, currency).minor == minor  # type: ignore[arg-type]


def test_from_major_refuses_more_decimals_than_the_currency_has() -> None:
    with pytest.raises(ValueError, match="more decimals"):
        Money.from_major("12.5", "JPY")


@pytest.mark.parametrize("bad", ["", "US", "usdx", "12$", None])
def test_currency_must_be_iso(bad: object) -> None:
    with pytest.raises(ValueError):
        Money(100, bad)  # type: ignore[arg-type]


def test_minor_units_must_be_integers() -> None:
    with pytest.raises(TypeError):
        Money(19.99, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "USD")
