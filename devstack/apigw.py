"""API Gateway's HTTP API on 127.0.0.1: the template's routes, payload format 2.0, a function per route.

The receiver verifies signatures on the raw body, so what matters most is that the body reaches
the function exactly as API Gateway would hand it over: plain text only for the content types
API Gateway treats as text, base64 for everything else (a missing content type included).
`http_api_event` is the one place that shape is built; `make event` uses it too.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .aws import ACCOUNT, REGION

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # HTTP API payload quota: 10 MB, not increasable
TEXT_MEDIA_TYPES = ("application/json", "application/xml", "application/javascript")
LOCAL_API_ID = "local"

Invoke = Callable[[dict[str, Any]], Any]


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this content type as text (else base64, `isBase64Encoded`)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in TEXT_MEDIA_TYPES


@dataclass(frozen=True)
class Route:
    """One `Method Path` route of the HttpApi, e.g. `POST /webhooks/{provider}`."""

    method: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, int, int]:
        """How API Gateway ranks routes that match one request: more literal segments first, then fewer greedy
        variables, then a route of the request's own method over `ANY`."""
        parts = [part for part in self.path.split("/") if part]
        literal = sum(1 for part in parts if not part.startswith("{"))
        greedy = sum(1 for part in parts if part.endswith("+}"))
        return (literal, -greedy, 0 if self.method == "ANY" else 1)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when the request matches this route (case-sensitive, like API Gateway)."""
        if self.method not in ("ANY", method.upper()):
            return None
        found = _pattern(self.path).fullmatch(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


def _pattern(path: str) -> re.Pattern[str]:
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            greedy = name.endswith("+")
            regex += f"(?P<{name.rstrip('+')}>{'.+' if greedy else '[^/]+'})"
        else:
            regex += re.escape(part)
    return re.compile(regex)


def http_api_event(
    route: Route,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    path_parameters: dict[str, str],
    source_ip: str = "127.0.0.1",
    domain_name: str | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """The payload-format-2.0 event API Gateway's HTTP API sends a Lambda proxy integration."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "cookie":  # payload 2.0 moves cookies out of the headers
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        joined[lower] = f"{joined[lower]},{value}" if lower in joined else value
    request_id = base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("=")
    domain = domain_name or joined.get("host") or f"{LOCAL_API_ID}.execute-api.{REGION}.amazonaws.com"
    joined.setdefault("host", domain)
    joined.setdefault("content-length", str(len(body)))
    joined.setdefault("x-amzn-trace-id", f"Root=1-{now_ms // 1000:08x}-{uuid.uuid4().hex[:24]}")
    joined.setdefault("x-forwarded-for", source_ip)
    joined.setdefault("x-forwarded-port", "443")
    joined.setdefault("x-forwarded-proto", "https")
    text = is_text(joined.get("content-type"))
    if text:
        try:
            body_text = body.decode("utf-8")
        except UnicodeDecodeError:  # not representable as text: hand over the bytes, as for binary types
            text = False
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    if raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT,
        "apiId": domain.split(".", 1)[0] if ".execute-api." in domain else LOCAL_API_ID,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
        "timeEpoch": now_ms,
    }
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        event["body"] = body_text if text else base64.b64encode(body).decode("ascii")
    event["isBase64Encoded"] = bool(body) and not text
    return event


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str]


def lambda_response(result: Any) -> Response:
    """Payload-format-2.0 response mapping: a dict with `statusCode`, or any JSON value as a 200."""
    if isinstance(result, dict) and "statusCode" in result:
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
        headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        return Response(int(result["statusCode"]), headers, body, [str(c) for c in result.get("cookies") or []])
    return Response(200, {"content-type": "application/json"}, json.dumps(result).encode(), [])


def gateway_error(status: int, message: str) -> Response:
    """API Gateway's own answers (not the function's): `{"message": ...}`."""
    return Response(status, {"content-type": "application/json"}, json.dumps({"message": message}).encode(), [])


@dataclass
class Exchange:
    """One request and its answer, for the stack's console line."""

    method: str
    path: str
    route: Route | None  # None when API Gateway answered itself (no route, payload too large)
    path_parameters: dict[str, str]
    headers: dict[str, str]
    body: bytes
    response: Response
    error: str | None = None  # the function's traceback when it failed


class HttpApi:
    """ThreadingHTTPServer on 127.0.0.1 that serves the routes by invoking their functions in-process.

    Invocations of one function are serialised, as one warm Lambda container handles one request at a time.
    """

    def __init__(
        self,
        routes: Mapping[Route, Invoke],
        *,
        port: int = 0,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.routes = routes
        self.max_payload_bytes = max_payload_bytes
        self.on_exchange = on_exchange
        self._locks = {route: threading.Lock() for route in routes}
        self._httpd = _Server(("127.0.0.1", port), _Handler, self)
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpApi:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="http-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, so only once it was started
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def handle(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> Exchange:
        split = urlsplit(target)
        matching = [(route, route.match(method, split.path)) for route in self.routes]
        ranked = sorted(
            ((route, parameters) for route, parameters in matching if parameters is not None),
            key=lambda pair: pair[0].specificity,
            reverse=True,
        )
        for route, parameters in ranked[:1]:
            invoke = self.routes[route]
            event = http_api_event(
                route,
                method=method,
                raw_path=split.path,
                raw_query=split.query,
                headers=headers,
                body=body,
                path_parameters=parameters,
                source_ip=source_ip,
            )
            try:
                with self._locks[route]:
                    response = lambda_response(invoke(event))
                error = None
            except Exception:  # the function failed: API Gateway answers 500 and the log has the trace
                error = traceback.format_exc()
                response = gateway_error(500, "Internal Server Error")
            return Exchange(method, split.path, route, parameters, event["headers"], body, response, error)
        return Exchange(method, split.path, None, {}, dict(headers), body, gateway_error(404, "Not Found"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], api: HttpApi) -> None:
        self.api = api
        super().__init__(address, handler)


class _TooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "local-http-api"

    def _serve(self) -> None:
        api = self.server.api
        try:
            body = self._read_body(api.max_payload_bytes)
        except (_TooLarge, ValueError) as error:
            self.close_connection = True
            response = (
                gateway_error(413, "Request Entity Too Large")
                if isinstance(error, _TooLarge)
                else gateway_error(400, "Bad Request")
            )
            self._send(response)
            exchange = Exchange(self.command, urlsplit(self.path).path, None, {}, {}, b"", response)
        else:
            headers = [(name, value) for name, value in self.headers.items()]
            exchange = api.handle(self.command, self.path, headers, body, self.client_address[0])
            self._send(exchange.response)
        if api.on_exchange is not None:
            api.on_exchange(exchange)

    # http.server calls do_<METHOD>: these methods are served, the others answered 501.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                length = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                size += length
                if size > limit:
                    raise _TooLarge
                chunks.append(self.rfile.read(length))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > limit:
            raise _TooLarge
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        for cookie in response.cookies:
            self.send_header("set-cookie", cookie)
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the stack prints one line per webhook itself."""
