"""The receiver's hand-written SendMessage: request body, endpoint, error codes, retry classes, MD5 checks.

What goes over the wire (signing, retries, time bound) is tested against moto and local servers in
tests/integration/test_aws_json_wire.py.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import NoCredentialsError
from hypothesis import given
from hypothesis import strategies as st
from moto.sqs.models import Message
from revenue_webhooks.aws_json import AwsCallError, error_code
from revenue_webhooks.envelope import QueuedEvent
from revenue_webhooks.queue_sender import (
    OPERATION,
    QueueSender,
    attributes_md5,
    check_md5s,
    endpoint_url,
    request_body,
)

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/stack-EventsQueue-abc"
CREDENTIALS = Credentials("AKIDEXAMPLE", "secret")
MESSAGE = QueuedEvent(
    "stripe", "evt_1", "checkout.session.completed", 1_700_000_000_000, '{"a": "Zürich €"}'.encode()
).to_sqs()


def sender(**environ: str) -> QueueSender:
    return QueueSender(CREDENTIALS, environ={"AWS_REGION": "eu-west-1", **environ})


# ---- where it goes -------------------------------------------------------------------------------


def test_the_queue_urls_own_host_when_no_endpoint_is_configured() -> None:
    assert endpoint_url(QUEUE) == "https://sqs.eu-west-1.amazonaws.com"
    assert endpoint_url("https://sqs.cn-north-1.amazonaws.com.cn/1/q") == "https://sqs.cn-north-1.amazonaws.com.cn"
    assert endpoint_url("http://127.0.0.1:4566/000000000000/q") == "http://127.0.0.1:4566"


def test_a_configured_endpoint_wins_as_in_botocore() -> None:
    assert endpoint_url(QUEUE, "http://127.0.0.1:5000/") == "http://127.0.0.1:5000"
    assert sender(AWS_ENDPOINT_URL="http://a:1", AWS_ENDPOINT_URL_SQS="http://b:2").configured_endpoint == "http://b:2"
    assert sender(AWS_ENDPOINT_URL="http://a:1").configured_endpoint == "http://a:1"
    assert sender().configured_endpoint == ""


@pytest.mark.parametrize("url", ["", "stack-EventsQueue", "ftp://sqs.eu-west-1.amazonaws.com/1/q", "https:///1/q"])
def test_a_queue_url_that_is_no_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        endpoint_url(url)


def test_region_from_aws_region_then_aws_default_region() -> None:
    both = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}
    assert QueueSender(CREDENTIALS, environ=both).region == "eu-west-1"
    assert QueueSender(CREDENTIALS, environ={"AWS_DEFAULT_REGION": "us-east-1"}).region == "us-east-1"
    with pytest.raises(ValueError, match="region"):
        QueueSender(CREDENTIALS, environ={})


def test_no_credentials_is_botocores_error() -> None:
    with pytest.raises(NoCredentialsError):
        QueueSender(None, environ={"AWS_REGION": "eu-west-1"})


# ---- the request ------------------------------------------------------------------------------


def test_the_request_is_sendmessage_json_as_botocore_serializes_it() -> None:
    payload = request_body(QUEUE, MESSAGE["MessageBody"], MESSAGE["MessageAttributes"])
    assert payload.isascii()  # json.dumps' default escaping, as botocore
    assert json.loads(payload) == {
        "QueueUrl": QUEUE,
        "MessageBody": MESSAGE["MessageBody"],
        "MessageAttributes": MESSAGE["MessageAttributes"],
    }
    assert json.loads(request_body(QUEUE, "x", {})) == {"QueueUrl": QUEUE, "MessageBody": "x"}


def test_binary_attributes_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="StringValue"):
        request_body(QUEUE, "x", {"blob": {"DataType": "Binary", "BinaryValue": b"\x00"}})


# ---- what comes back ----------------------------------------------------------------------------


def test_the_error_code_is_the_one_boto3_reports() -> None:
    nonexistent = {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"}
    body = b'{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The specified queue does not exist."}'
    assert error_code(400, nonexistent, body) == "AWS.SimpleQueueService.NonExistentQueue"
    assert error_code(400, {}, body) == "QueueDoesNotExist"
    assert error_code(400, {"x-amzn-query-error": ";Sender"}, body) == "QueueDoesNotExist"
    assert error_code(400, {}, b'{"__type": "ThrottlingException:http://internal"}') == "ThrottlingException"
    assert error_code(502, {}, b"<html>bad gateway</html>") == "HTTP502"
    assert error_code(500, {}, b"") == "HTTP500"
    assert error_code(500, {}, b"[1]") == "HTTP500"


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("ConnectionRefusedError", None, True),
        ("TimeoutError", None, True),
        ("ProtocolError", None, True),
        ("InternalError", 500, True),
        ("ServiceUnavailable", 503, True),
        ("HTTP502", 502, True),
        ("HTTP429", 429, True),
        ("ThrottlingException", 400, True),
        ("RequestThrottled", 400, True),
        ("AWS.SimpleQueueService.RequestThrottled", 400, True),
        ("KMS.ThrottlingException", 400, True),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, False),
        ("InvalidMessageContents", 400, False),
        ("AccessDenied", 403, False),
        ("MD5OfMessageBodyMismatch", 200, False),
    ],
)
def test_what_is_retried_follows_botocores_standard_mode(code: str, status: int | None, retryable: bool) -> None:
    assert AwsCallError(OPERATION, code, status).retryable is retryable


def test_the_error_text_names_the_code_and_status_only() -> None:
    error = AwsCallError(OPERATION, "AWS.SimpleQueueService.NonExistentQueue", 400)
    assert str(error) == "SQS SendMessage failed: AWS.SimpleQueueService.NonExistentQueue (HTTP 400)"
    assert (error.code, error.status) == ("AWS.SimpleQueueService.NonExistentQueue", 400)
    assert str(AwsCallError(OPERATION, "NewConnectionError")) == "SQS SendMessage failed: NewConnectionError"


# ---- MD5s -----------------------------------------------------------------------------------------


def _moto_attributes_md5(attributes: dict[str, dict[str, str]]) -> str:
    """moto's implementation of the same algorithm, an independent oracle."""
    message = Message("id", "body")
    message.message_attributes = attributes
    return message.attribute_md5


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z0-9_\-]{1,40}", fullmatch=True),
        st.tuples(st.sampled_from(["String", "Number", "String.custom"]), st.text(min_size=1, max_size=50)),
        min_size=1,
        max_size=10,
    )
)
def test_the_attributes_md5_is_sqss(raw: dict[str, tuple[str, str]]) -> None:
    attributes = {name: {"DataType": kind, "StringValue": value} for name, (kind, value) in raw.items()}
    assert attributes_md5(attributes) == _moto_attributes_md5(attributes)


