"""Sign a provider payload the way the provider does, for the local stack, replays and tests.

Each function returns the headers a real delivery would carry. The receiver verifies them
with the provider's own scheme (the official `stripe` and `standardwebhooks` libraries
where they exist), so a signature made here proves nothing the receiver did not check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable


def stripe(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json; charset=utf-8", "stripe-signature": f"t={ts},v1={signature}"}


def shopify(body: bytes, secret: str, timestamp: int | None = None, *, topic: str = "orders/paid") -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "content-type": "application/json",
        "x-shopify-hmac-sha256": digest,
        "x-shopify-topic": topic,
        "x-shopify-event-id": str(uuid.uuid5(uuid.NAMESPACE_URL, hashlib.sha256(body).hexdigest() + topic)),
        "x-shopify-triggered-at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts)),
        "x-shopify-webhook-id": str(uuid.uuid5(uuid.NAMESPACE_OID, hashlib.sha256(body).hexdigest())),
        "x-shopify-shop-domain": "demo-shop.myshopify.com",
        "x-shopify-api-version": "2025-07",
    }


def paddle(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "paddle-signature": f"ts={ts};h1={signature}"}


def lemonsqueezy(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "x-signature": signature}
    try:
        name = json.loads(body).get("meta", {}).get("event_name")
    except (ValueError, AttributeError):
        name = None
    if name:
        headers["x-event-name"] = str(name)
    return headers


def revenuecat(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    return {"content-type": "application/json", "authorization": secret}


def standard_webhooks(
    body: bytes, secret: str, timestamp: int | None = None, *, message_id: str | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    msg_id = message_id or "msg_" + hashlib.sha256(body).hexdigest()[:24]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{ts}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1,{signature}",
    }


SIGNERS: dict[str, Callable[..., dict[str, str]]] = {
    "stripe": stripe,
    "shopify": shopify,
    "paddle": paddle,
    "lemonsqueezy": lemonsqueezy,
    "revenuecat": revenuecat,
}


def sign(provider: str, body: bytes, secret: str, timestamp: int | None = None, **options: str) -> dict[str, str]:
    """Headers for `body` as `provider` would send it; any other route is a Standard Webhooks sender."""
    signer = SIGNERS.get(provider, standard_webhooks)
    return signer(body, secret, timestamp, **options)
