"""The Play Developer API behind the forwarder's `PurchaseLookups` port: purchases and orders, by token.

Authenticated with the service account in the secret `GooglePlayCredentials` (its JSON key) through
`google-auth` (`service_account.Credentials`, `AuthorizedSession`: token exchange, refresh and retries of
the token endpoint are the library's). The REST calls are three GETs of androidpublisher v3, answered as
JSON: `purchases.subscriptionsv2.get`, `purchases.productsv2.getproductpurchasev2` and `orders.get`.
google-api-python-client is not used: it would add httplib2 and the discovery machinery (several MB and
~0.5 s of import) to call three URLs.

Failures are per lookup: a timeout, a connection error, 429 or 5xx is transient (the message is retried);
401/403 (the service account lacks access) is transient too, so the messages wait while an operator fixes
the permission, and dead-letter with the reason when their retries run out; 404/410 (the token is unknown
or too old) is final.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from ..domain.lookups import Found, Lookup, LookupFailed

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
API = "/androidpublisher/v3/applications"
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 3.05, 10.0
CONCURRENCY = 8
_FINAL = (400, 404, 410)


class GooglePlayApi:
    """`PurchaseLookups` for Google Play: what `googleplay.lookups` asks for, fetched concurrently."""

    def __init__(self, credentials_json: Callable[[], str], base_url: str) -> None:
        """`credentials_json` reads the secret (cached by the secrets adapter); `base_url` is Google's API host
        (GOOGLE_PLAY_API_URL: the local stand-in in the local stack)."""
        self._credentials_json = credentials_json
        self._base_url = base_url.rstrip("/")
        self._session: Any = None
        self._session_for = ""
        self._lock = threading.Lock()

    def fetch(self, lookups: Sequence[Lookup]) -> Found:
        try:
            session = self._authorized_session()
        except Exception as error:  # an unreadable key or secret: every lookup waits for an operator
            failure = LookupFailed("play_api_credentials", f"{type(error).__name__}: {error}"[:300])
            return dict.fromkeys(lookups, failure)
        with ThreadPoolExecutor(max_workers=min(CONCURRENCY, max(1, len(lookups)))) as pool:
            documents = list(pool.map(lambda lookup: self._one(session, lookup), lookups))
        return dict(zip(lookups, documents, strict=True))

    # ---- one lookup ---------------------------------------------------------------------------

    def _one(self, session: Any, lookup: Lookup) -> Any:
        package, token = lookup.ids[0], lookup.ids[1]
        if lookup.kind == "subscription":
            purchase = self._get(session, f"{API}/{_q(package)}/purchases/subscriptionsv2/tokens/{_q(token)}")
            if isinstance(purchase, LookupFailed):
                return purchase
            items = purchase.get("lineItems") or [{}]
            order_id = lookup.ids[2] if len(lookup.ids) > 2 else (items[0] or {}).get("latestSuccessfulOrderId")
        elif lookup.kind == "product":
            purchase = self._get(session, f"{API}/{_q(package)}/purchases/productsv2/tokens/{_q(token)}")
            if isinstance(purchase, LookupFailed):
                return purchase
            order_id = lookup.ids[2] if len(lookup.ids) > 2 else purchase.get("orderId")
        else:
            return LookupFailed("unknown_lookup", lookup.kind, transient=False)
        order: Any = {}
        if order_id:
            order = self._get(session, f"{API}/{_q(package)}/orders/{_q(order_id)}")
            if isinstance(order, LookupFailed):
                return order
        return {"purchase": purchase, "order": order}

    def _get(self, session: Any, path: str) -> Any:
        import requests
        from google.auth import exceptions

        try:
            response = session.get(self._base_url + path, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        except (requests.RequestException, exceptions.TransportError, exceptions.RefreshError) as error:
            return LookupFailed("play_api_unavailable", f"{type(error).__name__}: {error}"[:300])
        if response.status_code == 200:
            try:
                document = response.json()
            except ValueError:
                return LookupFailed("play_api_unavailable", f"GET {path}: 200 without JSON")
            return document if isinstance(document, dict) else LookupFailed("play_api_unavailable", "not an object")
        detail = f"GET {path.split('/tokens/')[0]}: {response.status_code} {_message(response)}"[:300]
        if response.status_code in _FINAL:
            return LookupFailed("play_api_not_found", detail, transient=False)
        if response.status_code in (401, 403):
            return LookupFailed("play_api_forbidden", detail)
        return LookupFailed("play_api_unavailable", detail)

    def _authorized_session(self) -> Any:
        """One session per credentials: a rotated key (read every five minutes) builds a new one."""
        raw = self._credentials_json()
        with self._lock:
            if self._session is None or raw != self._session_for:
                import json

                from google.auth.transport.requests import AuthorizedSession
                from google.oauth2 import service_account

                credentials = service_account.Credentials.from_service_account_info(json.loads(raw), scopes=[SCOPE])
                self._session, self._session_for = AuthorizedSession(credentials), raw
            return self._session


def _q(part: str) -> str:
    return quote(part, safe="")


def _message(response: Any) -> str:
    """Google's error message (`{"error": {"message"}}`), never the request."""
    try:
        return str(((response.json() or {}).get("error") or {}).get("message") or "")[:200]
    except ValueError:
        return ""
