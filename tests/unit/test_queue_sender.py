"""The receiver's SendMessage check: SQS's MD5s of the body and the attributes, computed as SQS computes them.

What goes over the wire (boto3 against moto and a scripted relay) is tested in tests/integration/test_aws_clients.py.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto.sqs.models import Message
from revenue_webhooks.adapters.sqs import QueueChecksumMismatch, attributes_md5, check_md5s
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.service.envelope import to_sqs

MESSAGE = to_sqs(
    QueuedEvent("stripe", "evt_1", "checkout.session.completed", 1_700_000_000_000, '{"a": "Zürich €"}'.encode())
)


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
    sent = attributes_md5(attributes)
    check_md5s(good, body, sent)
    check_md5s({"MD5OfMessageBody": good["MD5OfMessageBody"]}, body, None)  # no attributes sent, none answered
    for answer, what in [
        ({**good, "MD5OfMessageBody": hashlib.md5(b"other").hexdigest()}, "MD5OfMessageBody"),  # noqa: S324
        ({**good, "MD5OfMessageAttributes": "0" * 32}, "MD5OfMessageAttributes"),
        ({"MD5OfMessageBody": good["MD5OfMessageBody"]}, "MD5OfMessageAttributes"),
    ]:
        with pytest.raises(QueueChecksumMismatch, match=what):
            check_md5s(answer, body, sent)


def test_attributes_other_than_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="StringValue"):
        attributes_md5({"blob": {"DataType": "Binary", "BinaryValue": b"\x00"}})
