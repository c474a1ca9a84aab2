"""The HTTP side of the local Mixpanel: standard-library `http.server`, keep-alive, quick to stop.

Reads a request (Content-Length or chunked, capped), hands a `Request` to the server's dispatch and writes
the `Reply`; nothing here knows Mixpanel's rules.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..http_server import ClosingHTTPServer
from .messages import Reply, Request, import_error
from .rules import MAX_REQUEST_BYTES

log = logging.getLogger(__name__)

# Bodies larger than this are not even read: the connection is answered 413 and closed.
_READ_CAP_BYTES = 64 * 1024 * 1024


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    """Thin adapter: HTTP in, the server's `dispatch`, HTTP out."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind a client Session
    server_version = "devstack-mixpanel/1"
    timeout = 120  # idle keep-alive connections give their thread back eventually
    server: ClosingHTTPServer  # its `app` is the local Mixpanel's dispatch function

    def _serve(self) -> None:
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._send(import_error(True, exc.status, str(exc)))
            return
        request = Request(
            self.command,
            split.path,
            dict(parse_qsl(split.query, keep_blank_values=True)),
            self.headers,
            body,
            self.client_address[0],
        )
        try:
            reply = self.server.app(request)
        except Exception:
            log.exception("local Mixpanel failed on %s %s", self.command, self.path)
            reply = Reply.json(500, {"error": "the local Mixpanel server failed; see its log", "status": 0})
        if reply.disconnect:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(reply)

    # http.server calls do_<METHOD>: these methods are served, the others answered 501.
    do_GET = do_POST = do_PUT = _serve

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > _READ_CAP_BYTES:
                    raise _BodyError(413, f"request exceeds max limit of {MAX_REQUEST_BYTES} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise _BodyError(400, "invalid Content-Length") from exc
        if length > _READ_CAP_BYTES:
            raise _BodyError(413, f"request exceeds max limit of {MAX_REQUEST_BYTES} bytes")
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            if reply.body or reply.status != 204:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.extra_headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. its timeout during a slow fault)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
