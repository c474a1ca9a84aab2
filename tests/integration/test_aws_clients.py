"""The container's AWS clients (boto3) as the layer configures them: the receiver's checked SendMessage, the
ledger's DynamoDB calls, their budgets, FIPS endpoints, proxies and the AWS config file.

Against moto's server mode, and against a relay on 127.0.0.1 that answers with scripted failures before
passing requests on to moto (it also serves as an HTTP forward proxy, to show that `HTTP_PROXY` is honoured).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import urllib3
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from revenue_webhooks import bootstrap
from revenue_webhooks.adapters import aws as aws_clients
from revenue_webhooks.adapters.dynamodb_ledger import DynamoDbLedger as Ledger
from revenue_webhooks.adapters.sqs import QueueChecksumMismatch, QueueSender
from revenue_webhooks.domain.facts import Fact, Identity
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.service.envelope import from_message, to_sqs
from revenue_webhooks.service.ports import LedgerUnavailable

from devstack.aws import ACCOUNT, REGION, MotoServer, free_port

UNICODE = 'Zürich € ꝏ 😀 "quoted" \\ \r\n\t'
KEYS = {"aws_access_key_id": "local", "aws_secret_access_key": "local", "region_name": REGION}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def client(service: str, endpoint: str) -> Any:
    """A client exactly as the layer configures it (aws_clients.config), pointed at `endpoint`."""
    return boto3.session.Session(**KEYS).client(service, endpoint_url=endpoint, config=aws_clients.config(service))


@pytest.fixture(scope="module")
def table(moto: MotoServer) -> str:
    name = "wire-ledger"
    client("dynamodb", moto.endpoint).create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def queue_url(moto: MotoServer, request: pytest.FixtureRequest) -> str:
    name = f"sender-{request.node.name[:60]}".replace("[", "-").replace("]", "")
    return str(client("sqs", moto.endpoint).create_queue(QueueName=name)["QueueUrl"])


def message(body: bytes, event_id: str = "evt_sender") -> dict[str, Any]:
    return to_sqs(QueuedEvent("stripe", event_id, "checkout.session.completed", 1_700_000_000_000, body))


def received(moto: MotoServer, queue_url: str) -> list[dict[str, Any]]:
    answer = client("sqs", moto.endpoint).receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    return list(answer.get("Messages", []))


# ---- a scripted relay in front of moto ------------------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]
FORWARD = "forward"  # pass the request on to moto and relay moto's answer
HANG = "hang"  # read the request, never answer


def error_reply(status: int, kind: str) -> Reply:
    return status, {}, json.dumps({"__type": kind, "message": "scripted"}).encode()


class Relay:
    """Answers each request with the next step of `script`, then relays to moto; records every request.

    Requests may come as to a server (`POST /`) or as to a forward proxy (`POST http://host:port/`).
    """

    def __init__(self, upstream: str, script: list[Reply | str]) -> None:
        self.upstream = upstream
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self._http = urllib3.PoolManager()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                relay.requests.append({"target": self.path, "headers": headers, "body": body})
                step = relay.script.pop(0) if relay.script else FORWARD
                if step == HANG:
                    relay.stopping.wait(10)
                    self.close_connection = True
                    return
                status, reply_headers, data = relay._forward(headers, body) if step == FORWARD else step
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

    def operations(self) -> list[str]:
        return [r["headers"].get("x-amz-target", "").rsplit(".", 1)[-1] for r in self.requests]


def relay(moto: MotoServer, *script: Reply | str) -> Relay:
    return Relay(moto.endpoint, list(script))


# ---- SendMessage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [json.dumps({"text": UNICODE}).encode(), b'{"pad": "' + b"x" * 200_000 + b'"}', b'{"c": "\x01"}'],
    ids=["unicode", "200-kb", "sqs-refuses-it-raw"],
)
def test_what_sqs_holds_is_what_was_sent(moto: MotoServer, queue_url: str, body: bytes) -> None:
    sent = message(body)
    answer = QueueSender(client("sqs", moto.endpoint)).send_message(QueueUrl=queue_url, **sent)
    (stored,) = received(moto, queue_url)
    assert stored["MessageId"] == answer["MessageId"]
    assert from_message(stored).body == body


def test_an_answer_whose_md5_is_not_the_bodys_raises(moto: MotoServer, queue_url: str) -> None:
    forged = json.dumps({"MessageId": "m-1", "MD5OfMessageBody": "0" * 32, "MD5OfMessageAttributes": "0" * 32})
    with relay(moto, (200, {}, forged.encode())) as server, pytest.raises(QueueChecksumMismatch):
        QueueSender(client("sqs", server.url)).send_message(QueueUrl=queue_url, **message(b"{}"))


def test_binary_attributes_are_refused_before_sending(moto: MotoServer, queue_url: str) -> None:
    with relay(moto) as server, pytest.raises(ValueError, match="StringValue"):
        QueueSender(client("sqs", server.url)).send_message(
            QueueUrl=queue_url, MessageBody="x", MessageAttributes={"b": {"DataType": "Binary", "BinaryValue": b"1"}}
        )
    assert server.requests == []


def test_a_wrong_queue_url_raises_with_the_aws_error_code_and_no_body(moto: MotoServer) -> None:
    marker = "BODY-MARKER-cus_secret"
    with pytest.raises(ClientError) as raised:
        QueueSender(client("sqs", moto.endpoint)).send_message(
            QueueUrl=f"{moto.endpoint}/{ACCOUNT}/no-such-queue", **message(json.dumps({"m": marker}).encode())
        )
    assert aws_clients.error_code(raised.value) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
    assert marker not in str(raised.value) and marker not in aws_clients.error_detail(raised.value)


def test_a_5xx_is_retried_once_and_then_given_up(moto: MotoServer, queue_url: str) -> None:
    failing = error_reply(500, "InternalError")
    with relay(moto, failing, failing, failing) as server, pytest.raises(ClientError):
        QueueSender(client("sqs", server.url)).send_message(QueueUrl=queue_url, **message(b"{}"))
    assert len(server.requests) == aws_clients.BUDGETS["sqs"].attempts == 2
    with relay(moto, failing) as server:
        QueueSender(client("sqs", server.url)).send_message(QueueUrl=queue_url, **message(b"{}"))
    assert len(server.requests) == 2 and len(received(moto, queue_url)) == 1


def test_a_refused_port_fails_within_the_budget(queue_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(EndpointConnectionError):
        QueueSender(client("sqs", f"http://127.0.0.1:{free_port()}")).send_message(QueueUrl=queue_url, **message(b"{}"))
    assert time.monotonic() - started <= aws_clients.BUDGETS["sqs"].worst_case_s


def test_an_endpoint_that_never_answers_fails_within_the_budget(moto: MotoServer, queue_url: str) -> None:
    started = time.monotonic()
    with relay(moto, HANG, HANG, HANG) as server, pytest.raises(ReadTimeoutError):
        QueueSender(client("sqs", server.url)).send_message(QueueUrl=queue_url, **message(b"{}"))
    assert time.monotonic() - started <= aws_clients.BUDGETS["sqs"].worst_case_s
    assert aws_clients.BUDGETS["sqs"].worst_case_s <= 4.0, "Shopify and Paddle wait 5 s for the receiver's answer"


# ---- the ledger ------------------------------------------------------------------------------------------


def put_new(pk: str, table: str) -> dict[str, Any]:
    return {"Put": {"TableName": table, "Item": {"pk": {"S": pk}}, "ConditionExpression": "attribute_not_exists(pk)"}}


def test_a_cancelled_transaction_carries_its_reasons(moto: MotoServer, table: str) -> None:
    dynamodb = client("dynamodb", moto.endpoint)
    dynamodb.transact_write_items(TransactItems=[put_new("fact#wire-1", table)])
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[put_new("fact#wire-2", table), put_new("fact#wire-1", table)])
    assert aws_clients.error_code(raised.value) == "TransactionCanceledException"
    assert [r.get("Code") for r in raised.value.response["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]


def test_throttling_is_retried(moto: MotoServer, table: str) -> None:
    throttled = error_reply(400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException")
    with relay(moto, throttled, throttled) as server:
        client("dynamodb", server.url).put_item(TableName=table, Item={"pk": {"S": "fact#wire-3"}})
    assert server.operations() == ["PutItem"] * 3


def test_a_refused_request_is_not_retried_and_its_detail_names_the_operation(moto: MotoServer, table: str) -> None:
    refused = error_reply(400, "com.amazon.coral.validate#ValidationException")
    with relay(moto, refused) as server, pytest.raises(ClientError) as raised:
        client("dynamodb", server.url).put_item(TableName=table, Item={"pk": {"S": "fact#wire-4"}})
    assert len(server.requests) == 1
    assert aws_clients.error_detail(raised.value) == "PutItem failed: ValidationException: scripted"


def test_a_retried_ledger_transaction_carries_the_same_idempotency_token(moto: MotoServer, table: str) -> None:
    """A transaction that committed while its answer was lost must replay as itself (DynamoDB answers the
    replay of a token it has seen as a success), not as a new transaction its own writes would cancel."""
    lost = error_reply(500, "com.amazonaws.dynamodb.v20120810#InternalServerError")
    with relay(moto, lost) as server:
        Ledger(table, client("dynamodb", server.url))._transact([put_new("fact#wire-5", table)])
    first, retry = (json.loads(r["body"]) for r in server.requests)
    assert first == retry and len(first["ClientRequestToken"]) == 36


def test_the_calls_name_the_project_in_cloudtrail(moto: MotoServer, table: str) -> None:
    with relay(moto) as server:
        client("dynamodb", server.url).get_item(TableName=table, Key={"pk": {"S": "fact#none"}})
    assert "app/revenue-webhooks" in server.requests[0]["headers"]["user-agent"]


def test_a_redriven_refused_fact_rides_along_without_cancelling_the_new_ones(moto: MotoServer, table: str) -> None:
    def fact(n: int) -> tuple[Fact, dict[str, Any]]:
        identity = Identity(user_id=f"user-redrive-{n}", customer=f"cus_redrive_{n}")
        return Fact(key=f"test:redrive:{n}", event="Purchase Completed", time=1_700_000_000, identity=identity), {
            "event": "Purchase Completed",
            "properties": {"n": n},
        }

    with relay(moto) as server:
        ledger = Ledger(table, client("dynamodb", server.url))
        refused = fact(0)
        assert ledger.record_all([refused]) == [(refused[1], True)]
        ledger.mark_rejected([refused[0].key])
        fixed = (refused[0], {"event": "Purchase Completed", "properties": {"n": 0, "fixed": True}})
        server.requests.clear()

        outcomes = ledger.record_all([fixed, fact(1), fact(2), fixed])

        assert outcomes == [(fixed[1], False), (fact(1)[1], True), (fact(2)[1], True), (fixed[1], False)]
        assert server.operations() == ["BatchGetItem", "UpdateItem", "TransactWriteItems"], "no cancelled transaction"
        assert ledger.facts([refused[0].key]) == {refused[0].key: fixed[1]}


def test_keys_dynamodb_keeps_leaving_unread_end_in_ledger_unavailable(
    moto: MotoServer, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revenue_webhooks.adapters import dynamodb_ledger as ledger_module

    monkeypatch.setattr(ledger_module, "MAX_UNPROCESSED_ROUNDS", 3)
    unread = json.dumps({"Responses": {table: []}, "UnprocessedKeys": {table: {"Keys": [{"pk": {"S": "fact#x"}}]}}})
    with relay(moto, *[(200, {}, unread.encode())] * 3) as server, pytest.raises(LedgerUnavailable):
        Ledger(table, client("dynamodb", server.url)).facts(["x"])
    assert len(server.requests) == 3


def test_an_unreachable_table_is_ledger_unavailable_with_botocores_words(table: str) -> None:
    with pytest.raises(LedgerUnavailable, match="Could not connect"):
        Ledger(table, client("dynamodb", f"http://127.0.0.1:{free_port()}")).facts(["x"])


# ---- what botocore reads from the environment ------------------------------------------------------------


@pytest.fixture
def container(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A fresh container: no endpoint overrides, static credentials, the runtime's caches empty."""
    for name in list(__import__("os").environ):
        if name.startswith(("AWS_ENDPOINT_URL", "AWS_USE_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")):
            monkeypatch.delenv(name)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    bootstrap.reset()
    yield monkeypatch
    bootstrap.reset()


