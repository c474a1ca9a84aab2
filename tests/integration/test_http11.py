"""The keep-alive transport (http11.py) against raw sockets on 127.0.0.1 that answer byte for byte as scripted.

Each answer below is one an HTTP/1.1 server may legitimately send (or, for the refusals, one it must
not): framed by Content-Length, chunked, or by closing; `Connection: close`; HTTP/1.0; a 100 Continue
first; an idle connection the server closed. AWS's JSON endpoints are exercised in
tests/integration/test_aws_json_wire.py.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from revenue_webhooks.http11 import ConnectionPool, ProtocolError

Answer = Callable[[bytes], bytes | None]  # the request's bytes -> raw answer (None: close without answering)


class RawServer:
    """Accepts connections, reads whole requests, writes `answer(request)` verbatim; counts connections."""

    def __init__(self, answer: Answer, *, close_after: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.close_after = close_after  # close each connection after this many answers (0: keep it open)
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        if self.tls is not None:
            try:
                connection = self.tls.wrap_socket(connection, server_side=True)
            except (ssl.SSLError, OSError):  # the client refused our certificate
                connection.close()
                return
        reader = connection.makefile("rb")
        answered = 0
        with connection, reader:
            while not self._stop.is_set():
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next(
                    (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")), 0
                )
                request = head + reader.read(length)
                self.requests.append(request)
                answer = self.answer(request)
                if answer is None:
                    return
                connection.sendall(answer)
                answered += 1
                if self.close_after and answered >= self.close_after:
                    return


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer, **options: Any) -> RawServer:
        servers.append(RawServer(answer, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def post(
    pool: ConnectionPool, body: bytes = b'{"a":1}', read_timeout: float = 2.0
) -> tuple[int, dict[str, str], bytes]:
    response = pool.post(
        "/",
        {"Host": pool.host, "Content-Type": "application/json"},
        body,
        deadline=time.monotonic() + 5,
        connect_timeout=1,
        read_timeout=read_timeout,
    )
    return response.status, response.headers, response.data


def fixed(raw: bytes) -> Answer:
    return lambda request: raw


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"b":2}'


def test_a_content_length_answer_and_the_connection_kept_for_the_next_request(serve: Callable[..., RawServer]) -> None:
    server = serve(fixed(OK))
    pool = ConnectionPool(server.url)
    assert [post(pool)[2] for _ in range(5)] == [b'{"b":2}'] * 5
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Length: 7\r\n\r\n" in first and first.endswith(b'{"a":1}')


def test_a_chunked_answer_with_extensions_and_trailers(serve: Callable[..., RawServer]) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Amz-Crc32: 1\r\n\r\n"
        b'4;ext=1\r\n{"b"\r\n3\r\n:2}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    server = serve(fixed(chunked))
    pool = ConnectionPool(server.url)
    status, headers, data = post(pool)
    assert (status, data, headers["x-amz-crc32"]) == (200, b'{"b":2}', "1")
    assert post(pool)[2] == b'{"b":2}' and server.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\n\r\n{}",  # framed by closing
    ],
    ids=["connection-close", "http-1.0", "until-eof"],
)
def test_an_answer_that_ends_the_connection_gets_a_new_one_next_time(
    serve: Callable[..., RawServer], answer: bytes
) -> None:
    server = serve(fixed(answer), close_after=1)
    pool = ConnectionPool(server.url)
    assert [post(pool)[2] for _ in range(3)] == [b"{}"] * 3
    assert server.connections == 3


def test_informational_answers_come_before_the_answer(serve: Callable[..., RawServer]) -> None:
    server = serve(fixed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK))
    pool = ConnectionPool(server.url)
    assert post(pool)[::2] == (200, b'{"b":2}')
    assert post(pool)[::2] == (200, b'{"b":2}') and server.connections == 1


def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(serve: Callable[..., RawServer]) -> None:
    server = serve(fixed(OK))
    pool = ConnectionPool(server.url)
    for header in ({"X-Amzn-Trace-Id": "Root=1\r\nX-Evil: 1"}, {"X-A\nB": "v"}):
        with pytest.raises(ValueError, match="line break"):
            pool.post(
                "/",
                {"Host": pool.host, **header},
                b"{}",
                deadline=time.monotonic() + 1,
                connect_timeout=1,
                read_timeout=1,
            )
    assert server.requests == []


def test_repeated_headers_are_joined_and_names_lower_cased(serve: Callable[..., RawServer]) -> None:
    server = serve(fixed(b"HTTP/1.1 400 Bad\r\nX-A: 1\r\nx-a:  2 \r\nContent-Length: 0\r\n\r\n"))
    status, headers, data = post(ConnectionPool(server.url))
    assert (status, headers["x-a"], data) == (400, "1, 2", b"")


def test_an_idle_connection_the_server_closed_is_replaced_before_sending(serve: Callable[..., RawServer]) -> None:
    server = serve(fixed(OK), close_after=1)  # as an endpoint closes idle keep-alive connections
    pool = ConnectionPool(server.url)
    post(pool)
    time.sleep(0.1)  # the close (FIN) has arrived
    assert post(pool)[2] == b'{"b":2}'
    assert server.connections == 2 and len(server.requests) == 2


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "closed inside"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nxxxxx\r\n0\r\n\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", "CRLF"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "colon"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-H: v\r\n" * 101 + b"\r\n", "too many headers"),
        (b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 70_000 + b"\r\n\r\n", "too long"),
        (b"HTTP/1.1 \xb200 OK\r\nContent-Length: 0\r\n\r\n", "status line"),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n{}", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n{}", "space around"),
        (b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", "folded"),
    ],
    ids=[
        "not-http",
        "truncated",
        "negative-length",
        "negative-chunk",
        "chunk-without-crlf",
        "no-colon",
        "headers",
        "line",
        "superscript-status",
        "four-digit-status",
        "superscript-length",
        "two-lengths",
        "space-before-colon",
        "fold-first",
    ],
)
def test_what_is_not_http_is_refused_as_a_transport_error(
    serve: Callable[..., RawServer], answer: bytes, complaint: str
) -> None:
    server = serve(fixed(answer), close_after=1)
    pool = ConnectionPool(server.url)
    with pytest.raises(ProtocolError, match=complaint):
        post(pool)
    assert not pool._idle  # a connection in an unknown state is never reused


def test_no_answer_at_all_is_a_transport_error(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda request: None)
    with pytest.raises(ProtocolError, match="without an answer"):
        post(ConnectionPool(server.url))


def test_an_answer_that_does_not_come_times_out(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda request: (time.sleep(1.5), OK)[1])
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post(ConnectionPool(server.url), read_timeout=0.3)
    assert time.monotonic() - started < 1.0


def test_a_refused_port_is_a_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        post(ConnectionPool(f"http://127.0.0.1:{port}"))


def test_threads_share_the_pool_and_at_most_maxsize_connections_stay_idle(serve: Callable[..., RawServer]) -> None:
    def echo(request: bytes) -> bytes:
        body = request.split(b"\r\n\r\n", 1)[1]
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    server = serve(echo)
    pool = ConnectionPool(server.url, maxsize=4)
    bodies = [f'{{"n":{n}}}'.encode() for n in range(400)]
    with ThreadPoolExecutor(16) as threads:
        answers = list(threads.map(lambda body: post(pool, body)[2], bodies))
    assert answers == bodies
    assert len(pool._idle) <= 4
    assert server.connections <= 16 + 400 // 4  # connections are reused, not one per request


def test_the_host_header_leaves_out_the_default_port_as_signed() -> None:
    assert ConnectionPool("https://sqs.us-east-1.amazonaws.com").host == "sqs.us-east-1.amazonaws.com"
    assert ConnectionPool("http://127.0.0.1:4566/").host == "127.0.0.1:4566"
    assert ConnectionPool("http://[::1]:8080").host == "[::1]:8080"
    with pytest.raises(ValueError, match="not an http"):
        ConnectionPool("ftp://example.com")


def test_the_ca_bundle_is_loaded_once_per_process_not_once_per_endpoint() -> None:
    sqs, dynamodb = ConnectionPool("https://sqs.eu-west-1.amazonaws.com"), ConnectionPool("https://dynamodb.x")
    assert sqs.tls is not None and sqs.tls is dynamodb.tls  # 20-35 ms of a cold start each
    assert sqs.tls.verify_mode == ssl.CERT_REQUIRED and sqs.tls.check_hostname
    assert sqs.tls.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """The test servers' side of TLS, with the shared test certificate for 127.0.0.1."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*certificate)
    return tls


