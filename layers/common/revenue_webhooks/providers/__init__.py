"""Provider registry: every built-in provider declared once, as `SPEC` in its own module, found here.

A provider is one module in this package with a `Provider` subclass, its `PRODUCES` table, a `sign`
function and `SPEC` (its route, its signing secret's variable and template resource, ...); its samples
go in `events/<route>/` and its fixtures in `tests/fixtures/<route>/`, and its secret is one resource in
template.yaml (docs/providers.md, "Adding a provider"). Any other route is a Standard Webhooks sender,
configured in STANDARD_WEBHOOKS_MAPPING (standard_webhooks.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import TYPE_CHECKING, Any

from .base import Provider, ProviderSpec

if TYPE_CHECKING:
    from ..config import Settings

# Modules of this package that are not a built-in provider.
_NOT_PROVIDERS = frozenset({"base", "standard_webhooks"})


@cache
def specs() -> dict[str, ProviderSpec]:
    """Every built-in provider's SPEC, by route (modules whose name starts with `_` are helpers)."""
    found: dict[str, ProviderSpec] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_") or module.name in _NOT_PROVIDERS:
            continue
        spec = importlib.import_module(f"{__name__}.{module.name}").SPEC
        found[spec.route] = spec
    return dict(sorted(found.items()))


def get_provider(route: str, settings: Settings) -> Provider | None:
    """The provider serving `/webhooks/<route>`, or None when no such route is configured."""
    key = (route, id(settings))
    if key not in _INSTANCES:
        _INSTANCES[key] = _create(route, settings)
    return _INSTANCES[key]


_INSTANCES: dict[tuple[str, int], Provider | None] = {}


def forget_instances() -> None:
    """Providers are built once per settings; the local stack and the tests start again with new settings."""
    _INSTANCES.clear()


def _create(route: str, settings: Settings) -> Provider | None:
    spec = specs().get(route)
    if spec is not None:
        return spec.create(settings)
    if route in settings.standard_webhooks_mapping:
        from . import standard_webhooks

        return standard_webhooks.create(settings, route)
    return None


def routes(settings: Settings) -> list[str]:
    """Every route this deployment serves: the built-in providers and the configured Standard Webhooks senders."""
    return [*specs(), *settings.standard_webhooks_mapping]


def prepare_all(settings: Settings, *, with_libraries: bool) -> None:
    """Create every route's provider at init; with `with_libraries`, also load what their checks import."""
    for route in routes(settings):
        provider = get_provider(route, settings)
        if provider is not None and with_libraries:
            provider.prepare()


def validate(settings: Settings) -> None:
    """Check configuration that providers own (the Standard Webhooks mapping) at cold start, not at a first webhook."""
    if settings.standard_webhooks_mapping:
        from . import standard_webhooks

        standard_webhooks.validate_mapping(settings.standard_webhooks_mapping, reserved=specs())


def sign(route: str, body: bytes, secret: str, timestamp: int | None = None, **options: Any) -> dict[str, str]:
    """Headers for `body` as the provider of `route` would send it; any other route is a Standard Webhooks sender."""
    spec = specs().get(route)
    if spec is not None:
        return spec.sign(body, secret, timestamp, **options)
    from . import standard_webhooks

    return standard_webhooks.sign(body, secret, timestamp, **options)


def produced_by() -> dict[str, dict[str, list[str]]]:
    """Catalog event -> provider -> provider event types that produce it (for docs/events.md)."""
    table: dict[str, dict[str, list[str]]] = {}
    for route, spec in specs().items():
        for provider_type, events in spec.produces.items():
            for event in events:
                table.setdefault(event, {}).setdefault(route, []).append(provider_type)
    return table
