"""A local SQS endpoint for `SendMessage` over the JSON protocol, with HTTP keep-alive as SQS has.

moto answers every request with `Connection: close`, so a client measured against it pays a TCP
connect per message that it never pays against SQS. This endpoint only accepts and counts
messages (and their bytes), which is all the receiver's warm-path benchmark needs from SQS.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SqsEndpoint:
    def __init__(self) -> None:
        self.messages = 0
        self.body_bytes = 0
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> SqsEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, target: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if target.endswith(".SendMessage"):
            body = str(request.get("MessageBody", ""))
            with self._lock:
                self.messages += 1
                self.body_bytes += len(body.encode())
            return 200, {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()}  # noqa: S324 (SQS's own checksum)
        if target.endswith(".GetQueueAttributes"):
            return 200, {"Attributes": {"ApproximateNumberOfMessages": str(self.messages)}}
        return 400, {"__type": "com.amazonaws.sqs#UnsupportedOperation", "message": f"{target} is not emulated"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: SqsEndpoint) -> None:
        self.app = app
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as SQS
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        status, payload = self.server.app.answer(self.headers.get("X-Amz-Target", ""), request)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
