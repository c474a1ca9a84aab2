"""The sample webhooks in `events/<route>/<name>.json`, and how each is signed.

A sample file is the provider's body exactly as it would be delivered; what a provider puts in
headers instead of the body (Shopify's topic) comes from the file name, so one file is one
delivery. `make demo`, `make event` and the local stack's console all read samples through here.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revenue_webhooks.providers import sign, specs

from ops.arguments import secret_variable

from .template import ROOT

EVENTS_DIR = ROOT / "events"
SQS_DIR = "sqs"  # `events/sqs/`: Lambda SQS events for the forwarder, not webhooks
_PLACEHOLDER_SECRET = "whsec_" + base64.b64encode(bytes(24)).decode()  # valid for every scheme, verifies nothing


@dataclass(frozen=True)
class Sample:
    route: str  # the `{provider}` path segment: a provider, or a Standard Webhooks sender
    name: str  # the file name without `.json`
    path: Path

    @property
    def body(self) -> bytes:
        """The delivery's bytes (without the trailing newline an editor adds to a file)."""
        data = self.path.read_bytes()
        return data[:-1] if data.endswith(b"\n") else data

    def sign_options(self) -> dict[str, str]:
        """What the file name says that the provider sends in a header (Shopify's topic: orders.paid.json)."""
        spec = specs().get(self.route)
        return spec.sample_options(self.name) if spec else {}

    def headers(self, secret: str, timestamp: int | None = None) -> dict[str, str]:
        """Fresh signature headers, as the provider would send them now (or at `timestamp`)."""
        headers = sign(self.route, self.body, secret, timestamp, **self.sign_options())
        spec = specs().get(self.route)
        return {"user-agent": spec.user_agent if spec else "Standard-Webhooks", **headers}

    def unverified_headers(self) -> dict[str, str]:
        """Headers as delivered, signed with a placeholder: enough for a provider to parse, never to verify."""
        return self.headers(_PLACEHOLDER_SECRET)


def samples(route: str | None = None, directory: Path = EVENTS_DIR) -> list[Sample]:
    """Every webhook sample, by route then name (`events/sqs/` excluded)."""
    found = []
    for folder in sorted(p for p in directory.iterdir() if p.is_dir() and p.name != SQS_DIR):
        if route is not None and folder.name != route:
            continue
        found += [Sample(folder.name, path.stem, path) for path in sorted(folder.glob("*.json"))]
    return found


def find(route: str, name: str, directory: Path = EVENTS_DIR) -> Sample:
    """One sample by route and name (or a path to any file), with the choices in the error."""
    as_path = Path(name)
    if as_path.suffix == ".json" and as_path.is_file():
        return Sample(route, as_path.stem, as_path)
    for sample in samples(route, directory):
        if sample.name == name:
            return sample
    routes = sorted({s.route for s in samples(directory=directory)})
    if route not in routes:
        raise LookupError(f"no provider {route!r} has samples in events/; the providers: {', '.join(routes)}")
    choices = ", ".join(s.name for s in samples(route, directory))
    raise LookupError(f"no sample events/{route}/{name}.json; the samples for {route}: {choices}")


def secret_from(environ: Mapping[str, str], route: str) -> str | None:
    """The route's signing secret from the environment (STRIPE_WEBHOOK_SECRET...), or None."""
    return environ.get(secret_variable(route), "").strip() or None


def describe(route: str, body: bytes, headers: Mapping[str, str], settings: Any) -> tuple[str, str]:
    """(event type, event id) of a delivery as the provider's own parser reads it, or ("", "") when it cannot."""
    import time

    from revenue_webhooks.providers import get_provider
    from revenue_webhooks.providers.base import WebhookRequest

    try:
        provider = get_provider(route, settings)
        if provider is None:
            return "", ""
        lower = {k.lower(): v for k, v in headers.items()}
        parsed = provider.parse(WebhookRequest(body, lower, int(time.time() * 1000), route))
    except Exception:  # display only: an unparsable body is the receiver's to refuse
        return "", ""
    return parsed.event_type, parsed.event_id
