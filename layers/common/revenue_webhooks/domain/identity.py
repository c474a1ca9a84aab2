"""Who a payment belongs to: the app's user id, a device id and the provider's customer.

The app passes its own ids to the provider at checkout (metadata or Checkout's
`client_reference_id`); see docs/identity.md. Each fact's identity comes from its own
payload only, so it does not depend on which webhook arrived first. In Simplified ID
Merge projects the customer id becomes the `$device_id` of events that carry no device
id of their own, so Mixpanel merges customer-only events into the user as soon as one
event carries both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .facts import Fact, Identity


class IdentityRules(Protocol):
    """What identity needs of the deployment's settings (config.Settings is one)."""

    @property
    def user_id_keys(self) -> tuple[str, ...]: ...
    @property
    def device_id_keys(self) -> tuple[str, ...]: ...
    @property
    def ip_keys(self) -> tuple[str, ...]: ...
    @property
    def id_merge(self) -> str: ...
    @property
    def group_key(self) -> str: ...
    @property
    def company_id_keys(self) -> tuple[str, ...]: ...
    @property
    def company_fallback(self) -> str: ...


def resolve(
    settings: IdentityRules,
    metadata: Iterable[Mapping[str, Any] | None],
    *,
    reference_ids: Iterable[Any] = (),
    customer: Any = None,
    account: Any = None,
) -> Identity:
    """Identity from metadata dicts (in priority order) and explicit app ids such as `client_reference_id`.

    The first configured user-id key wins over `reference_ids`, which win over the other keys,
    so `metadata.mixpanel_distinct_id` > `client_reference_id` > `metadata.user_id` by default.
    `account` is the platform's connected account (Stripe Connect), a company when COMPANY_FALLBACK=account.
    """
    sources = [m for m in metadata if isinstance(m, Mapping)]
    keys = tuple(settings.user_id_keys)
    user_id = (
        _first(sources, keys[:1])
        or next((_clean(value) for value in reference_ids if _clean(value)), None)
        or _first(sources, keys[1:])
    )
    device_id = _first(sources, tuple(settings.device_id_keys))
    return Identity(
        user_id=user_id,
        device_id=device_id,
        customer=_clean(customer),
        company=company_of(settings, sources, customer=customer, account=account),
    )


def company_of(
    settings: IdentityRules, sources: list[Mapping[str, Any]], *, customer: Any = None, account: Any = None
) -> str | None:
    """The company a payment belongs to: a company metadata key, else the configured fallback id.

    None while Group Analytics is off (no GROUP_KEY): no company totals are kept then.
    """
    if not settings.group_key:
        return None
    named = _first(sources, tuple(settings.company_id_keys))
    if named:
        return named
    fallback = {"customer": customer, "account": account}.get(settings.company_fallback)
    return _clean(fallback)


def buyer_ip(settings: IdentityRules, metadata: Iterable[Mapping[str, Any] | None]) -> str | None:
    """The buyer's IP when the app passed it in metadata (for Mixpanel geolocation)."""
    return _first([m for m in metadata if isinstance(m, Mapping)], tuple(settings.ip_keys))


def distinct_id(fact: Fact, settings: IdentityRules) -> str:
    """The event's `distinct_id`, set explicitly so Mixpanel's deduplication sees the same value every time."""
    identity = fact.identity
    if settings.id_merge == "original":
        return identity.user_id or identity.customer or identity.device_id or fallback_device(fact)
    if identity.user_id:
        return identity.user_id
    return f"$device:{device_id(fact)}"


def device_id(fact: Fact) -> str:
    """`$device_id`: the browser's id when passed, else the customer, else the order itself."""
    identity = fact.identity
    return identity.device_id or identity.customer or fallback_device(fact)


def fallback_device(fact: Fact) -> str:
    """A stable per-order id for guest purchases with no customer, never a shared constant (hot shards)."""
    return fact.key.split(":", 1)[0] + "-" + (fact.order_id or fact.key.rsplit(":", 1)[-1])


def _first(sources: list[Mapping[str, Any]], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        for source in sources:
            value = _clean(source.get(key))
            if value:
                return value
    return None


# Mixpanel refuses these as ids (docs: "invalid distinct_id values").
_PLACEHOLDERS = frozenset(
    [
        "00000000-0000-0000-0000-000000000000",
        "anon",
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "na",
        "undefined",
        "unknown",
        "<nil>",
        "0",
        "-1",
        "true",
        "false",
        "[]",
        "{}",
    ]
)


def _clean(value: Any) -> str | None:
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    text = str(value).strip()
    if not text or text.lower() in _PLACEHOLDERS or len(text) > 255:
        return None
    return text
