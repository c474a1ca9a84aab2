"""The hand-written AWS calls on the wire (aws_json.py): the receiver's SendMessage and the ledger's
DynamoDB, against moto's server mode and against local servers that fail on purpose.

Every request the scripted server sees is checked with SigV4 computed here from the AWS documentation
(independently of sigv4.py), on the headers as they arrived, so what the transport (http11.py) sends, the
Host header and the body, is what was signed.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from botocore.credentials import Credentials, RefreshableCredentials
from revenue_webhooks.aws_json import AwsCallError, AwsJsonClient
from revenue_webhooks.envelope import QueuedEvent
from revenue_webhooks.queue_sender import QueueSender

from devstack.aws import ACCOUNT, REGION, MotoServer, free_port

SECRET_KEYS = {"AKIDLOCAL": "local-secret"}
SERVICES = ("sqs", "dynamodb", "secretsmanager")
CREDENTIALS = Credentials("AKIDLOCAL", "local-secret")
UNICODE = 'Zürich € ꝏ 😀 "quoted" \\ \r\n\t'


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def sqs(moto: MotoServer) -> Any:
    return boto3.client(
        "sqs", endpoint_url=moto.endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )


@pytest.fixture
def queue_url(sqs: Any, request: pytest.FixtureRequest) -> str:
    return str(
        sqs.create_queue(QueueName=f"sender-{request.node.name[:60]}".replace("[", "-").replace("]", ""))["QueueUrl"]
    )


def sender(endpoint: str | None = None, credentials: Any = CREDENTIALS, **options: Any) -> QueueSender:
    environ = {"AWS_DEFAULT_REGION": REGION, **({"AWS_ENDPOINT_URL_SQS": endpoint} if endpoint else {})}
    environ.update(options.pop("environ", {}))
    return QueueSender(credentials, environ=environ, **options)


def message(body: bytes, event_id: str = "evt_sender") -> dict[str, Any]:
    return QueuedEvent("stripe", event_id, "checkout.session.completed", 1_700_000_000_000, body).to_sqs()


def received(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return list(answer.get("Messages", []))


# ---- against moto ------------------------------------------------------------------------------------


def test_what_boto3_receives_is_what_was_sent(sqs: Any, queue_url: str) -> None:
    body = json.dumps({"id": "evt_unicode", "city": UNICODE}, ensure_ascii=False).encode()
    sent = message(body)
    # No AWS_ENDPOINT_URL(_SQS): the endpoint is the queue URL's own host, here moto's.
    answer = sender().send_message(QueueUrl=queue_url, **sent)
    assert answer["MessageId"]
    (got,) = received(sqs, queue_url)
    assert got["MessageId"] == answer["MessageId"]
    assert got["Body"] == sent["MessageBody"]
    assert got["MessageAttributes"] == sent["MessageAttributes"]
    assert QueuedEvent.from_message(got).body == body


def test_a_200_kb_body_arrives_whole(sqs: Any, queue_url: str) -> None:
    body = json.dumps({"id": "evt_large", "lines": [UNICODE * 4] * 1200}, ensure_ascii=False).encode()
    assert 190_000 < len(body) < 230_000
    sent = message(body)
    sender().send_message(QueueUrl=queue_url, **sent)
    (got,) = received(sqs, queue_url)
    assert got["Body"] == sent["MessageBody"] and QueuedEvent.from_message(got).body == body


def test_a_body_sqs_would_refuse_travels_as_base64(sqs: Any, queue_url: str) -> None:
    body = b'{"id": "evt_raw", "bytes": "\x00\x1b\xff\xfe"}'
    sent = message(body)
    assert sent["MessageAttributes"]["body_encoding"]["StringValue"] == "base64"
    sender().send_message(QueueUrl=queue_url, **sent)
    (got,) = received(sqs, queue_url)
    assert QueuedEvent.from_message(got).body == body


def test_a_wrong_queue_url_raises_with_the_aws_error_code_and_no_body(moto: MotoServer) -> None:
    marker = "BODY-MARKER-cus_secret"
    with pytest.raises(AwsCallError) as raised:
        sender(moto.endpoint).send_message(
            QueueUrl=f"{moto.endpoint}/{ACCOUNT}/no-such-queue", **message(json.dumps({"m": marker}).encode())
        )
    assert (raised.value.code, raised.value.status) == ("AWS.SimpleQueueService.NonExistentQueue", 400)
    assert not raised.value.retryable
    assert marker not in str(raised.value) and marker not in repr(raised.value.args)


# ---- a scripted AWS endpoint on 127.0.0.1 ---------------------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]
FORWARD = "forward"  # pass the request on to moto and relay moto's answer
HANG = "hang"  # read the request, never answer


def error_reply(status: int, kind: str, query_code: str | None = None) -> Reply:
    headers = {"x-amzn-query-error": f"{query_code};Sender"} if query_code else {}
    return status, headers, json.dumps({"__type": kind, "message": "scripted"}).encode()


class ScriptedAws:
    """Answers each request with the next step of `script`, then forwards to moto; records and checks every request."""

    def __init__(self, upstream: str, script: list[Reply | str], *, tls: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self._http = urllib3.PoolManager()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        if tls:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self) -> ScriptedAws:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                app.requests.append({"path": self.path, "headers": headers, "body": body})
                step = app.script.pop(0) if app.script else FORWARD
                if step == HANG:
                    app.stopping.wait(10)
                    self.close_connection = True
                    return
                status, reply_headers, data = app._forward(headers, body) if step == FORWARD else step
                self.send_response(status)
                for name, value in {"Content-Type": "application/x-amz-json-1.0", **reply_headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _forward(self, headers: dict[str, str], body: bytes) -> Reply:
        """moto routes by the signature's credential scope, so the signed headers travel on."""
        kept = {name: value for name, value in headers.items() if name not in ("host", "content-length", "connection")}
        response = self._http.request("POST", f"{self.upstream}/", body=body, headers=kept)
        relayed = {n: response.headers[n] for n in ("x-amzn-query-error", "x-amz-crc32") if n in response.headers}
        return response.status, relayed, response.data

    def signatures_valid(self) -> bool:
        return bool(self.requests) and all(sigv4_valid(r["path"], r["headers"], r["body"]) for r in self.requests)


