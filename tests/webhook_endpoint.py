"""A webhook endpoint on 127.0.0.1 that verifies as the receiver does, with the providers' own code: for the tools' tests."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

from json_server import JsonServer
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain import catalog as catalog
from revenue_webhooks.providers import get_provider
from revenue_webhooks.providers.base import WebhookRejected, WebhookRequest

SENDER = "demo-billing"
SECRETS = {
    "stripe": "whsec_replay_test_secret",
    "shopify": "shpss_replay_test_secret",
    "paddle": "pdl_ntfset_replay_test_secret",
    "lemonsqueezy": "replay-test-secret",
    "revenuecat": "Bearer replay-test-token",
    SENDER: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
# One mapped event type, only so that the Standard Webhooks route exists; replay needs no mapping.
MAPPING = {
    SENDER: {
        "events": {
            "subscription.canceled": {
                "event": catalog.SUBSCRIPTION_CANCELLED,
                "time": "data.time",
                "subscription_id": "data.id",
            }
        }
    }
}


class Endpoint:
    """A webhook endpoint on 127.0.0.1 that verifies every request as the receiver does, and keeps what arrived."""

    def __init__(self, unavailable_first: int = 0) -> None:
        self.settings = from_environ({"STANDARD_WEBHOOKS_MAPPING": json.dumps(MAPPING)})
        self.verified: list[tuple[str, dict[str, str], bytes]] = []
        self.requests = 0
        self.unavailable_first = unavailable_first
        self._lock = threading.Lock()
        self._server = JsonServer(self.handle)
        self.url = f"{self._server.base_url}/webhooks"

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self._lock:
            self.requests += 1
            if self.requests <= self.unavailable_first:
                return 503, {"error": "temporarily unavailable"}
        route = path.rstrip("/").rsplit("/", 1)[-1]
        provider = get_provider(route, self.settings)
        if provider is None:
            return 404, {"error": "unknown provider"}
        request = WebhookRequest(body=body, headers=headers, received_at_ms=int(time.time() * 1000), route=route)
        try:
            provider.verify(request, [SECRETS[route]])
        except WebhookRejected as rejection:
            return rejection.status, {"error": rejection.public}
        with self._lock:
            self.verified.append((route, headers, body))
        return 200, {"status": "accepted"}

    def bodies(self) -> Counter[bytes]:
        return Counter(body for _, _, body in self.verified)

    def close(self) -> None:
        self._server.close()
