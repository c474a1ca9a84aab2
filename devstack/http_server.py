"""The local servers' HTTP server: daemon threads, and a stop that closes keep-alive connections.

`http.server`'s ThreadingHTTPServer waits on idle keep-alive connections at shutdown; every local stand-in
(the local Mixpanel, the Stripe API) needs them cut instead.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class ClosingHTTPServer(ThreadingHTTPServer):
    """Daemon handler threads, and stop() closes keep-alive connections instead of waiting on them.

    `app` is whatever the server's handler calls (the stand-in itself, or its dispatch function).
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        app: Any,
        *,
        sock: socket.socket | None = None,
    ) -> None:
        """Bind `address`, or serve `sock`, a socket already bound and listening (devstack.bridge)."""
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler, bind_and_activate=sock is None)
        if sock is not None:
            self.socket.close()
            self.socket = sock
            self.server_address = sock.getsockname()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class LocalServer:
    """Start/stop of a local stand-in served by `ClosingHTTPServer` on a daemon thread, on loopback.

    A subclass sets `host`, `port` (0: any free one) and `thread_name`, and says which handler class serves it
    and what the handler's `server.app` is (`_handler_and_app`). stop() wakes whatever waits on `_stopping`
    (latencies, slow faults) and closes open connections; start() after stop() reuses the same port.
    """

    host: str
    port: int
    thread_name = "local-server"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._httpd: ClosingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._more: list[tuple[ClosingHTTPServer, threading.Thread]] = []

    def _handler_and_app(self) -> tuple[type[BaseHTTPRequestHandler], Any]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:3001."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Bind and serve on a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        handler, app = self._handler_and_app()
        self._httpd = ClosingHTTPServer((self.host, self.port), handler, app)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.thread_name}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: wake sleeping latencies and slow faults, close open connections. Data stays readable."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        for server, thread in [(httpd, self._thread), *self._more]:
            server.shutdown()
            server.close_connections()
            server.server_close()
            if thread is not None:
                thread.join(timeout=5)
        self._more.clear()

    def listen_also(self, sock: socket.socket) -> None:
        """Serve on another listening socket as well, until stop(): docker's bridge for `sam local` (devstack.bridge)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        handler, app = self._handler_and_app()
        server = ClosingHTTPServer(sock.getsockname()[:2], handler, app, sock=sock)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.thread_name}:{sock.getsockname()}",
            daemon=True,
        )
        thread.start()
        self._more.append((server, thread))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