def test_tls_connections_are_verified_kept_and_replaced_when_the_server_closes_them(
    serve: Callable[..., RawServer], server_tls: ssl.SSLContext, certificate: tuple[Path, Path]
) -> None:
    tls = server_tls
    kept = serve(fixed(OK), tls=tls)
    pool = ConnectionPool(kept.url, ca_bundle=str(certificate[0]))
    assert [post(pool)[2] for _ in range(3)] == [b'{"b":2}'] * 3 and kept.connections == 1

    closing = serve(fixed(OK), tls=tls, close_after=1)  # closes (close_notify, FIN) after each answer
    pool = ConnectionPool(closing.url, ca_bundle=str(certificate[0]))
    post(pool)
    time.sleep(0.1)
    assert post(pool)[2] == b'{"b":2}' and closing.connections == 2 and len(closing.requests) == 2


def test_tls_refuses_a_certificate_for_another_host_or_from_another_ca(
    serve: Callable[..., RawServer], server_tls: ssl.SSLContext, certificate: tuple[Path, Path]
) -> None:
    server = serve(fixed(OK), tls=server_tls)
    port = server.url.rsplit(":", 1)[1]
    other_host = ConnectionPool(f"https://localhost:{port}", ca_bundle=str(certificate[0]))  # it names 127.0.0.1
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        post(other_host)
    with pytest.raises(ssl.SSLCertVerificationError):
        post(ConnectionPool(server.url))  # botocore's bundle does not know this certificate
    assert server.requests == []


