"""SigV4 (sigv4.py) against AWS's published test vector and against botocore's signer, header for header.

The wire tests (tests/integration/test_aws_json_wire.py) also recompute every signature a scripted
endpoint receives, from the AWS documentation's steps.
"""

from __future__ import annotations

import calendar
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from revenue_webhooks.sigv4 import SigV4Signer

# aws-sig-v4-test-suite, "post-vanilla" (the credentials, time and scope of every case in the suite).
EXAMPLE_CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
EXAMPLE_TIME = calendar.timegm((2015, 8, 30, 12, 36, 0))
POST_VANILLA_SIGNATURE = "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"


def botocore_headers(
    credentials: Credentials, service: str, region: str, url: str, headers: dict[str, str], body: bytes, now: float
) -> dict[str, str]:
    """botocore's SigV4 of the same request at the same time (add_auth's steps, with the timestamp given)."""
    request = AWSRequest("POST", url, data=body, headers=headers)
    request.context["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    auth = SigV4Auth(credentials.get_frozen_credentials(), service, region)
    auth._modify_request_before_signing(request)
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return dict(request.headers.items())


def test_the_published_post_vanilla_case() -> None:
    signed = SigV4Signer("service", "us-east-1").headers(
        EXAMPLE_CREDENTIALS.get_frozen_credentials(), "example.amazonaws.com", "/", {}, b"", now=EXAMPLE_TIME
    )
    assert signed["X-Amz-Date"] == "20150830T123600Z"
    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={POST_VANILLA_SIGNATURE}"
    )


@pytest.mark.parametrize(
    ("service", "host", "path", "token"),
    [
        ("sqs", "sqs.eu-west-1.amazonaws.com", "/", None),
        ("sqs", "sqs.eu-west-1.amazonaws.com", "/", "FwoGZXIvYXdzEBYaDH+temporary/token=="),
        ("dynamodb", "127.0.0.1:4566", "/", "token"),
        ("secretsmanager", "localhost:5000", "/some/prefix/", None),
    ],
)
def test_every_header_matches_botocores_signer(service: str, host: str, path: str, token: str | None) -> None:
    credentials = Credentials("AKIAEXAMPLE", "secret/with+chars", token)
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "User-Agent": "revenue-webhooks",
        "X-Amz-Target": "AmazonSQS.SendMessage",
        "x-amzn-query-mode": "true",
        "X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793",
    }
    body = b'{"QueueUrl":"q","MessageBody":"  spaces  and\\nlines  "}'
    ours = SigV4Signer(service, "eu-west-1").headers(
        credentials.get_frozen_credentials(), host, path, headers, body, now=EXAMPLE_TIME
    )
    theirs = botocore_headers(credentials, service, "eu-west-1", f"https://{host}{path}", headers, body, EXAMPLE_TIME)
    assert {k.lower(): v for k, v in ours.items() if k != "Host"} == {k.lower(): v for k, v in theirs.items()}


def test_the_days_key_is_derived_again_for_a_new_day_or_a_new_secret() -> None:
    signer = SigV4Signer("sqs", "us-east-1")
    first = Credentials("AKID", "one").get_frozen_credentials()
    rotated = Credentials("AKID", "two").get_frozen_credentials()

    def signature(credentials: object, now: float) -> str:
        return signer.headers(credentials, "h", "/", {}, b"{}", now=now)["Authorization"].rsplit("=", 1)[1]

    today = signature(first, EXAMPLE_TIME)
    assert signature(first, EXAMPLE_TIME) == today
    tomorrow = signature(first, EXAMPLE_TIME + 86_400)
    assert tomorrow != today
    assert signature(rotated, EXAMPLE_TIME + 86_400) != tomorrow
    expected = botocore_headers(
        Credentials("AKID", "two"), "sqs", "us-east-1", "https://h/", {}, b"{}", EXAMPLE_TIME + 86_400
    )
    assert signature(rotated, EXAMPLE_TIME + 86_400) == expected["Authorization"].rsplit("=", 1)[1]
