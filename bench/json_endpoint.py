"""The HTTP scaffold of the benchmarks' AWS stand-ins: keep-alive JSON-protocol requests to `answer`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonEndpoint:
    """Serves `answer(target, request) -> (status, payload)` on 127.0.0.1, as AWS's JSON protocol does."""

    def __init__(self) -> None:
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> JsonEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, target: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: JsonEndpoint) -> None:
        self.app = app
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as AWS endpoints
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        status, payload = self.server.app.answer(self.headers.get("X-Amz-Target", ""), request)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        # Headers and body in one write, as AWS's endpoints answer a small request: two writes would
        # cost the client a second read (and its system calls) that it never makes against AWS.
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass
