"""Keep-alive HTTP/1.1 POSTs to one AWS endpoint: the transport of aws_json.py.

Why by hand: urllib3 costs 0.35-0.45 ms of CPU per small request and `http.client` 0.25 ms, most
of it parsing the answer's headers through `email.message`; a POST of a known length whose answer
is a short JSON document needs a tenth of that (docs/performance.md). This is the whole protocol
the AWS JSON services speak to us (RFC 9112 framing): one request per connection at a time,
answers framed by Content-Length, chunked or the connection's end, informational answers skipped,
`Connection: close` and HTTP/1.0 honoured, TLS 1.2+ verified against the CA bundle, and every call
inside its deadline, connecting included. A connection is reused only when its answer ended
exactly where its framing said. What this does not do: proxies, redirects, compression, HTTP/2;
name resolution (`getaddrinfo`) has no timeout of its own.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

MAX_LINE = 65_536
MAX_HEADERS = 100
MAX_BODY = 64 * 1024 * 1024  # DynamoDB answers up to 16 MB (BatchGetItem)
RECV_BYTES = 65_536
_HEX = frozenset(b"0123456789abcdefABCDEF")


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
        self.timeout: float | None = sock.gettimeout()

    def set_timeout(self, timeout: float) -> None:
        """Only when it changes: every `settimeout` is two `fcntl` system calls."""
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout

    def close(self) -> None:
        self.sock.close()

    def dropped(self) -> bool:
        """The peer closed (or sent something unasked) while the connection sat idle: readable means unusable."""
        try:
            if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                return True
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
        self.path = parts.path.rstrip("/") + "/"  # what is posted to, and signed
        self.maxsize = maxsize
        self.tls = _tls_context(ca_bundle) if parts.scheme == "https" else None
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def post(
        self,
        path: str,
        headers: dict[str, str],
        body: bytes,
        *,
        deadline: float,
        connect_timeout: float,
        read_timeout: float,
    ) -> Response:
        """One POST and its whole answer by `deadline` (`time.monotonic()`); each connect and each read
        also within its own timeout. `OSError` (timeouts, refusals, TLS, protocol errors) otherwise."""
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if head.count("\n") != len(headers) + 1 or head.count("\r") != len(headers) + 1:
            raise ValueError("a header name or value holds a line break")  # would split the request
        request = f"{head}Accept-Encoding: identity\r\nContent-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        connection, reused = self._checkout(deadline, connect_timeout)
        reader = _AnswerReader(connection, deadline, read_timeout)
        try:
            connection.set_timeout(min(read_timeout, _remaining(deadline)))
            connection.sock.sendall(request)
            response, keep_alive = _read_response(reader)
        except BaseException as error:
            connection.close()
            if reused and not reader.received and isinstance(error, OSError):
                # Refused before a byte came back on a connection from the pool: a NAT or a long freeze of
                # the process forgot it, and the others sat idle as long. The next attempt connects afresh.
                self.close()
            raise
        if keep_alive and not reader.leftover():
            self._checkin(connection)
        else:
            connection.close()
        return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _checkout(self, deadline: float, connect_timeout: float) -> tuple[Connection, bool]:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._connect(deadline, connect_timeout), False
            if not connection.dropped():
                return connection, True
            connection.close()

    def _checkin(self, connection: Connection) -> None:
        with self._lock:
            if len(self._idle) < self.maxsize:
                self._idle.append(connection)
                return
        connection.close()

    def _connect(self, deadline: float, connect_timeout: float) -> Connection:
        """Each address in turn (as `socket.create_connection`), all of them within the deadline."""
        failure: OSError | None = None
        for family, kind, proto, _, address in socket.getaddrinfo(self.hostname, self.port, type=socket.SOCK_STREAM):
            if deadline <= time.monotonic():
                break
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(min(connect_timeout, _remaining(deadline)))  # the TLS handshake's too
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.connect(address)
                if self.tls is not None:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.hostname)
                return Connection(sock)
            except OSError as error:
                sock.close()
                failure = error
        raise failure or TimeoutError("no connection within the time budget")


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


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no whole answer within the time budget")
    return remaining


class _AnswerReader:
    """The bytes of one answer, each read within the read timeout and all of them by the deadline.

    A new one per request, so nothing an earlier answer left behind is ever read as this one's.
    """

    def __init__(self, connection: Connection, deadline: float, read_timeout: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self.read_timeout = read_timeout
        self.buffer = bytearray()
        self.received = 0

    def leftover(self) -> bool:
        """Bytes past the end of the answer: the connection's state is unknown, so it is not reused."""
        sock = self.connection.sock
        return bool(self.buffer) or (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0)

    def fill(self) -> bool:
        """More bytes into the buffer; False at the end of the connection."""
        self.connection.set_timeout(min(self.read_timeout, _remaining(self.deadline)))
        chunk = self.connection.sock.recv(RECV_BYTES)
        self.received += len(chunk)
        self.buffer += chunk
        return bool(chunk)

    def line(self) -> bytes:
        scanned = 0
        while True:
            end = self.buffer.find(b"\n", scanned)
            if end >= 0:
                if end >= MAX_LINE:
                    raise ProtocolError("line too long")
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return line
            scanned = len(self.buffer)
            if scanned > MAX_LINE:
                raise ProtocolError("line too long")
            if not self.fill():
                raise ProtocolError(
                    "connection closed inside the answer" if self.received else "connection closed without an answer"
                )

    def exactly(self, length: int) -> bytes:
        while len(self.buffer) < length:
            if not self.fill():
                raise ProtocolError("connection closed inside the answer")
        data = bytes(self.buffer[:length])
        del self.buffer[:length]
        return data

    def to_end(self) -> bytes:
        while self.fill():
            if len(self.buffer) > MAX_BODY:
                raise ProtocolError("answer too large")
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _read_response(reader: _AnswerReader) -> tuple[Response, bool]:
    """The answer to one request, and whether the connection may carry another (RFC 9112, section 6.3)."""
    while True:  # informational answers (100 Continue, 103 Early Hints) come before the answer
        version, status = _status_line(reader.line())
        headers = _headers(reader)
        if not 100 <= status < 200:
            break
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    transfer_encoding = headers.get("transfer-encoding")
    if transfer_encoding is not None:
        # Framed by the last coding: chunked, or the connection's end. Beside a Content-Length, or in
        # HTTP/1.0, the framing is suspect, so the connection is not reused.
        keep_alive = keep_alive and "content-length" not in headers and version == "HTTP/1.1"
        if transfer_encoding.rsplit(",", 1)[-1].strip().lower() == "chunked":
            return Response(status, headers, _chunked(reader)), keep_alive
        return Response(status, headers, reader.to_end()), False
    if status in (204, 304):
        return Response(status, headers, b""), keep_alive
    if "content-length" in headers:
        return Response(status, headers, reader.exactly(_content_length(headers["content-length"]))), keep_alive
    return Response(status, headers, reader.to_end()), False


