"""Google's side of Play notifications, locally: an OIDC issuer for Pub/Sub push, and the Play Developer API.

One HTTP server on 127.0.0.1 plays three Google endpoints, each as `google-auth` and the forwarder's
adapter speak to Google:

- `GET /oauth2/v1/certs`: the issuer's X.509 certificates by key id, with `Cache-Control: max-age`, as
  Google publishes the keys of the ID tokens Pub/Sub push sends (GOOGLE_OIDC_CERTS_URL points here);
- `POST /token`: OAuth 2.0's JWT-bearer grant for a service account key (the key's `token_uri`): the
  assertion is checked with google-auth against the key's certificate, an access token comes back;
- `GET /androidpublisher/v3/applications/{package}/purchases/subscriptionsv2/tokens/{token}`,
  `.../purchases/productsv2/tokens/{token}` and `.../orders/{orderId}` (GOOGLE_PLAY_API_URL), serving the
  documents in events/googleplay/play-api/ and what tests add, each checked against Google's published
  discovery document (tests/fixtures/googleplay/, `spec_violations()`), behind the access tokens it issued.

`push_headers()` is the Pub/Sub push sender's part: a fresh RS256 ID token for the push service account.
Keys are RSA 2048 made with `cryptography`, kept in the state directory. Faults: `fail_next(n, status)`.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from ..http_server import LocalServer
from ..template import ROOT

PLAY_API_SAMPLES = ROOT / "events" / "googleplay" / "play-api"
SPEC_PATH = ROOT / "tests" / "fixtures" / "googleplay" / "androidpublisher.v3.extract.json"
ISSUER = "https://accounts.google.com"
PUSH_ACCOUNT = "rtdn-push@revenue-webhooks-local.iam.gserviceaccount.com"
API_ACCOUNT = "play-api@revenue-webhooks-local.iam.gserviceaccount.com"
LOCAL_PACKAGE = "com.example.revenuewebhooks"
# google-auth addresses a service account's assertion to Google's token endpoint whatever its token_uri says.
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
KEYS_MAX_AGE_S = 19_000  # of the order Google's certs endpoint answers
_API = "/androidpublisher/v3/applications/"


@dataclass(frozen=True)
class _Key:
    """An RSA key, its id and a self-signed certificate of it (what Google publishes for its keys)."""

    key_id: str
    private_pem: str
    certificate_pem: str

    @classmethod
    def load_or_generate(cls, path: Path, name: str) -> _Key:
        if path.is_file():
            data = json.loads(path.read_text())
            return cls(data["key_id"], data["private_pem"], data["certificate_pem"])
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        made = cls(
            secrets.token_hex(20),
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            certificate.public_bytes(serialization.Encoding.PEM).decode(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(made.__dict__))
        path.chmod(0o600)
        return made

    def signer(self) -> Any:
        from google.auth import crypt

        return crypt.RSASigner.from_string(self.private_pem, self.key_id)


class GoogleStandIn(LocalServer):
    """The OIDC issuer, the token endpoint and the Play Developer API on one local port."""

    host = "127.0.0.1"
    thread_name = "google-stand-in"

    def __init__(self, state_dir: Path, port: int = 0) -> None:
        super().__init__()
        self.port = port
        self.issuer_key = _Key.load_or_generate(state_dir / "oidc-issuer.json", "Local Google OIDC issuer")
        self.account_key = _Key.load_or_generate(state_dir / "play-api-service-account.json", API_ACCOUNT)
        self.lock = threading.Lock()
        self.documents: dict[str, dict[str, dict[str, Any]]] = {
            kind: json.loads((PLAY_API_SAMPLES / f"{kind}.json").read_text())
            for kind in ("subscriptions", "products", "orders")
        }
        self.access_tokens: set[str] = set()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status), for tests
        self.violations: list[dict[str, str]] = []
        self._faults: list[int] = []
        self._spec = _Spec.load()

    def _handler_and_app(self) -> tuple[type[BaseHTTPRequestHandler], Any]:
        return _Handler, self

    # ---- what the local stack and the tests use ---------------------------------------------------

    @property
    def certs_url(self) -> str:
        return f"{self.url}/oauth2/v1/certs"

    def push_config(self, audience: str, packages: tuple[str, ...] = (LOCAL_PACKAGE,)) -> str:
        """The GooglePlayPushConfig secret for a push subscription to `audience`."""
        return json.dumps(
            {"audience": audience, "service_account_email": PUSH_ACCOUNT, "package_names": list(packages)}
        )

    def push_token(
        self, audience: str, *, email: str = PUSH_ACCOUNT, lifetime_s: int = 3600, issuer: str = ISSUER
    ) -> str:
        """An ID token as Pub/Sub push mints one for its service account (RS256, the issuer's key)."""
        from google.auth import jwt

        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience,
            "azp": "104857610361038475630",
            "email": email,
            "email_verified": True,
            "sub": "104857610361038475630",
            "iat": now,
            "exp": now + lifetime_s,
        }
        return jwt.encode(self.issuer_key.signer(), claims).decode()

    def credentials(self) -> str:
        """The GooglePlayCredentials secret: a service account key whose token_uri is this server."""
        return json.dumps(
            {
                "type": "service_account",
                "project_id": "revenue-webhooks-local",
                "private_key_id": self.account_key.key_id,
                "private_key": self.account_key.private_pem,
                "client_email": API_ACCOUNT,
                "client_id": "113344556677889900112",
                "token_uri": f"{self.url}/token",
            }
        )

    def put(self, kind: str, key: str, document: dict[str, Any]) -> None:
        """Add or replace a subscription (by token), product purchase (by token) or order (by id)."""
        with self.lock:
            self.documents[kind][key] = document

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """The next `count` API requests answer `status` with Google's error body (an outage)."""
        with self.lock:
            self._faults += [status] * count

    def spec_violations(self) -> list[dict[str, str]]:
        with self.lock:
            return list(self.violations)

    # ---- serving ------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        if method == "GET" and path == "/oauth2/v1/certs":
            keys = {self.issuer_key.key_id: self.issuer_key.certificate_pem}
            return 200, {"cache-control": f"public, max-age={KEYS_MAX_AGE_S}, must-revalidate, no-transform"}, keys
        if method == "POST" and path == "/token":
            return self._token(body)
        if method == "GET" and path.startswith(_API):
            return self._api(path, headers)
        return 404, {}, _error(404, "Not Found", "NOT_FOUND")

    def _token(self, body: bytes) -> tuple[int, dict[str, str], Any]:
        from google.auth import jwt

        form = parse_qs(body.decode("utf-8", errors="replace"))
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"] or "assertion" not in form:
            return 400, {}, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(
                form["assertion"][0],
                certs={self.account_key.key_id: self.account_key.certificate_pem},
                audience=TOKEN_AUDIENCE,
            )
        except ValueError as error:
            return 400, {}, {"error": "invalid_grant", "error_description": str(error)[:200]}
        if claims.get("iss") != API_ACCOUNT or "androidpublisher" not in str(claims.get("scope")):
            return 400, {}, {"error": "invalid_scope"}
        token = "ya29.local-" + secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens.add(token)
        return 200, {}, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _api(self, path: str, headers: Any) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            fault = self._faults.pop(0) if self._faults else None
            authorized = (headers.get("authorization") or "").removeprefix("Bearer ") in self.access_tokens
        if fault is not None:
            return fault, {}, _error(fault, "The service is currently unavailable.", "UNAVAILABLE")
        if not authorized:
            return 401, {}, _error(401, "Request is missing required authentication credential.", "UNAUTHENTICATED")
        parts = [unquote(part) for part in path[len(_API) :].split("/")]
        kind, schema, key = None, None, None
        if len(parts) == 5 and parts[1:4] == ["purchases", "subscriptionsv2", "tokens"]:
            kind, schema, key = "subscriptions", "SubscriptionPurchaseV2", parts[4]
        elif len(parts) == 5 and parts[1:4] == ["purchases", "productsv2", "tokens"]:
            kind, schema, key = "products", "ProductPurchaseV2", parts[4]
        elif len(parts) == 3 and parts[1] == "orders":
            kind, schema, key = "orders", "Order", parts[2]
        if kind is None or schema is None or key is None:
            return 404, {}, _error(404, "Not Found", "NOT_FOUND")
        if parts[0] != LOCAL_PACKAGE:
            return 403, {}, _error(403, "The caller does not have permission", "PERMISSION_DENIED")
        with self.lock:
            document = self.documents[kind].get(key)
        if document is None:
            message = "The purchase token was not found." if kind != "orders" else "Order not found."
            return 404, {}, _error(404, message, "NOT_FOUND")
        for where, problem in self._spec.check(schema, document):
            with self.lock:
                self.violations.append({"schema": schema, "where": where, "message": problem})
        return 200, {}, document


