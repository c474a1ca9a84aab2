"""Keep-alive HTTP/1.1 POSTs to one AWS endpoint: the transport of aws_json.py.

Why by hand: urllib3 costs 0.35-0.45 ms of CPU per small request and `http.client` 0.25 ms, most
of it parsing the answer's headers through `email.message`; a POST of a known length whose answer
is a short JSON document needs a tenth of that (docs/performance.md). This is the whole protocol
the AWS JSON services speak to us: one request per connection at a time, answers framed by
Content-Length or chunked, `Connection: close` honoured, TLS verified against the CA bundle.
What this does not do: proxies, redirects, compression, HTTP/2.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from dataclasses import dataclass
from functools import cache
from typing import BinaryIO
from urllib.parse import urlsplit

MAX_LINE = 65_536
MAX_HEADERS = 100
MAX_BODY = 64 * 1024 * 1024  # DynamoDB answers up to 16 MB (BatchGetItem)


class ProtocolError(OSError):
    """The endpoint's answer is not HTTP/1.1 as we read it; retried as a transport error."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    data: bytes


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb")
        self.timeout: float | None = sock.gettimeout()

    def set_timeout(self, timeout: float) -> None:
        """Only when it changes: every `settimeout` is two `fcntl` system calls."""
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def dropped(self) -> bool:
        """The peer closed (or sent something unasked) while the connection sat idle: readable means unusable."""
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True


class ConnectionPool:
    """Connections to one origin, kept open between calls; thread-safe, at most `maxsize` kept idle."""

    def __init__(self, url: str, *, maxsize: int = 10, ca_bundle: str = "") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("the endpoint is not an http(s) URL")
        self.hostname = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        bracketed = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        self.host = bracketed if default_port else f"{bracketed}:{self.port}"  # the Host header, as signed
        self.maxsize = maxsize
        self.tls = _tls_context(ca_bundle) if parts.scheme == "https" else None
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def post(
        self, path: str, headers: dict[str, str], body: bytes, *, connect_timeout: float, read_timeout: float
    ) -> Response:
        """One POST and its whole answer; `OSError` (timeouts, refusals, TLS, protocol errors) otherwise."""
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if head.count("\n") != len(headers) + 1 or head.count("\r") != len(headers) + 1:
            raise ValueError("a header name or value holds a line break")  # would split the request
        connection = self._checkout(connect_timeout)
        try:
            connection.set_timeout(read_timeout)
            connection.sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body)
            response, keep_alive = _read_response(connection.reader)
        except BaseException:
            connection.close()
            raise
        if keep_alive:
            self._checkin(connection)
        else:
            connection.close()
        return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _checkout(self, connect_timeout: float) -> Connection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._connect(connect_timeout)
            if not connection.dropped():
                return connection
            connection.close()

    def _checkin(self, connection: Connection) -> None:
        with self._lock:
            if len(self._idle) < self.maxsize:
                self._idle.append(connection)
                return
        connection.close()

    def _connect(self, timeout: float) -> Connection:
        sock = socket.create_connection((self.hostname, self.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.hostname)
        except BaseException:
            sock.close()
            raise
        return Connection(sock)


@cache
def _tls_context(ca_bundle: str) -> ssl.SSLContext:
    """Verified TLS 1.2+, against `AWS_CA_BUNDLE` or the bundle botocore would use.

    One per process: loading a CA bundle costs 20-35 ms of CPU, and the receiver's cold start has two
    endpoints (Secrets Manager, SQS) and the forwarder's two or three. A context is safe to share
    between threads and connections.
    """
    if not ca_bundle:
        from botocore.httpsession import get_cert_path

        ca_bundle = str(get_cert_path(True))
    context = ssl.create_default_context(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _read_response(reader: BinaryIO) -> tuple[Response, bool]:
    """The answer to one request, and whether the connection may carry another."""
    while True:  # informational answers (100 Continue, 103 Early Hints) come before the answer
        version, status = _status_line(_line(reader))
        headers = _headers(reader)
        if not 100 <= status < 200:
            break
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        data = _chunked(reader)
    elif "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit() or int(length) > MAX_BODY:
            raise ProtocolError("bad Content-Length")
        data = _exactly(reader, int(length))
    elif status in (204, 304):
        data = b""
    else:  # framed by the end of the connection
        data = reader.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise ProtocolError("answer too large")
        keep_alive = False
    return Response(status, headers, data), keep_alive


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise ProtocolError("connection closed without an answer")
    if len(line) > MAX_LINE:
        raise ProtocolError("line too long")
    return line


def _status_line(line: bytes) -> tuple[str, int]:
    version, _, rest = line.decode("latin-1").partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ProtocolError("not an HTTP/1.x status line")
    return version, int(code)


def _headers(reader: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise ProtocolError("header line without a colon")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    raise ProtocolError("too many headers")


def _exactly(reader: BinaryIO, length: int) -> bytes:
    data = reader.read(length)
    if len(data) != length:
        raise ProtocolError("connection closed inside the answer")
    return data


def _chunked(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise ProtocolError("bad chunk size")
        size = int(size_text, 16)
        if size == 0:
            _headers(reader)  # trailers, then the blank line
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise ProtocolError("answer too large")
        parts.append(_exactly(reader, size))
        if _line(reader) not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk not followed by CRLF")
