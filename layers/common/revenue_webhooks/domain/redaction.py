"""PII redaction for the one place a payload may be logged: the receiver with DEBUG_PAYLOADS on.

Two passes over a parsed payload. By key: fields that name a person or where they are (e-mail, name,
address, phone, IP, card and bank fields, free-text notes) lose their value, and whole address,
card and billing/shipping objects keep only their shape. By value: any other string has e-mail
addresses, IPv4/IPv6 addresses, international phone numbers and card numbers (Luhn-valid) replaced,
because metadata and descriptions are free text that a merchant or a customer typed.
Over-redaction is the intended failure mode: the log is for debugging a mapping, not for reading customers.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

REDACTED = "[redacted]"

# Keys (lower case, `-`/`.`/spaces as `_`) whose whole value is personal data.
_PII_KEYS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "full_name",
        "given_name",
        "family_name",
        "middle_name",
        "customer_name",
        "billing_name",
        "shipping_name",
        "user_name",
        "username",
        "display_name",
        "cardholder_name",
        "holder_name",
        "account_holder_name",
        "company",
        "phone",
        "phone_number",
        "mobile",
        "ip",
        "ip_address",
        "client_ip",
        "browser_ip",
        "customer_ip",
        "remote_ip",
        "remote_addr",
        "x_forwarded_for",
        "user_agent",
        "line1",
        "line2",
        "address1",
        "address2",
        "street",
        "city",
        "postal_code",
        "postcode",
        "zip",
        "zip_code",
        "latitude",
        "longitude",
        "last4",
        "last_4",
        "last_four",
        "exp_month",
        "exp_year",
        "expiry",
        "expiry_month",
        "expiry_year",
        "fingerprint",
        "iin",
        "bin",
        "cvc",
        "cvv",
        "card_number",
        "account_number",
        "routing_number",
        "iban",
        "bic",
        "sort_code",
        "tax_id",
        "tax_ids",
        "vat_number",
        "ssn",
        "dob",
        "date_of_birth",
        "birthday",
        "note",
        "customer_note",
        "gift_message",
    }
)
# Objects whose every scalar is personal data; their keys stay, so the shape still helps debugging.
_PII_OBJECTS = frozenset(
    {
        "address",
        "billing_address",
        "shipping_address",
        "default_address",
        "addresses",
        "billing_details",
        "shipping_details",
        "shipping",
        "customer_details",
        "customer_address",
        "card",
        "card_details",
        "bank_account",
        "location",
    }
)
# Key fragments that always mean personal data ("billing_email", "customer_phone_number").
_PII_FRAGMENTS = ("email", "phone", "address")

# Each pattern starts only where a run of its characters starts and never backtracks into it, so
# redaction stays linear in the text (a 500 KB run of letters without "@" costs one pass, not one per letter).
_EMAIL = re.compile(
    r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]++@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]++)+"
)
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_IPV6_CANDIDATE = re.compile(r"(?<![0-9A-Za-z:.])[0-9A-Fa-f:.]{2,45}+(?![0-9A-Za-z:.])")
_PHONE = re.compile(r"\+\d[\d ().-]{6,18}\d")
_CARD = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
_KEY_SEPARATORS = re.compile(r"[-. ]+")


def redact(value: Any, *, _inside_pii: bool = False) -> Any:
    """A copy of a parsed JSON value with personal data replaced by `[redacted]` or a typed marker."""
    if isinstance(value, dict):
        return {key: _redact_field(str(key), item, _inside_pii) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, _inside_pii=_inside_pii) for item in value]
    if _inside_pii:
        return value if value is None or isinstance(value, bool) else REDACTED
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    """Free text with e-mail addresses, IP addresses, phone numbers and card numbers replaced."""
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub(lambda m: "[card]" if _luhn(m.group()) else m.group(), text)
    text = _IPV4.sub("[ip]", text)
    text = _IPV6_CANDIDATE.sub(lambda m: "[ip]" if ":" in m.group() and _is_ipv6(m.group()) else m.group(), text)
    return _PHONE.sub("[phone]", text)


def redacted_json(value: Any, *, limit: int = 16_000) -> str:
    """The redacted value as compact JSON, cut to `limit` characters (a log line is not an archive)."""
    text = json.dumps(redact(value), separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"...[{len(text) - limit} more characters]"


def _redact_field(key: str, value: Any, inside_pii: bool) -> Any:
    name = _KEY_SEPARATORS.sub("_", key.strip().lower())
    if inside_pii or name in _PII_OBJECTS:
        return redact(value, _inside_pii=True)
    if name in _PII_KEYS or any(fragment in name for fragment in _PII_FRAGMENTS) or name.endswith("_ip"):
        return None if value is None else REDACTED
    return redact(value)


def _luhn(candidate: str) -> bool:
    digits = [int(ch) for ch in candidate if ch.isdigit()]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _is_ipv6(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True