def test_bytes_past_an_answer_are_never_read_as_the_next_ones(serve: Callable[..., RawServer]) -> None:
    answers = iter(
        [
            b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"n":"A"}HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"n":"X"}',
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}JUNK",
            b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"n":"B"}',
        ]
    )
    server = serve(lambda request: next(answers))
    pool = ConnectionPool(server.url)
    assert [post(pool)[2] for _ in range(3)] == [b'{"n":"A"}', b"{}", b'{"n":"B"}']
    assert server.connections == 3  # a connection whose answer ran past its framing is not reused


@pytest.mark.parametrize(
    ("answer", "data", "reused"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}", b"{}", True),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 2\r\n\r\n{}", b"{}", True),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            b"{}",
            False,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw", b"raw", False),
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            b"{}",
            False,
        ),
    ],
    ids=["repeated-length", "obs-fold", "chunked-beside-length", "chunked-not-last", "chunked-in-http-1.0"],
)
def test_framing_as_rfc_9112_reads_it(
    serve: Callable[..., RawServer], answer: bytes, data: bytes, reused: bool
) -> None:
    server = serve(fixed(answer), close_after=0 if reused else 1)
    pool = ConnectionPool(server.url)
    status, headers, body = post(pool)
    assert (status, body) == (200, data)
    assert (len(pool._idle) == 1) is reused
    if b"\r\n  2" in answer:
        assert headers["x-a"] == "1 2"  # the folded line continues the value


def test_an_answer_that_trickles_in_ends_at_the_deadline(serve: Callable[..., RawServer]) -> None:
    class Trickle(RawServer):
        def _serve(self, connection: socket.socket) -> None:
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                for _ in range(100):
                    if self._stop.wait(0.1):
                        return
                    try:
                        connection.sendall(b"x")
                    except OSError:
                        return

    server = Trickle(fixed(b""))
    try:
        pool = ConnectionPool(server.url)
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # every byte came within the read timeout; the whole did not
            pool.post("/", {"Host": pool.host}, b"{}", deadline=started + 0.6, connect_timeout=1, read_timeout=0.5)
        assert time.monotonic() - started < 0.9
    finally:
        server.stop()


def test_a_deadline_shorter_than_the_read_timeout_wins(serve: Callable[..., RawServer]) -> None:
    server = serve(lambda request: (time.sleep(1.5), OK)[1])
    pool = ConnectionPool(server.url)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        pool.post("/", {"Host": pool.host}, b"{}", deadline=started + 0.3, connect_timeout=5, read_timeout=5)
    assert time.monotonic() - started < 0.8


def test_pooled_connections_a_peer_forgot_are_all_dropped_after_the_first_fails(
    serve: Callable[..., RawServer],
) -> None:
    forgotten = threading.Event()
    fresh: set[int] = set()

    def answer(request: bytes) -> bytes | None:
        time.sleep(0.05)
        ident = threading.get_ident()  # one serving thread per connection
        if forgotten.is_set() and ident not in fresh:
            return None  # as a NAT that forgot the connection: no answer, the connection ends
        return OK

    server = serve(answer)
    pool = ConnectionPool(server.url, maxsize=4)
    with ThreadPoolExecutor(4) as threads:
        list(threads.map(lambda _: post(pool), range(4)))
    assert len(pool._idle) >= 2
    forgotten.set()
    original_serve = server._serve

    def serve_fresh(connection: socket.socket) -> None:
        fresh.add(threading.get_ident())
        original_serve(connection)

    server._serve = serve_fresh  # type: ignore[method-assign]
    with pytest.raises(ProtocolError, match="without an answer"):
        post(pool)
    assert pool._idle == []  # its siblings are not tried one attempt at a time
    assert post(pool)[2] == b'{"b":2}'
