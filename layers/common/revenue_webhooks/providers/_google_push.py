"""Who may push Google Play notifications: Pub/Sub's OIDC token, checked with `google-auth`.

A push subscription with authentication sends `Authorization: Bearer <JWT>`, an RS256 ID token signed by
Google for the subscription's service account. `google.oauth2.id_token.verify_token` checks its signature
against Google's published keys, its expiry and its audience; this module adds the issuer, the service
account's e-mail (and that Google verified it) and the app's package name, from the secret
`GooglePlayPushConfig`. Google's keys are fetched once and kept for as long as Google's `Cache-Control`
says (hours), so a warm receiver verifies without a request; `google-auth` is imported on the first
Google Play webhook of a container, never on another route's cold start.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from .base import SignatureInvalid, WebhookRejected

ISSUERS = ("accounts.google.com", "https://accounts.google.com")  # what Pub/Sub's tokens carry
CLOCK_SKEW_S = 10
KEYS_TIMEOUT_S = 3.0
KEYS_MIN_AGE_S, KEYS_MAX_AGE_S = 60, 6 * 3600


class KeysUnavailable(WebhookRejected):
    """Google's keys could not be fetched: nothing can be verified now; Pub/Sub retries a non-2xx push."""

    status = 503
    public = "temporarily unavailable"


@dataclass(frozen=True)
class PushConfig:
    """The secret `GooglePlayPushConfig`: the push subscription's audience and service account, the app(s)."""

    audience: str
    service_account_email: str
    package_names: tuple[str, ...]

    @classmethod
    def from_secret(cls, raw: str) -> PushConfig:
        try:
            data = json.loads(raw)
        except ValueError:
            raise SignatureInvalid("GooglePlayPushConfig is not JSON") from None
        if not isinstance(data, dict):
            raise SignatureInvalid("GooglePlayPushConfig: expected a JSON object")
        values = {}
        for name in ("audience", "service_account_email"):
            value = data.get(name)
            if not isinstance(value, str) or not value.strip():
                raise SignatureInvalid(f"GooglePlayPushConfig.{name} is required")
            values[name] = value.strip()
        packages = data.get("package_names", data.get("package_name"))
        packages = [packages] if isinstance(packages, str) else packages
        if not isinstance(packages, list) or not packages or not all(isinstance(p, str) and p for p in packages):
            raise SignatureInvalid("GooglePlayPushConfig.package_names: expected the app's package name(s)")
        return cls(values["audience"], values["service_account_email"], tuple(packages))


def verify_push(authorization: str | None, secrets: Sequence[str], certs_url: str) -> PushConfig:
    """Check the push's OIDC token; returns the configuration it was checked against."""
    if not secrets:
        raise SignatureInvalid("GooglePlayPushConfig is not set")
    config = PushConfig.from_secret(secrets[0])
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureInvalid("missing Authorization: Bearer token")
    claims = _verified_claims(token.strip(), config.audience, certs_url)
    if claims.get("iss") not in ISSUERS:
        raise SignatureInvalid("token issuer is not Google")
    if claims.get("email") != config.service_account_email or claims.get("email_verified") is not True:
        raise SignatureInvalid("token is not the push subscription's service account")
    return config


def _verified_claims(token: str, audience: str, certs_url: str) -> dict[str, Any]:
    library = _library()
    try:
        claims = library.id_token.verify_token(
            token, _keys_request(certs_url), audience=audience, certs_url=certs_url, clock_skew_in_seconds=CLOCK_SKEW_S
        )
    except library.TransportError:
        raise KeysUnavailable("Google's token keys could not be fetched") from None
    except (ValueError, library.GoogleAuthError) as error:
        # google-auth's messages name the claim that failed (audience, expiry, signature), never the token.
        raise SignatureInvalid(f"push token refused: {str(error)[:160]}") from None
    if not isinstance(claims, dict):
        raise SignatureInvalid("push token has no claims")
    return claims


def prepare() -> None:
    """Load google-auth ahead (SnapStart's snapshot), when no webhook waits for it."""
    _library()


@dataclass(frozen=True)
class _Library:
    id_token: Any
    Request: Any  # google.auth.transport.Request, the interface verify_token calls
    RequestsRequest: Any
    TransportError: type[Exception]
    GoogleAuthError: type[Exception]


@cache
def _library() -> _Library:
    import google.auth.transport
    import google.auth.transport.requests
    from google.auth import exceptions
    from google.oauth2 import id_token

    return _Library(
        id_token,
        google.auth.transport.Request,
        google.auth.transport.requests.Request,
        exceptions.TransportError,
        exceptions.GoogleAuthError,
    )


@cache
def _keys_request(certs_url: str) -> Any:
    """google-auth's `Request` over `requests`, answering GETs of Google's key document from a cache."""
    library = _library()
    inner = library.RequestsRequest()
    lock = threading.Lock()
    kept: dict[str, tuple[float, Any]] = {}

    class KeysRequest(library.Request):  # type: ignore[name-defined]
        def __call__(
            self,
            url: str,
            method: str = "GET",
            body: Any = None,
            headers: Any = None,
            timeout: Any = None,
            **kwargs: Any,
        ) -> Any:
            if method != "GET" or url != certs_url:
                return inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
            with lock:
                entry = kept.get(url)
                if entry and entry[0] > time.monotonic():
                    return entry[1]
            response = inner(url, method="GET", headers=headers, timeout=timeout or KEYS_TIMEOUT_S, **kwargs)
            if response.status == 200:
                with lock:
                    kept[url] = (time.monotonic() + _max_age(response.headers), response)
            return response

    return KeysRequest()


def _max_age(headers: Any) -> float:
    """Seconds Google says its keys may be kept (`Cache-Control: max-age`), within sane bounds."""
    match = re.search(
        r"max-age=(\d+)", str((headers or {}).get("cache-control") or (headers or {}).get("Cache-Control") or "")
    )
    age = int(match.group(1)) if match else KEYS_MIN_AGE_S
    return float(min(max(age, KEYS_MIN_AGE_S), KEYS_MAX_AGE_S))
