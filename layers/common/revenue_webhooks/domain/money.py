"""Currency exponents and minor-to-major conversion: the one place money rules live.

Amounts stay integers in minor units (cents, yen, fils) until the Mixpanel event is
built; only then are they divided by 10**exponent, through Decimal, so that
1999 USD cents is exactly 19.99 and 5120 KWD fils is exactly 5.12.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 currencies with no minor unit, as Stripe, Paddle and Lemon Squeezy treat them
# (Stripe's zero-decimal list; UGX included per Stripe's current docs).
ZERO_DECIMAL = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"]
)
# Currencies with three decimals (thousandths).
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])


def exponent(currency: str) -> int:
    """Number of decimals of `currency` (ISK, HUF and TWD are two-decimal in the payment APIs)."""
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def normalize_currency(currency: str) -> str:
    """Upper-case ISO code; rejects anything that is not three ASCII letters."""
    code = (currency or "").strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(f"not an ISO 4217 currency code: {currency!r}")
    return code


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of an upper-case ISO currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError(f"minor units must be an int, got {self.minor!r}")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    @classmethod
    def from_minor(cls, minor: int | str, currency: str) -> Money:
        """From a provider's minor-unit amount (Stripe, Paddle and Lemon Squeezy send these)."""
        value = int(minor) if isinstance(minor, str) else minor
        return cls(value, currency)

    @classmethod
    def from_major(cls, major: str | int | float | Decimal, currency: str) -> Money:
        """From a provider's major-unit amount ("19.99" from Shopify, 9.99 from RevenueCat).

        Floats go through their shortest repr, so 9.99 means 9.99, not 9.9900000000000002131.
        """
        code = normalize_currency(currency)
        amount = Decimal(repr(major)) if isinstance(major, float) else Decimal(str(major))
        scaled = amount.scaleb(exponent(code))
        minor = int(scaled.to_integral_value())
        if scaled != minor:
            raise ValueError(f"{major} {code} has more decimals than {code} allows")
        return cls(minor, code)

    @property
    def major(self) -> Decimal:
        """The amount in major units, exact."""
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def revenue(self) -> int | float:
        """The number Mixpanel stores as `Revenue`: an int when whole, else the exact decimal as float."""
        value = self.major
        return int(value) if value == value.to_integral_value() else float(value)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __add__(self, other: Money) -> Money:
        return Money(self.minor + other.minor, _same(self, other))

    def __sub__(self, other: Money) -> Money:
        return Money(self.minor - other.minor, _same(self, other))

    @classmethod
    def rounded(cls, minor: Decimal, currency: str) -> Money:
        """From an exact fraction of minor units (a yearly price / 12, a converted amount): rounded half up,
        away from zero, to a whole minor unit, as ChartMogul rounds MRR ("to the closest integer value, in cents")."""
        return cls(int(minor.quantize(Decimal(1), rounding=ROUND_HALF_UP)), currency)


def _same(a: Money, b: Money) -> str:
    if a.currency != b.currency:
        raise ValueError(f"cannot add {a.currency} and {b.currency}")
    return a.currency
