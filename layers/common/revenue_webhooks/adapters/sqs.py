"""One SQS `SendMessage`, checked: the receiver's only AWS call per webhook, and the forwarder's dead letters.

The call is boto3's (aws_clients.py has its time budget). What is added here is the check that SQS stored
what was sent: the MD5s SQS answers with, compared as the AWS SDKs for Java, .NET and Go compare them
(botocore does not).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


class QueueChecksumMismatch(Exception):
    """SQS answered with an MD5 of something other than what was sent: the message is not known to be stored."""


class QueueSender:
    """`send_message` with boto3's keywords, so either can stand in for the other; wraps one SQS client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def send_message(
        self, *, QueueUrl: str, MessageBody: str, MessageAttributes: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """`MessageId` and the MD5s SQS answered, once it holds the message; botocore's error otherwise."""
        attributes = dict(MessageAttributes or {})
        expected = attributes_md5(attributes) if attributes else None  # refuses what it cannot check, before sending
        arguments: dict[str, Any] = {"QueueUrl": QueueUrl, "MessageBody": MessageBody}
        if attributes:
            arguments["MessageAttributes"] = attributes
        answer: dict[str, Any] = self.client.send_message(**arguments)
        check_md5s(answer, MessageBody, expected)
        return answer


def check_md5s(answer: Mapping[str, Any], body: str, attributes_md5_sent: str | None) -> None:
    """SQS's MD5s of what it stored against what was sent, as the AWS SDKs for Java, .NET and Go check them."""
    if answer.get("MD5OfMessageBody") != hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest():
        raise QueueChecksumMismatch("MD5OfMessageBody does not match the message body sent")
    if attributes_md5_sent is not None and answer.get("MD5OfMessageAttributes") != attributes_md5_sent:
        raise QueueChecksumMismatch("MD5OfMessageAttributes does not match the attributes sent")


def attributes_md5(attributes: Mapping[str, Any]) -> str:
    """SQS's MD5 of string message attributes: per name, in order, length-prefixed name, type, 1, value.

    (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html)
    """
    parts: list[bytes] = []
    for name in sorted(attributes):
        value = attributes[name]
        if not isinstance(value.get("StringValue"), str):
            raise ValueError(f"message attribute {name!r}: only StringValue attributes are sent")
        for part in (name.encode("utf-8"), value["DataType"].encode("utf-8")):
            parts += (len(part).to_bytes(4, "big"), part)
        encoded = value["StringValue"].encode("utf-8")
        parts += (b"\x01", len(encoded).to_bytes(4, "big"), encoded)
    return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