def _error(code: int, message: str, status: str) -> dict[str, Any]:
    """Google's JSON error body."""
    return {"error": {"code": code, "message": message, "status": status}}


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        app: GoogleStandIn = self.server.app
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, extra, document = app.answer(method, path, headers, body)
        with app.lock:
            app.requests.append((method, path, status))
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=UTF-8")
        self.send_header("content-length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


class _Spec:
    """Google's discovery schemas as JSON Schema: every field declared, of its declared type, nothing else."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.definitions = {name: self._convert(schema) for name, schema in schemas.items()}

    @classmethod
    def load(cls) -> _Spec:
        return cls(json.loads(SPEC_PATH.read_text())["schemas"])

    def _convert(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return {"$ref": f"#/definitions/{schema['$ref']}"}
        kind = schema.get("type")
        if kind == "object" and "properties" in schema:
            return {
                "type": "object",
                "properties": {name: self._convert(value) for name, value in schema["properties"].items()},
                "additionalProperties": False,
            }
        if kind == "object":
            return {"type": "object"}
        if kind == "array":
            return {"type": "array", "items": self._convert(schema.get("items") or {})}
        converted: dict[str, Any] = {"type": kind} if kind in ("string", "integer", "boolean", "number") else {}
        if kind == "string" and "enum" in schema:
            converted["enum"] = schema["enum"]
        return converted

    def check(self, name: str, document: Any) -> list[tuple[str, str]]:
        from jsonschema import Draft7Validator

        validator = Draft7Validator({"$ref": f"#/definitions/{name}", "definitions": self.definitions})
        return [
            ("/".join(str(p) for p in error.absolute_path), error.message) for error in validator.iter_errors(document)
        ]
