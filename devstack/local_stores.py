"""The local stack's app stores and Stripe EventBridge destination: deliveries, and what the console shows.

`stack` is the running devstack.stack.LocalStack (typed loosely: this module is imported by it).

Kept beside stack.py (which runs them) so that the stack stays one room: the stores' stand-ins are in
devstack/stores/, the EventBridge resources in devstack/eventbridge.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from revenue_webhooks.service.envelope import from_record

from .samples import Sample
from .stores import ROUTES as STORE_ROUTES


def delivery(stack: Any, sample: Sample, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a sample as its provider would deliver it now: signed with the route's secret,
    or by the app stores' stand-ins (an App Store JWS, a Google Play push token)."""
    if sample.route in STORE_ROUTES and stack.stores is not None:
        body, headers = stack.stores.deliver(sample.route, sample.body)
        spec_headers = sample.headers(secret or "unused")
        return body, {"user-agent": spec_headers.get("user-agent", ""), **headers}
    chosen = secret if secret is not None else stack.webhook_secrets[sample.route]
    return sample.body, sample.headers(chosen)


def send_to_eventbridge(stack: Any, stripe_event: dict[str, Any]) -> str:
    """Stripe puts `stripe_event` on the partner bus (the stack has one: `stack.stripe_events.configured`);
    returns EventBridge's event id."""
    event_id = stack.stripe_events.send(stripe_event)
    with stack._settled:
        stack.tally.accepted += 1
    stack.say(f"⇢ stripe {stripe_event.get('type')} {stripe_event.get('id')}: put on {stack.stripe_events.source}")
    return event_id


def banner_lines(stack: Any, shown: Callable[[Path], str]) -> list[str]:
    """What stands in for Apple, Google and Stripe's EventBridge destination."""
    lines = ["", "App stores and EventBridge (devstack/stores, devstack/eventbridge.py):"]
    if stack.stores is not None:
        lines += [
            f"  App Store notifications are signed by a local test chain; the receiver trusts its root "
            f"({shown(stack.stores.apple_root)}) instead of Apple's",
            f"  Google Play pushes carry tokens of a local issuer ({stack.stores.google.certs_url}); the forwarder "
            f"asks the local Play Developer API at {stack.stores.google.url}",
        ]
    if stack.stripe_events is not None and stack.stripe_events.configured:
        lines.append(
            f"  Stripe events put on the partner bus {stack.stripe_events.source} reach {stack.source.queue} "
            "through the template's rule (make demo sends them)"
        )
    return lines


def described(record: dict[str, Any]) -> tuple[tuple[str | None, str | None], str]:
    """((provider, event id), "provider type id") of a queued message: from its attributes, or from the
    EventBridge event it is (Stripe's destination sends no attributes)."""
    attributes = {k: (v or {}).get("stringValue") for k, v in (record.get("messageAttributes") or {}).items()}
    provider, event_type, event_id = (
        attributes.get("provider"),
        attributes.get("event_type"),
        attributes.get("event_id"),
    )
    if not provider:
        try:
            queued = from_record(record)
            provider, event_type, event_id = f"{queued.provider} (EventBridge)", queued.event_type, queued.event_id
        except Exception:  # display only: the forwarder dead-letters what it cannot read
            provider = "?"
    return (provider, event_id), " ".join(str(p) for p in (provider, event_type, event_id) if p)
