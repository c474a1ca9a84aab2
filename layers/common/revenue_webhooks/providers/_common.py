"""Readers every provider module needs: provider times, amounts, ids and signature-time windows.

One copy of each rule, so that "an ISO time with nanoseconds", "a minor-unit amount sent as a
string" or "a timestamp too far from API Gateway's request time" means the same for every provider.
Currency rules themselves stay in `money.py`; these helpers only turn provider fields into `Money`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ..domain.money import Money, exponent, normalize_currency
from .base import TimestampOutOfTolerance, WebhookRequest

# Unix times above this are milliseconds (1e11 s is the year 5138).
_MILLISECONDS_FROM = 100_000_000_000


def hmac_sha256(key: str | bytes, message: bytes) -> bytes:
    """Raw HMAC-SHA256 digest; a str key is used as its UTF-8 bytes, as every provider documents."""
    return hmac.new(key.encode("utf-8") if isinstance(key, str) else key, message, hashlib.sha256).digest()


def check_window(signed_at: int, request: WebhookRequest, *, past_s: int, future_s: int, what: str) -> None:
    """Refuse a signed time too far from API Gateway's request time (not from when this code runs)."""
    received_s = request.received_at_ms / 1000
    if signed_at < received_s - past_s:
        raise TimestampOutOfTolerance(f"{what} is more than {past_s} s older than the request")
    if signed_at > received_s + future_s:
        raise TimestampOutOfTolerance(f"{what} is more than {future_s} s ahead of the request")


def unix_from_iso(value: Any) -> int | None:
    """Unix seconds from an ISO 8601 time ('Z', offsets and up to nanoseconds); naive times are UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() // 1)


def unix_from_number(value: Any) -> int | None:
    """Unix seconds from a number (or digit string) in seconds or milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.replace(".", "", 1).isdigit():
            return None
        value = Decimal(text)
    if not isinstance(value, (int, float, Decimal)) or value != value or value <= 0:
        return None
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    try:
        return int(seconds)
    except (OverflowError, ValueError):
        return None


def unix_time(value: Any) -> int | None:
    """Unix seconds from whatever a payload uses for time: seconds, milliseconds or ISO 8601."""
    number = unix_from_number(value)
    return number if number is not None else unix_from_iso(value)


def iso_utc(seconds: int) -> str:
    """ISO 8601 UTC for event properties such as `Cancel At`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def minor_money(amount: Any, currency: Any) -> Money | None:
    """Money from a minor-unit integer (or digit string, as Paddle sends); None when unreadable."""
    if isinstance(amount, bool) or not isinstance(currency, str):
        return None
    if isinstance(amount, str):
        text = amount.strip()
        if not text.lstrip("-").isdigit() or not text.isascii():
            return None
        amount = int(text)
    if not isinstance(amount, int):
        return None
    try:
        return Money.from_minor(amount, currency)
    except (TypeError, ValueError):
        return None


def major_money(amount: Any, currency: Any, *, round_to_currency: bool = False) -> Money | None:
    """Money from a major-unit amount ("409.94", 4.99); None when unreadable.

    `round_to_currency` rounds half up to the currency's decimals first, for providers whose
    floats may carry conversion noise; otherwise an amount finer than the currency is refused.
    """
    if isinstance(amount, bool) or not isinstance(amount, (str, int, float)) or not isinstance(currency, str):
        return None
    try:
        if round_to_currency:
            code = normalize_currency(currency)
            exact = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(str(amount).strip())
            amount = exact.quantize(Decimal(1).scaleb(-exponent(code)), rounding=ROUND_HALF_UP)
        return Money.from_major(amount.strip() if isinstance(amount, str) else amount, currency)
    except (ArithmeticError, InvalidOperation, TypeError, ValueError):
        return None


def scaled_money(amount: Any, scale: int, currency: Any, *, round_half_up: bool = False) -> Money | None:
    """Money from an integer count of 10^-`scale` major units: Apple's milli-units (scale 3), Google's nanos (9).

    Exact when the amount is a whole number of the currency's minor units (10990 milli-USD is 1099 cents,
    120000 milli-JPY is 120 yen, 1234 milli-KWD is 1234 fils); otherwise None, or rounded half up with
    `round_half_up` (a prorated refund that is a share of a price).
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or not isinstance(currency, str):
        return None
    try:
        code = normalize_currency(currency)
    except ValueError:
        return None
    shift = scale - exponent(code)
    if shift <= 0:
        return Money(amount * 10**-shift, code)
    minor, remainder = divmod(amount, 10**shift)
    if remainder:
        if not round_half_up:
            return None
        exact = Decimal(amount).scaleb(-shift)
        minor = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return Money(minor, code)


def obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: payload shapes are never trusted."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def as_id(value: Any) -> str | None:
    """A provider id as a string (Shopify and Lemon Squeezy send integers); None for blanks and bools."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
