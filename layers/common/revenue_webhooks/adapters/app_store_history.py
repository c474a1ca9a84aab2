"""Apple's notification history (App Store Server API, `Get Notification History`), read with Apple's own
`app-store-server-library`: every V2 notification the App Store sent (or tried to send) in a period.

Apple keeps 180 days of history in Production and 30 in Sandbox, answers 20 notifications a page, and pages
with `paginationToken` until `hasMore` is false; dates are Unix milliseconds. The library signs the request
with an App Store Connect API key (issuer id, key id, the `.p8` private key): an ES256 bearer token with
`aud: appstoreconnect-v1` and the app's bundle id (`bid`).

Nothing here trusts what Apple answers: each item's `signedPayload` is a notification exactly as a webhook
carries it, and the caller verifies it as the receiver does (providers/appstore.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..providers._appstore_trust import _library

ENVIRONMENTS = ("Production", "Sandbox")
KEPT_DAYS = {"Production": 180, "Sandbox": 30}  # how far back Apple's history goes
RETRIED_STATUSES = (429, 500, 502, 503, 504)  # Apple's rate limit and its outages: worth another try
ATTEMPTS = 5

# Where the tools read the key (the environment; docs/operations.md, "Backfill: App Store").
ISSUER_ENV = "APPSTORE_ISSUER_ID"
KEY_ID_ENV = "APPSTORE_KEY_ID"
PRIVATE_KEY_ENV = "APPSTORE_PRIVATE_KEY"  # the .p8 file's text
PRIVATE_KEY_FILE_ENV = "APPSTORE_PRIVATE_KEY_FILE"  # or its path
BASE_ENV = "APPSTORE_API_BASE"  # another App Store Server API than Apple's (the local stand-in)


class KeyMissing(ValueError):
    """No usable App Store Connect API key: the message says what to set."""


@dataclass(frozen=True)
class AppStoreKey:
    """An App Store Connect API key ("In-App Purchase" type): who issued it, its id and its private key (PEM)."""

    issuer_id: str
    key_id: str
    private_key: bytes

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AppStoreKey:
        issuer, key_id = environ.get(ISSUER_ENV, "").strip(), environ.get(KEY_ID_ENV, "").strip()
        pem = environ.get(PRIVATE_KEY_ENV, "").strip()
        path = environ.get(PRIVATE_KEY_FILE_ENV, "").strip()
        if not pem and path:
            try:
                pem = Path(path).expanduser().read_text().strip()
            except OSError as error:
                raise KeyMissing(f"{PRIVATE_KEY_FILE_ENV}={path}: {error.strerror}") from None
        missing = [name for name, value in ((ISSUER_ENV, issuer), (KEY_ID_ENV, key_id)) if not value]
        if not pem:
            missing.append(f"{PRIVATE_KEY_FILE_ENV} (or {PRIVATE_KEY_ENV})")
        if missing:
            raise KeyMissing(
                f"no App Store Connect API key: set {', '.join(missing)} "
                "(App Store Connect > Users and Access > Integrations > In-App Purchase)"
            )
        if "BEGIN PRIVATE KEY" not in pem:
            raise KeyMissing(f"the App Store private key is not a .p8 file's PEM text ({PRIVATE_KEY_FILE_ENV})")
        return cls(issuer, key_id, pem.encode())


@dataclass(frozen=True)
class HistoryPage:
    """One answer: the notifications' signed payloads, and the token of the next page (None: the last)."""

    signed_payloads: list[str]
    next_token: str | None


@cache
def _client_class() -> type:
    """Apple's client, able to talk to another base URL.

    The library picks its base URL from the environment (api.storekit.apple.com, the sandbox's) and has no
    option for another one; the local stand-in of the endpoint (devstack/stores/apple_history.py) needs one.
    Its `_get_full_url` is where every request's URL is made, so this subclass overrides that one method and
    nothing else: the token, the headers, the request and the parsing stay Apple's.
    """
    _library()  # puts the library on the path in the Lambda layer
    from appstoreserverlibrary.api_client import AppStoreServerAPIClient

    class _Client(AppStoreServerAPIClient):
        def __init__(self, base_url: str | None, **arguments: Any) -> None:
            super().__init__(**arguments)
            if base_url:
                self._base_url = base_url.rstrip("/")

        def _get_full_url(self, path: str) -> str:
            return str(self._base_url) + path

    return _Client


def history_client(key: AppStoreKey, bundle_id: str, environment: str, base_url: str | None = None) -> Any:
    """Apple's `AppStoreServerAPIClient` for the app in `environment` (Production or Sandbox)."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment {environment!r}: expected one of {ENVIRONMENTS}")
    library = _library()
    return _client_class()(
        base_url,
        signing_key=key.private_key,
        key_id=key.key_id,
        issuer_id=key.issuer_id,
        bundle_id=bundle_id,
        environment=library.Environment(environment),
    )


def read_history(
    client: Any,
    start_ms: int,
    end_ms: int,
    token: str | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[HistoryPage]:
    """The pages of [start_ms, end_ms), from `token` (a page's `next_token`, to resume) or the first.

    Apple's 429 and 5xx answers are retried with a doubling pause; other refusals (a bad key, a period
    beyond the history, an expired token) raise the library's APIException at once.
    """
    from appstoreserverlibrary.api_client import APIException
    from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest

    request = NotificationHistoryRequest(startDate=start_ms, endDate=end_ms)
    while True:
        for attempt in range(ATTEMPTS):
            try:
                answer = client.get_notification_history(token, request)
                break
            except APIException as error:
                if error.http_status_code not in RETRIED_STATUSES or attempt == ATTEMPTS - 1:
                    raise
                sleep(0.5 * 2**attempt)
        payloads = [item.signedPayload for item in answer.notificationHistory or [] if item.signedPayload]
        token = answer.paginationToken if answer.hasMore else None
        yield HistoryPage(payloads, token)
        if token is None:
            return


def webhook_body(signed_payload: str) -> bytes:
    """The body Apple POSTs for a notification: what the receiver verifies and the forwarder maps."""
    return json.dumps({"signedPayload": signed_payload}, separators=(",", ":")).encode()