def test_the_attributes_md5_of_the_envelope() -> None:
    assert attributes_md5(MESSAGE["MessageAttributes"]) == _moto_attributes_md5(MESSAGE["MessageAttributes"])
    assert attributes_md5({"a": {"DataType": "String", "StringValue": "v"}}) == "a18cbb58171ebf4ce88d9fb787f9210b"


def test_md5s_that_match_pass_and_any_other_answer_raises() -> None:
    body, attributes = MESSAGE["MessageBody"], MESSAGE["MessageAttributes"]
    good = {
        "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 (SQS's checksum)
        "MD5OfMessageAttributes": attributes_md5(attributes),
    }
    check_md5s(good, body, attributes)
    check_md5s({"MD5OfMessageBody": good["MD5OfMessageBody"]}, body, {})  # no attributes sent, none answered
    for answer, code in [
        ({**good, "MD5OfMessageBody": hashlib.md5(b"other").hexdigest()}, "MD5OfMessageBodyMismatch"),  # noqa: S324
        ({**good, "MD5OfMessageAttributes": "0" * 32}, "MD5OfMessageAttributesMismatch"),
        ({"MD5OfMessageBody": good["MD5OfMessageBody"]}, "MD5OfMessageAttributesMismatch"),
    ]:
        with pytest.raises(AwsCallError) as raised:
            check_md5s(answer, body, attributes)
        assert (raised.value.code, raised.value.retryable) == (code, False)