def _status_line(line: bytes) -> tuple[str, int]:
    version, _, rest = line.rstrip(b"\r\n").decode("latin-1").partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not (code.isascii() and code.isdecimal()) or rest[3:4] not in ("", " "):
        raise ProtocolError("not an HTTP/1.x status line")
    return version, int(code)


def _headers(reader: _AnswerReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = ""
    for _ in range(MAX_HEADERS + 1):
        line = reader.line().decode("latin-1")
        if line in ("\r\n", "\n"):
            return headers
        if line[0] in " \t":  # obs-fold: the previous field's value goes on (RFC 9112, section 5.2)
            if not last:
                raise ProtocolError("a folded line before any header")
            headers[last] = f"{headers[last]} {line.strip()}"
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ProtocolError("header line without a colon, or with space around its name")
        last = name.lower()
        value = value.strip()
        headers[last] = f"{headers[last]}, {value}" if last in headers else value
    raise ProtocolError("too many headers")


def _content_length(field: str) -> int:
    """One length, or the same one repeated (`2, 2`); anything else cannot frame the answer."""
    lengths = {part.strip() for part in field.split(",")}
    length = lengths.pop() if len(lengths) == 1 else ""
    if not (length.isascii() and length.isdecimal()) or int(length) > MAX_BODY:
        raise ProtocolError("bad Content-Length")
    return int(length)


def _chunked(reader: _AnswerReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = reader.line().split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or not _HEX.issuperset(size_text):
            raise ProtocolError("bad chunk size")
        size = int(size_text, 16)
        if size == 0:
            _headers(reader)  # trailers, then the blank line
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise ProtocolError("answer too large")
        parts.append(reader.exactly(size))
        if reader.line() not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk not followed by CRLF")
