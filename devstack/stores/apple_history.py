"""A local stand-in of Apple's `Get Notification History` (`POST /inApps/v1/notifications/history`), on 127.0.0.1.

It holds notifications "the App Store sent" (signed with the local chain, devstack/stores/apple.py) and answers
as Apple documents it (developer.apple.com/documentation/appstoreserverapi/get-notification-history, and the
`app-store-server-library`'s models NotificationHistoryRequest/NotificationHistoryResponse as the schema):

- the bearer token must be the App Store Connect API key's: ES256 with the key's `kid`, `iss` the issuer id,
  `aud` `appstoreconnect-v1`, `bid` the app's bundle id, an `exp` at most an hour ahead; else 401;
- the body needs `startDate` and `endDate` (Unix ms), `startDate` before `endDate` and within the history
  (180 days, 30 in Sandbox); else 400 with Apple's `errorCode` (4000012-4000016);
- an answer holds at most 20 records, oldest first, with `hasMore`, and `paginationToken` when there are more;
  the token is only good for the same request body (else 4000014 InvalidPaginationTokenError);
- `fail_next(n, status)` makes the next answers fail (429 is Apple's RateLimitExceededError 4290000).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.http_server import LocalServer

from .apple import LOCAL_BUNDLE_ID, Chain

PATH = "/inApps/v1/notifications/history"
PAGE_SIZE = 20  # Apple's
KEPT_DAYS = 180
AUDIENCE = "appstoreconnect-v1"
ISSUER_ID = "57246542-96fe-1a63-e053-0824d011072a"  # the form of Apple's sample issuer id
KEY_ID = "LOCAL2X9R4"
REQUEST_FIELDS = {"startDate", "endDate", "notificationType", "notificationSubtype", "transactionId", "onlyFailures"}
ERRORS = {
    "GeneralBadRequestError": 4000000,
    "StartDateTooFarInPastError": 4000012,
    "StartDateAfterEndDateError": 4000013,
    "InvalidPaginationTokenError": 4000014,
    "InvalidStartDateError": 4000015,
    "InvalidEndDateError": 4000016,
    "RateLimitExceededError": 4290000,
    "GeneralInternalError": 5000000,
}


@dataclass(frozen=True)
class _Sent:
    signed_date_ms: int
    signed_payload: str
    first_attempt_failed: bool


class AppleHistoryStandIn(LocalServer):
    """Apple's notification history for the local app, and the API key it accepts."""

    host = "127.0.0.1"
    thread_name = "apple-history-stand-in"

    def __init__(self, chain: Chain, *, bundle_id: str = LOCAL_BUNDLE_ID, page_size: int = PAGE_SIZE) -> None:
        super().__init__()
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.port = 0
        self.chain = chain
        self.bundle_id = bundle_id
        self.page_size = page_size
        key = ec.generate_private_key(ec.SECP256R1())
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.public_key = key.public_key()
        self.lock = threading.Lock()
        self.history: list[_Sent] = []
        self.requests: list[tuple[int, dict[str, Any]]] = []  # (status, request body), for tests
        self._faults: list[int] = []

    def _handler_and_app(self) -> tuple[type[BaseHTTPRequestHandler], Any]:
        return _Handler, self

    # ---- what the tests and the local stack use ------------------------------------------------

    def key_environment(self, key_file: str) -> dict[str, str]:
        """What the backfill is told: the API key (written to `key_file`) and this endpoint."""
        with open(key_file, "w") as file:
            file.write(self.private_key_pem)
        return {
            "APPSTORE_ISSUER_ID": ISSUER_ID,
            "APPSTORE_KEY_ID": KEY_ID,
            "APPSTORE_PRIVATE_KEY_FILE": key_file,
            "APPSTORE_API_BASE": self.url,
        }

    def sent(self, notification: dict[str, Any], *, delivered: bool = False) -> str:
        """Record a decoded notification as sent by the App Store (signed with the chain); its signedPayload."""
        body = json.loads(self.chain.notification_body(notification))
        return self.sent_signed(body["signedPayload"], int(notification["signedDate"]), delivered=delivered)

    def sent_signed(self, signed_payload: str, signed_date_ms: int, *, delivered: bool = False) -> str:
        """Record a signed payload as it is (a forged one, for a test)."""
        with self.lock:
            self.history.append(_Sent(signed_date_ms, signed_payload, not delivered))
            self.history.sort(key=lambda sent: sent.signed_date_ms)
        return signed_payload

    def fail_next(self, count: int, status: int = 429) -> None:
        with self.lock:
            self._faults.extend([status] * count)

    def clear(self) -> None:
        with self.lock:
            self.history.clear()
            self.requests.clear()
            self._faults.clear()

    # ---- the endpoint --------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        status, document, request = self._answer(method, path, query, headers, body)
        with self.lock:
            self.requests.append((status, request))
        return status, document

    def _answer(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, Any]]:
        if method != "POST" or path != PATH:
            return 404, _error("GeneralBadRequestError", "not an endpoint of this stand-in"), {}
        if not self._authorized(headers.get("authorization", "")):
            return 401, None, {}  # Apple answers 401 with no body
        with self.lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault:
            name = "RateLimitExceededError" if fault == 429 else "GeneralInternalError"
            return fault, _error(name, "fault injected by the test"), {}
        try:
            request = json.loads(body)
        except ValueError:
            return 400, _error("GeneralBadRequestError", "the body is not JSON"), {}
        if not isinstance(request, dict) or set(request) - REQUEST_FIELDS:
            return 400, _error("GeneralBadRequestError", "unknown fields in NotificationHistoryRequest"), {}
        start, end = request.get("startDate"), request.get("endDate")
        if not isinstance(start, int) or isinstance(start, bool):
            return 400, _error("InvalidStartDateError", "startDate is required, in milliseconds"), request
        if not isinstance(end, int) or isinstance(end, bool):
            return 400, _error("InvalidEndDateError", "endDate is required, in milliseconds"), request
        now_ms = int(time.time() * 1000)
        if start < now_ms - KEPT_DAYS * 86_400_000:
            return 400, _error("StartDateTooFarInPastError", "startDate is more than 180 days ago"), request
        if start >= end:
            return 400, _error("StartDateAfterEndDateError", "startDate is not before endDate"), request
        end = min(end, now_ms)  # Apple: an endDate in the future is taken as now
        fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
        offset = 0
        token = _query_value(query, "paginationToken")
        if token is not None:
            try:
                given_fingerprint, given_offset = base64.urlsafe_b64decode(token.encode()).decode().split(":")
                offset = int(given_offset)
            except ValueError:
                return 400, _error("InvalidPaginationTokenError", "unknown paginationToken"), request
            if given_fingerprint != fingerprint:
                return 400, _error("InvalidPaginationTokenError", "the token is for another request"), request
        with self.lock:
            chosen = [
                sent
                for sent in self.history
                if start <= sent.signed_date_ms < end and (sent.first_attempt_failed or not request.get("onlyFailures"))
            ]
        page = chosen[offset : offset + self.page_size]
        more = offset + self.page_size < len(chosen)
        document: dict[str, Any] = {
            "hasMore": more,
            "notificationHistory": [
                {
                    "signedPayload": sent.signed_payload,
                    "sendAttempts": [
                        {
                            "attemptDate": sent.signed_date_ms + 1000,
                            "sendAttemptResult": "NO_RESPONSE" if sent.first_attempt_failed else "SUCCESS",
                        }
                    ],
                }
                for sent in page
            ],
        }
        if more:
            document["paginationToken"] = base64.urlsafe_b64encode(
                f"{fingerprint}:{offset + self.page_size}".encode()
            ).decode()
        return 200, document, request

    def _authorized(self, authorization: str) -> bool:
        """The App Store Connect API's token rules (ES256, kid, iss, aud, bid, exp within an hour)."""
        import jwt

        if not authorization.startswith("Bearer "):
            return False
        token = authorization.removeprefix("Bearer ")
        try:
            if jwt.get_unverified_header(token).get("kid") != KEY_ID:
                return False
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=ISSUER_ID,
                options={"require": ["exp", "iss", "aud", "bid"]},
            )
        except jwt.PyJWTError:
            return False
        return claims.get("bid") == self.bundle_id and int(claims["exp"]) <= time.time() + 3600


def _error(name: str, message: str) -> dict[str, Any]:
    return {"errorCode": ERRORS[name], "errorMessage": message}


def _query_value(query: str, name: str) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(query).get(name)
    return values[0] if values else None


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        app: AppleHistoryStandIn = self.server.app
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, document = app.answer(method, path, query, headers, body)
        data = b"" if document is None else json.dumps(document).encode()
        self.send_response(status)
        if document is not None:
            self.send_header("content-type", "application/json")  # exactly: the library checks it on errors
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")
