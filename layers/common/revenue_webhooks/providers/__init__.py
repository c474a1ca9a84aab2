"""Provider registry: a route name to its provider, imported only when a webhook needs it.

Lazy imports keep a cold receiver on the Standard Webhooks route from importing
`stripe`. A new provider is a new module here plus one line in `BUILT_IN`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .base import Provider

# Route name -> module in this package. Each module defines `create(settings) -> Provider`
# and `PRODUCES: dict[str, tuple[str, ...]]` (provider event type -> catalog events).
BUILT_IN = {
    "stripe": "stripe",
    "shopify": "shopify",
    "paddle": "paddle",
    "lemonsqueezy": "lemonsqueezy",
    "revenuecat": "revenuecat",
}
STANDARD_WEBHOOKS_MODULE = "standard_webhooks"


def get_provider(route: str, settings: Any) -> Provider | None:
    """The provider serving `/webhooks/<route>`, or None when no such route is configured."""
    key = (route, id(settings))
    if key not in _INSTANCES:
        _INSTANCES[key] = _create(route, settings)
    return _INSTANCES[key]


_INSTANCES: dict[tuple[str, int], Provider | None] = {}


def _create(route: str, settings: Any) -> Provider | None:
    module_name = BUILT_IN.get(route)
    if module_name:
        return _module(module_name).create(settings)
    senders: Mapping[str, Any] = getattr(settings, "standard_webhooks_mapping", {}) or {}
    if route in senders:
        return _module(STANDARD_WEBHOOKS_MODULE).create(settings, route)
    return None


def _module(name: str) -> Any:
    return importlib.import_module(f"{__name__}.{name}")


def produced_by() -> dict[str, dict[str, list[str]]]:
    """Catalog event -> provider -> provider event types that produce it (for docs/events.md)."""
    table: dict[str, dict[str, list[str]]] = {}
    for route, module_name in BUILT_IN.items():
        try:
            produces = _module(module_name).PRODUCES
        except ModuleNotFoundError:
            continue
        for provider_type, events in produces.items():
            for event in events:
                table.setdefault(event, {}).setdefault(route, []).append(provider_type)
    return table


def routes(settings: Any) -> list[str]:
    """Every route this deployment serves: the built-in providers and the configured Standard Webhooks senders."""
    senders: Mapping[str, Any] = getattr(settings, "standard_webhooks_mapping", {}) or {}
    return [*BUILT_IN, *senders]


def prepare_all(settings: Any, *, with_libraries: bool) -> None:
    """Create every route's provider at init; with `with_libraries`, also load what their checks import."""
    for route in routes(settings):
        provider = get_provider(route, settings)
        if provider is not None and with_libraries:
            provider.prepare()


def validate(settings: Any) -> None:
    """Check configuration that providers own (the Standard Webhooks mapping) at cold start, not at a first webhook."""
    mapping = getattr(settings, "standard_webhooks_mapping", None)
    if mapping:
        _module(STANDARD_WEBHOOKS_MODULE).validate_mapping(mapping)