def sigv4_valid(path: str, headers: dict[str, str], body: bytes) -> bool:
    """SigV4 of a received POST, computed from the AWS documentation's steps, for SQS in `REGION`."""
    algorithm, _, fields = headers["authorization"].partition(" ")
    parts = dict(field.strip().split("=", 1) for field in fields.split(","))
    access_key, date, region, service, terminator = parts["Credential"].split("/")
    signed = parts["SignedHeaders"].split(";")
    if (algorithm, region, terminator) != ("AWS4-HMAC-SHA256", REGION, "aws4_request") or service not in SERVICES:
        return False
    if not {"host", "x-amz-date", "x-amz-target", "content-type"} <= set(signed):
        return False
    canonical = "\n".join(
        [
            "POST",
            path,
            "",
            "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", headers["x-amz-date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + SECRET_KEYS[access_key]).encode()
    for step in (date, region, service, "aws4_request"):
        key = hmac.new(key, step.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), parts["Signature"])


def scripted(moto: MotoServer, *script: Reply | str, tls: ssl.SSLContext | None = None) -> ScriptedAws:
    return ScriptedAws(moto.endpoint, list(script), tls=tls)


def test_a_signed_request_as_sqs_expects_it(moto: MotoServer, queue_url: str) -> None:
    with scripted(moto) as server:
        sender(server.url).send_message(QueueUrl=queue_url, **message(b'{"id": "evt_signed"}'))
    (request,) = server.requests
    assert request["path"] == "/"
    assert request["headers"]["x-amz-target"] == "AmazonSQS.SendMessage"
    assert request["headers"]["content-type"] == "application/x-amz-json-1.0"
    assert json.loads(request["body"])["QueueUrl"] == queue_url
    assert server.signatures_valid()


def test_temporary_credentials_are_signed_and_refreshed_per_message(
    moto: MotoServer, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ReceiverFunction")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    issued: list[str] = []

    def refresh() -> dict[str, str]:  # as the role provider does; five minutes left forces a refresh on every use
        issued.append(f"AKIDLOCAL{len(issued)}")
        SECRET_KEYS[issued[-1]] = f"secret-{len(issued)}"
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {
            "access_key": issued[-1],
            "secret_key": SECRET_KEYS[issued[-1]],
            "token": "session-token",
            "expiry_time": expiry.isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test-role")
    with scripted(moto) as server:
        queue = sender(server.url, credentials)
        queue.send_message(QueueUrl=queue_url, **message(b'{"id": "evt_a"}'))
        queue.send_message(QueueUrl=queue_url, **message(b'{"id": "evt_b"}'))
    keys = [r["headers"]["authorization"].split("Credential=")[1].split("/")[0] for r in server.requests]
    assert len(set(keys)) == 2 and set(keys) <= set(issued)
    for request in server.requests:
        assert request["headers"]["x-amz-security-token"] == "session-token"
        assert "x-amz-security-token" in request["headers"]["authorization"]
        assert request["headers"]["x-amzn-trace-id"].startswith("Root=1-5759e988")
    assert server.signatures_valid()


@pytest.mark.parametrize(
    "failures",
    [
        [(500, {}, b"")],
        [error_reply(503, "com.amazonaws.sqs#ServiceUnavailable", "ServiceUnavailable"), (500, {}, b"")],
        [error_reply(400, "com.amazon.coral.availability#ThrottlingException")],
        [error_reply(400, "com.amazonaws.sqs#RequestThrottled", "RequestThrottled")],
    ],
    ids=["500", "503-then-500", "throttling", "request-throttled"],
)
def test_transient_failures_are_retried_until_sqs_holds_the_message(
    moto: MotoServer, sqs: Any, queue_url: str, failures: list[Reply]
) -> None:
    sent = message(b'{"id": "evt_retried"}')
    with scripted(moto, *failures) as server:
        sender(server.url).send_message(QueueUrl=queue_url, **sent)
    assert len(server.requests) == len(failures) + 1
    assert server.signatures_valid()
    assert [m["Body"] for m in received(sqs, queue_url)] == [sent["MessageBody"]]


def test_three_attempts_at_most(moto: MotoServer, sqs: Any, queue_url: str) -> None:
    with scripted(moto, *[(503, {}, b"")] * 3) as server, pytest.raises(AwsCallError) as raised:
        sender(server.url).send_message(QueueUrl=queue_url, **message(b'{"id": "evt_unlucky"}'))
    assert (raised.value.code, raised.value.status, len(server.requests)) == ("HTTP503", 503, 3)
    assert received(sqs, queue_url) == []


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (
            error_reply(400, "com.amazonaws.sqs#InvalidMessageContents", "InvalidMessageContents"),
            "InvalidMessageContents",
        ),
        (error_reply(403, "com.amazon.coral.service#AccessDeniedException", "AccessDenied"), "AccessDenied"),
        (
            (200, {}, b'{"MessageId": "m", "MD5OfMessageBody": "00000000000000000000000000000000"}'),
            "MD5OfMessageBodyMismatch",
        ),
        ((200, {}, b"<html>captive portal</html>"), "InvalidResponse"),
    ],
    ids=["400", "403", "md5-mismatch", "not-json"],
)
def test_client_errors_and_wrong_answers_are_not_retried(
    moto: MotoServer, queue_url: str, reply: Reply, code: str
) -> None:
    with scripted(moto, reply) as server, pytest.raises(AwsCallError) as raised:
        sender(server.url).send_message(QueueUrl=queue_url, **message(b'{"id": "evt_refused"}'))
    assert raised.value.code == code
    assert len(server.requests) == 1


def _fails_within(budget_s: float, send: Callable[[], object]) -> AwsCallError:
    started = time.monotonic()
    with pytest.raises(AwsCallError) as raised:
        send()
    elapsed = time.monotonic() - started
    assert elapsed < budget_s + 0.3, f"took {elapsed:.2f} s against a budget of {budget_s} s"
    return raised.value


def test_a_refused_port_fails_within_the_budget(queue_url: str) -> None:
    queue = sender(f"http://127.0.0.1:{free_port()}", budget_s=1.0)
    error = _fails_within(1.0, lambda: queue.send_message(QueueUrl=queue_url, **message(b'{"id": "evt_down"}')))
    assert error.code == "ConnectionRefusedError" and error.status is None


def test_an_endpoint_that_never_answers_fails_within_the_budget(moto: MotoServer, queue_url: str) -> None:
    with scripted(moto, HANG, HANG, HANG) as server:
        queue = sender(server.url, budget_s=1.0, read_timeout_s=0.4)
        error = _fails_within(1.0, lambda: queue.send_message(QueueUrl=queue_url, **message(b'{"id": "evt_slow"}')))
    assert error.code == "TimeoutError"
    assert 2 <= len(server.requests) <= 3  # 0.4 s per attempt, and backoff, inside 1 s


# ---- TLS ---------------------------------------------------------------------------------------------


def test_https_is_verified_against_the_ca_bundle(
    moto: MotoServer, sqs: Any, queue_url: str, certificate: tuple[Path, Path]
) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*certificate)
    sent = message(b'{"id": "evt_tls"}')
    with scripted(moto, tls=tls) as server:
        assert server.url.startswith("https://")
        sender(server.url, environ={"AWS_CA_BUNDLE": str(certificate[0])}).send_message(QueueUrl=queue_url, **sent)
        untrusted = sender(server.url, budget_s=0.5)  # botocore's default bundle does not know this certificate
        error = _fails_within(0.5, lambda: untrusted.send_message(QueueUrl=queue_url, **sent))
    assert error.code == "SSLCertVerificationError"
    assert server.signatures_valid()
    assert [m["Body"] for m in received(sqs, queue_url)] == [sent["MessageBody"]]


# ---- the ledger's DynamoDB ---------------------------------------------------------------------------

TABLE = "wire-ledger"


@pytest.fixture(scope="module")
def table(moto: MotoServer) -> str:
    boto3.client(
        "dynamodb", endpoint_url=moto.endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    ).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return TABLE


def dynamodb(endpoint: str) -> AwsJsonClient:
    return AwsJsonClient(
        "dynamodb",
        "DynamoDB",
        "DynamoDB_20120810",
        endpoint=endpoint,
        region=REGION,
        credentials=CREDENTIALS,
        budget_s=5.0,
        connect_timeout_s=1.0,
        read_timeout_s=2.0,
    )


def put_new(pk: str) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": {"pk": {"S": pk}}, "ConditionExpression": "attribute_not_exists(pk)"}}


def test_a_cancelled_transaction_reads_as_boto3_reports_it(moto: MotoServer, table: str) -> None:
    client = dynamodb(moto.endpoint)
    client.call("TransactWriteItems", {"TransactItems": [put_new("fact#wire-1")]})
    with pytest.raises(AwsCallError) as raised:
        client.call("TransactWriteItems", {"TransactItems": [put_new("fact#wire-2"), put_new("fact#wire-1")]})
    assert (raised.value.code, raised.value.status, raised.value.retryable) == (
        "TransactionCanceledException",
        400,
        False,
    )
    reasons = [reason.get("Code") for reason in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    answer = client.call("BatchGetItem", {"RequestItems": {table: {"Keys": [{"pk": {"S": "fact#wire-1"}}]}}})
    assert answer["Responses"][table] == [{"pk": {"S": "fact#wire-1"}}]


def test_throttling_and_a_corrupted_answer_are_retried(moto: MotoServer, table: str) -> None:
    throttled = error_reply(400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException")
    corrupted = (200, {"x-amz-crc32": "1"}, b'{"Item": {"pk": {"S": "forged"}}}')
    with scripted(moto, throttled, corrupted) as server:
        client = dynamodb(server.url)
        client.call("PutItem", {"TableName": table, "Item": {"pk": {"S": "fact#wire-3"}}})
        answer = client.call(
            "GetItem", {"TableName": table, "Key": {"pk": {"S": "fact#wire-3"}}, "ConsistentRead": True}
        )
    assert answer["Item"] == {"pk": {"S": "fact#wire-3"}}, "the answer whose CRC32 was wrong was not used"
    assert len(server.requests) == 4 and server.signatures_valid()
    assert {r["headers"]["x-amz-target"] for r in server.requests} == {
        "DynamoDB_20120810.PutItem",
        "DynamoDB_20120810.GetItem",
    }


def test_a_refused_request_is_not_retried(moto: MotoServer, table: str) -> None:
    refused = error_reply(400, "com.amazon.coral.validate#ValidationException")
    with scripted(moto, refused) as server, pytest.raises(AwsCallError) as raised:
        dynamodb(server.url).call("PutItem", {"TableName": table, "Item": {"pk": {"S": "fact#wire-4"}}})
    assert (raised.value.code, len(server.requests)) == ("ValidationException", 1)
    assert str(raised.value) == "DynamoDB PutItem failed: ValidationException (HTTP 400)"


def test_a_retried_ledger_transaction_carries_the_same_idempotency_token(moto: MotoServer, table: str) -> None:
    """A transaction that committed while its answer was lost must replay as itself (DynamoDB answers the
    replay of a token it has seen as a success), not as a new transaction its own writes would cancel."""
    from revenue_webhooks.ledger import Ledger

    lost = error_reply(500, "com.amazonaws.dynamodb.v20120810#InternalServerError")
    with scripted(moto, lost) as server:
        Ledger(table, client=dynamodb(server.url))._transact([put_new("fact#wire-5")])
    first, retry = (json.loads(r["body"]) for r in server.requests)
    assert first == retry and len(first["ClientRequestToken"]) == 36


def test_the_calls_name_the_project_in_cloudtrail(moto: MotoServer, table: str) -> None:
    with scripted(moto) as server:
        dynamodb(server.url).call("GetItem", {"TableName": table, "Key": {"pk": {"S": "fact#none"}}})
    assert server.requests[0]["headers"]["user-agent"] == "revenue-webhooks" and server.signatures_valid()


class CountingCalls:
    """The ledger's own client, counting operations (instrumentation of our code, not of boto3 or urllib3)."""

    def __init__(self, client: AwsJsonClient) -> None:
        self.client = client
        self.operations: list[str] = []

    def call(self, operation: str, payload: Any) -> dict[str, Any]:
        self.operations.append(operation)
        return self.client.call(operation, payload)


def test_a_redriven_refused_fact_rides_along_without_cancelling_the_new_ones(moto: MotoServer, table: str) -> None:
    from revenue_webhooks.facts import Fact, Identity
    from revenue_webhooks.ledger import Ledger

    def fact(n: int) -> tuple[Fact, dict[str, Any]]:
        identity = Identity(user_id=f"user-redrive-{n}", customer=f"cus_redrive_{n}")
        return Fact(key=f"test:redrive:{n}", event="Purchase Completed", time=1_700_000_000, identity=identity), {
            "event": "Purchase Completed",
            "properties": {"n": n},
        }

    counting = CountingCalls(dynamodb(moto.endpoint))
    ledger = Ledger(table, client=counting)  # type: ignore[arg-type]
    refused = fact(0)
    assert ledger.record_all([refused]) == [(refused[1], True)]
    ledger.mark_rejected([refused[0].key])
    fixed = (refused[0], {"event": "Purchase Completed", "properties": {"n": 0, "fixed": True}})
    counting.operations.clear()

    outcomes = ledger.record_all([fixed, fact(1), fact(2), fixed])

    assert outcomes == [(fixed[1], False), (fact(1)[1], True), (fact(2)[1], True), (fixed[1], False)]
    assert counting.operations == ["BatchGetItem", "UpdateItem", "TransactWriteItems"], "no cancelled transaction"
    assert ledger.facts([refused[0].key]) == {refused[0].key: fixed[1]}


def test_keys_dynamodb_keeps_leaving_unread_end_in_ledger_unavailable(
    moto: MotoServer, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revenue_webhooks import ledger as ledger_module

    monkeypatch.setattr(ledger_module, "MAX_UNPROCESSED_ROUNDS", 3)
    unread = json.dumps({"Responses": {table: []}, "UnprocessedKeys": {table: {"Keys": [{"pk": {"S": "fact#x"}}]}}})
    with scripted(moto, *[(200, {}, unread.encode())] * 3) as server, pytest.raises(ledger_module.LedgerUnavailable):
        ledger_module.Ledger(table, client=dynamodb(server.url)).facts(["x"])
    assert len(server.requests) == 3


def test_each_service_gets_its_json_version_and_the_ledger_its_patience(
    moto: MotoServer, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets Manager speaks AWS JSON 1.1, SQS and DynamoDB 1.0; the Content-Type must name it."""
    from revenue_webhooks import runtime

    boto3.client(
        "secretsmanager",
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    ).create_secret(Name="wire-secret", SecretString="whsec_wire")
    with scripted(moto) as server:
        for name, value in {
            "AWS_ENDPOINT_URL": server.url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "AKIDLOCAL",
            "AWS_SECRET_ACCESS_KEY": "local-secret",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        runtime.reset()
        try:
            assert runtime.secret_string("wire-secret") == "whsec_wire"
            ledger_client = runtime.dynamodb(4)
            ledger_client.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "fact#none"}}})
        finally:
            runtime.reset()
    kinds = {r["headers"]["x-amz-target"].split(".")[0]: r["headers"]["content-type"] for r in server.requests}
    assert kinds == {"secretsmanager": "application/x-amz-json-1.1", "DynamoDB_20120810": "application/x-amz-json-1.0"}
    assert server.signatures_valid() and ledger_client.attempts == 10