def test_fips_endpoints_for_every_service_when_asked_for(container: pytest.MonkeyPatch) -> None:
    container.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    endpoints = {service: bootstrap.aws(service).meta.endpoint_url for service in aws_clients.BUDGETS}
    assert endpoints == {
        "sqs": "https://sqs-fips.us-east-1.amazonaws.com",
        "secretsmanager": "https://secretsmanager-fips.us-east-1.amazonaws.com",
        "dynamodb": "https://dynamodb-fips.us-east-1.amazonaws.com",
    }


def test_dual_stack_endpoints_when_asked_for(container: pytest.MonkeyPatch) -> None:
    container.setenv("AWS_USE_DUALSTACK_ENDPOINT", "true")
    assert bootstrap.aws("sqs").meta.endpoint_url == "https://sqs.us-east-1.api.aws"


def test_https_proxy_carries_the_webhook_to_sqs(
    container: pytest.MonkeyPatch, moto: MotoServer, queue_url: str
) -> None:
    """HTTP_PROXY/HTTPS_PROXY as botocore reads them (moto speaks plain HTTP, so HTTP_PROXY is the one used)."""
    with relay(moto) as proxy:
        container.setenv("HTTP_PROXY", proxy.url)
        container.setenv("AWS_ENDPOINT_URL", moto.endpoint)
        bootstrap.queue().send_message(QueueUrl=queue_url, **message(b'{"via": "proxy"}'))
        assert [urlsplit(r["target"]).netloc for r in proxy.requests] == [urlsplit(moto.endpoint).netloc]
        container.setenv("NO_PROXY", "127.0.0.1")
        assert from_message(received(moto, queue_url)[0]).body == b'{"via": "proxy"}'


