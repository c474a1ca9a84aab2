"""The first-party proxy for `mixpanel-browser`: the browser SDK's requests, on the team's own API, to Mixpanel.

Ad blockers drop requests to Mixpanel's hosts; the same requests to the site's own API get through. The SDK
(`api_host: "https://<api>/<prefix>"`) posts to `<prefix>/track/`, `engage/`, `groups/` (and `flags/`,
`record/`, `settings/`, `decide` for features that use them); each is forwarded to the residency's ingestion
host with the visitor's IP in `X-Real-IP` and `X-Forwarded-For`, as Mixpanel's tracking-proxy does, so
geolocation is the visitor's, not the proxy's. What it refuses, and why:

- an origin not in BROWSER_PROXY_ORIGINS (403): CORS alone only hides the answer from a foreign page, the
  request would still be forwarded; the allow-list stops it here (a non-browser client can forge `Origin`,
  but then it could post to Mixpanel with the public project token directly too);
- a path outside the SDK's endpoints (404), a method other than GET, POST or OPTIONS (405);
- a body above BROWSER_PROXY_MAX_BODY_BYTES (413), before anything is sent.

The visitor's cookies for the team's domain and its `X-Forwarded-*` headers are never forwarded: the IP comes
from API Gateway's own view of the connection (`requestContext.http.sourceIp`), not from what the client says.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .. import observability
from ..config import Settings
from .ports import Relay, RelayUnavailable

logger = observability.logger

# The SDK's endpoints (mixpanel-browser DEFAULT_API_ROUTES, plus the older `decide`).
SDK_ENDPOINTS = frozenset({"track", "engage", "groups", "flags", "record", "settings", "decide"})
# Request headers the SDK's requests need upstream; nothing else of the visitor's is forwarded.
FORWARDED_HEADERS = ("content-type", "content-encoding", "accept", "authorization", "user-agent")
PREFLIGHT_MAX_AGE_S = 600


class BrowserProxy:
    """One API Gateway request (payload format 2.0) under `/<prefix>/...` in, Mixpanel's answer out."""

    def __init__(self, settings: Settings, relay: Relay) -> None:
        self.settings = settings
        self.relay = relay
        self.origins = frozenset(settings.browser_proxy_origins)

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        context = event.get("requestContext") or {}
        http = context.get("http") or {}
        method = str(http.get("method") or "").upper()
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        origin = headers.get("origin", "")
        prefix, _, rest = str(event.get("rawPath") or "").lstrip("/").partition("/")
        endpoint = rest.split("/", 1)[0]
        if prefix != self.settings.browser_proxy_prefix or endpoint not in SDK_ENDPOINTS:
            return _answer(404, b'{"message":"Not Found"}')
        if origin not in self.origins:
            logger.info("browser proxy: origin refused", extra={"origin": origin[:200], "endpoint": endpoint})
            return _answer(403, b'{"error":"origin not allowed"}')
        cors = _cors_headers(origin)
        if method == "OPTIONS":
            requested = headers.get("access-control-request-headers", "")
            return _answer(204, b"", {**cors, **_preflight_headers(requested)})
        if method not in ("GET", "POST"):
            return _answer(405, b'{"error":"method not allowed"}', cors)
        try:
            body = _body(event, self.settings.browser_proxy_max_body_bytes)
        except _TooLarge:
            return _answer(413, b'{"error":"request too large"}', cors)
        except (binascii.Error, ValueError):
            return _answer(400, b'{"error":"bad request"}', cors)
        visitor = str(http.get("sourceIp") or "")
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        if visitor:
            forwarded |= {"x-real-ip": visitor, "x-forwarded-for": visitor}
        try:
            status, content_type, answer = self.relay.forward(
                method, f"/{rest}", str(event.get("rawQueryString") or ""), forwarded, body
            )
        except RelayUnavailable as error:
            logger.warning("browser proxy: Mixpanel unreachable", extra={"endpoint": endpoint, "error": str(error)})
            return _answer(502, b'{"error":"upstream unavailable"}', cors)
        return _answer(status, answer, {**cors, "content-type": content_type or "text/plain"})


class _TooLarge(Exception):
    pass


def _body(event: dict[str, Any], limit: int) -> bytes:
    """The request body as bytes, refused above `limit` before it is decoded (base64 is 4/3 of the bytes)."""
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        raise ValueError("body is not a string")
    if len(raw) > limit * 4 // 3 + 4:
        raise _TooLarge
    body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode("utf-8")
    if len(body) > limit:
        raise _TooLarge
    return body


def _cors_headers(origin: str) -> dict[str, str]:
    """The SDK sends with `withCredentials` (its opt-out cookie): an exact origin and credentials allowed."""
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }


def _preflight_headers(requested: str) -> dict[str, str]:
    allowed = ", ".join(name.strip() for name in requested.split(",") if name.strip().lower() in _PREFLIGHT_OK)
    headers = {
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-max-age": str(PREFLIGHT_MAX_AGE_S),
    }
    if allowed:
        headers["access-control-allow-headers"] = allowed
    return headers


# Request headers a page may send to the proxy (the SDK's `xhr_headers` are empty by default; `settings/` sends
# Authorization with the project token).
_PREFLIGHT_OK = frozenset({"content-type", "authorization", "x-requested-with"})


def _answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A payload-format-2.0 response; the body as text when it is UTF-8, else base64."""
    out = {"cache-control": "no-store", "x-content-type-options": "nosniff", **(headers or {})}
    out.setdefault("content-type", "application/json")
    try:
        return {"statusCode": status, "headers": out, "body": body.decode("utf-8"), "isBase64Encoded": False}
    except UnicodeDecodeError:
        return {"statusCode": status, "headers": out, "body": base64.b64encode(body).decode(), "isBase64Encoded": True}
