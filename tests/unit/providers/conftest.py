"""Helpers for the provider tests: settings from an environment, raw requests, and the receiver-to-forwarder path.

Exposed as fixtures (not imports) so that no package `__init__.py` is needed under tests/.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from revenue_webhooks.config import Settings, from_environ
from revenue_webhooks.domain import catalog as catalog
from revenue_webhooks.domain.facts import Deferred, Fact
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.mixpanel.rendering import mixpanel_event
from revenue_webhooks.providers.base import Provider, WebhookRequest
from revenue_webhooks.service.envelope import from_record, to_sqs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    """Raw bytes of tests/fixtures/<relative path>."""
    return lambda relative: (FIXTURES / relative).read_bytes()


@pytest.fixture
def fixture_json() -> Callable[[str], Any]:
    return lambda relative: json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


@pytest.fixture
def revenuecat_sample(fixture_json: Callable[[str], Any]) -> Callable[..., dict[str, Any]]:
    """RevenueCat's published sample N, with `event` fields changed."""

    def make(number: int, **event: Any) -> dict[str, Any]:
        body = copy.deepcopy(fixture_json(f"revenuecat/sample-events_{number}.json"))
        body["event"].update(event)
        return body

    return make


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings as a deployment would read them, from environment variables."""

    def make(**environ: str) -> Settings:
        return from_environ(environ)

    return make


@pytest.fixture
def make_request() -> Callable[..., WebhookRequest]:
    def make(body: bytes, headers: Mapping[str, str], *, received_at_ms: int, route: str) -> WebhookRequest:
        return WebhookRequest(
            body=body,
            headers={name.lower(): value for name, value in headers.items()},
            received_at_ms=received_at_ms,
            route=route,
        )

    return make


@pytest.fixture
def deliver() -> Callable[[Provider, WebhookRequest], list[Fact | Deferred]]:
    """What the receiver enqueues and the forwarder maps, for a request that passed `verify`."""

    def run(provider: Provider, request: WebhookRequest) -> list[Fact | Deferred]:
        parsed = provider.parse(request)
        assert provider.is_relevant(parsed.event_type), f"{parsed.event_type} would be ignored by the receiver"
        queued = QueuedEvent(provider.name, parsed.event_id, parsed.event_type, request.received_at_ms, request.body)
        # Through the queue's own encoding, as the forwarder receives it.
        message = to_sqs(queued)
        record = {
            "body": message["MessageBody"],
            "messageAttributes": {
                name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
                for name, value in message["MessageAttributes"].items()
            },
        }
        mapped = provider.map(from_record(record))
        for fact in mapped:  # docs/events.md must describe everything the code emits
            if isinstance(fact, Fact):
                event = mixpanel_event(fact, from_environ({}))
                undocumented = set(event["properties"]) - catalog.properties_of(fact.event)
                assert not undocumented, f"{fact.event} emits undocumented {sorted(undocumented)}"
        return mapped

    return run


@pytest.fixture
def rendered() -> Callable[[Fact, Settings], dict[str, Any]]:
    """The Mixpanel event properties a fact becomes (Revenue, Currency, Order ID...)."""
    return lambda fact, settings: mixpanel_event(fact, settings)["properties"]