def test_no_proxy_is_honoured(container: pytest.MonkeyPatch, moto: MotoServer, queue_url: str) -> None:
    with relay(moto) as proxy:
        container.setenv("HTTP_PROXY", proxy.url)
        container.setenv("NO_PROXY", "127.0.0.1")
        container.setenv("AWS_ENDPOINT_URL", moto.endpoint)
        bootstrap.queue().send_message(QueueUrl=queue_url, **message(b"{}"))
    assert proxy.requests == []


def test_the_aws_config_file_and_retry_variables_are_read(
    container: pytest.MonkeyPatch, moto: MotoServer, tmp_path: Any
) -> None:
    config_file = tmp_path / "config"
    config_file.write_text(f"[default]\nregion = eu-west-3\nendpoint_url = {moto.endpoint}\n")
    container.setenv("AWS_CONFIG_FILE", str(config_file))
    container.delenv("AWS_DEFAULT_REGION")
    sqs = bootstrap.aws("sqs")
    assert (sqs.meta.region_name, sqs.meta.endpoint_url) == ("eu-west-3", moto.endpoint)


def test_aws_max_attempts_and_retry_mode_win_over_the_defaults(
    container: pytest.MonkeyPatch, moto: MotoServer, queue_url: str
) -> None:
    failing = error_reply(500, "InternalError")
    container.setenv("AWS_MAX_ATTEMPTS", "1")
    container.setenv("AWS_RETRY_MODE", "adaptive")
    with relay(moto, failing, failing) as server:
        container.setenv("AWS_ENDPOINT_URL", server.url)
        with pytest.raises(ClientError):
            bootstrap.queue().send_message(QueueUrl=queue_url, **message(b"{}"))
    assert len(server.requests) == 1
    assert bootstrap.aws("sqs").meta.config.retries == {"mode": "adaptive", "total_max_attempts": 1}
