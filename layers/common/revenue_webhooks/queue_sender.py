"""One SQS `SendMessage`: the receiver's only AWS call per webhook.

It goes through `aws_json.AwsJsonClient` (why by hand: see there), within a time budget the
webhook senders allow, and checks the MD5s SQS answers with, as the AWS SDKs for Java, .NET and Go
check them (botocore does not).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .aws_json import AwsCallError, AwsJsonClient, configured_endpoint, require_credentials_and_region

# `x-amzn-query-mode` asks SQS for the query-protocol error codes in `x-amzn-query-error`, so a
# code reads as it does in boto3 (AWS.SimpleQueueService.NonExistentQueue).
HEADERS = {"x-amzn-query-mode": "true"}
OPERATION = "SQS SendMessage"
# Shopify and Paddle give up on a webhook after 5 s: every attempt, and the waits between them,
# end within this budget, so the receiver can still answer 503 and let the sender retry.
BUDGET_S = 4.0
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 2.0


class QueueSender:
    """Sends SQS messages with boto3's `send_message` keywords, so either can stand in for the other.

    Keep one per container: its connection pool keeps the TLS connection to SQS warm.
    """

    def __init__(
        self,
        credentials: Any,
        *,
        region: str | None = None,
        environ: Mapping[str, str] = os.environ,
        budget_s: float = BUDGET_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        attempts: int = 3,
    ) -> None:
        self.region = region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or ""
        self.credentials = credentials
        self.configured_endpoint = configured_endpoint("SQS", environ)
        self.options = {
            "budget_s": budget_s,
            "connect_timeout_s": connect_timeout_s,
            "read_timeout_s": read_timeout_s,
            "attempts": attempts,
            "ca_bundle": environ.get("AWS_CA_BUNDLE", ""),
        }
        require_credentials_and_region(credentials, self.region)
        self._clients: dict[str, AwsJsonClient] = {}

    def send_message(
        self, *, QueueUrl: str, MessageBody: str, MessageAttributes: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """`MessageId` and the MD5s SQS answered, once it holds the message; `AwsCallError` otherwise."""
        attributes = MessageAttributes or {}
        payload = request_body(QueueUrl, MessageBody, attributes)
        client = self._clients.get(QueueUrl) or self._client(QueueUrl)
        answer = client.call("SendMessage", payload)
        check_md5s(answer, MessageBody, attributes)
        return answer

    def _client(self, queue_url: str) -> AwsJsonClient:
        client = AwsJsonClient(
            "sqs",
            "SQS",
            "AmazonSQS",
            endpoint=endpoint_url(queue_url, self.configured_endpoint),
            region=self.region,
            credentials=self.credentials,
            headers=HEADERS,
            **self.options,  # type: ignore[arg-type]
        )
        self._clients[queue_url] = client
        return client


def endpoint_url(queue_url: str, configured: str = "") -> str:
    """Where SendMessage goes: `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL` as in botocore, else the queue URL's host.

    CloudFormation's queue URL carries the region's and partition's SQS host.
    """
    if configured:
        return configured.rstrip("/")
    parts = urlsplit(queue_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError("the queue URL is not an http(s) URL")
    return f"{parts.scheme}://{parts.netloc}"


def request_body(queue_url: str, body: str, attributes: Mapping[str, Any]) -> bytes:
    """The SendMessage request as botocore serializes it (string and number attributes only)."""
    request: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
    if attributes:
        for name, value in attributes.items():
            if not isinstance(value.get("StringValue"), str):
                raise ValueError(f"message attribute {name!r}: only StringValue attributes are sent")
        request["MessageAttributes"] = attributes
    return json.dumps(request).encode()


def check_md5s(answer: Mapping[str, Any], body: str, attributes: Mapping[str, Any]) -> None:
    """SQS's MD5s of what it stored against what was sent, as the AWS SDKs for Java, .NET and Go check them."""
    if answer.get("MD5OfMessageBody") != hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest():
        raise AwsCallError(OPERATION, "MD5OfMessageBodyMismatch", 200)
    if attributes and answer.get("MD5OfMessageAttributes") != attributes_md5(attributes):
        raise AwsCallError(OPERATION, "MD5OfMessageAttributesMismatch", 200)


def attributes_md5(attributes: Mapping[str, Any]) -> str:
    """SQS's MD5 of string message attributes: per name, in order, length-prefixed name, type, 1, value.

    (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html)
    """
    parts = []
    for name in sorted(attributes):
        value = attributes[name]
        for part in (name.encode("utf-8"), value["DataType"].encode("utf-8")):
            parts += (len(part).to_bytes(4, "big"), part)
        encoded = value["StringValue"].encode("utf-8")
        parts += (b"\x01", len(encoded).to_bytes(4, "big"), encoded)
    return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
