"""docs/events.md is the catalog: generated from the code, and every property the code emits is in it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from revenue_webhooks.config import from_environ
from revenue_webhooks.docs import render_markdown
from revenue_webhooks.domain import catalog
from revenue_webhooks.domain.facts import Fact
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.mixpanel.rendering import mixpanel_event
from revenue_webhooks.providers.stripe import StripeProvider
from stripe_story import BASIL, full_history

ROOT = Path(__file__).parent.parent.parent


def test_docs_events_md_is_generated_from_the_catalog() -> None:
    assert (ROOT / "docs" / "events.md").read_text() == render_markdown(), "run `make docs`"


def stripe_events() -> list[dict]:
    settings = from_environ({})
    provider = StripeProvider(settings)
    rendered = []
    for version in ("2020-08-27", BASIL):
        for event in full_history(version):
            body = json.dumps(event).encode()
            for fact in provider.map(QueuedEvent("stripe", event["id"], event["type"], int(time.time() * 1000), body)):
                assert isinstance(fact, Fact)
                rendered.append(mixpanel_event(fact, settings))
    return rendered


@pytest.mark.parametrize("event", stripe_events(), ids=lambda e: e["event"])
def test_every_emitted_property_is_documented(event: dict) -> None:
    assert event["event"] in catalog.BY_NAME
    undocumented = set(event["properties"]) - catalog.properties_of(event["event"])
    assert not undocumented, f"{event['event']} emits undocumented {sorted(undocumented)}"


def test_every_provider_event_names_a_catalog_event() -> None:
    from revenue_webhooks.providers import produced_by

    assert set(produced_by()) <= set(catalog.BY_NAME)
