"""The hand-written AWS client's pure parts: where calls go, and errors shaped as boto3 shapes them.

The wire (signing, retries, budgets, TLS, checksums) is tested in tests/integration/test_aws_json_wire.py.
"""

from __future__ import annotations

import boto3
import pytest
from revenue_webhooks.aws_json import AwsCallError, configured_endpoint, endpoint, error_response

SERVICES = [("DynamoDB", "dynamodb"), ("Secrets Manager", "secretsmanager"), ("SQS", "sqs")]
REGIONS = [
    "us-east-1",
    "eu-central-2",
    "mx-central-1",
    "cn-north-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "eu-isoe-west-1",
]


@pytest.mark.parametrize(("service_id", "host_prefix"), SERVICES)
@pytest.mark.parametrize("region", REGIONS)
def test_the_endpoint_is_the_one_a_boto3_client_would_use(service_id: str, host_prefix: str, region: str) -> None:
    client = boto3.client(host_prefix, region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
    assert endpoint(service_id, host_prefix, region, environ={}) == client.meta.endpoint_url


def test_a_configured_endpoint_wins_as_in_botocore() -> None:
    both = {"AWS_ENDPOINT_URL": "http://a:1/", "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://b:2"}
    assert configured_endpoint("Secrets Manager", both) == "http://b:2"
    assert configured_endpoint("DynamoDB", both) == "http://a:1"
    assert configured_endpoint("DynamoDB", {}) == ""
    assert (
        endpoint("DynamoDB", "dynamodb", "eu-west-1", environ={"AWS_ENDPOINT_URL_DYNAMODB": "http://c:3"})
        == "http://c:3"
    )


def test_an_error_answer_reads_as_boto3s_client_error_response() -> None:
    answer = {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": "Transaction cancelled",
        "CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}],
    }
    response = error_response("TransactionCanceledException", 400, answer)
    assert response["Error"] == {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
    assert response["CancellationReasons"][1]["Code"] == "ConditionalCheckFailed"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "__type" not in response
    assert error_response("HTTP502", 502, None)["Error"] == {"Code": "HTTP502", "Message": ""}


def test_the_error_text_names_operation_code_and_status_only() -> None:
    error = AwsCallError("DynamoDB TransactWriteItems", "ValidationException", 400, {"Error": {"Message": "item x"}})
    assert str(error) == "DynamoDB TransactWriteItems failed: ValidationException (HTTP 400)"
    assert not error.retryable
    assert AwsCallError("DynamoDB GetItem", "ProvisionedThroughputExceededException", 400).retryable
    assert AwsCallError("DynamoDB GetItem", "CRC32Mismatch").retryable


def test_fips_when_asked_for_comes_from_boto3s_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    assert endpoint("DynamoDB", "dynamodb", "us-east-1") == "https://dynamodb-fips.us-east-1.amazonaws.com"
    assert (
        endpoint("Secrets Manager", "secretsmanager", "us-west-2")
        == "https://secretsmanager-fips.us-west-2.amazonaws.com"
    )


def test_the_detail_adds_the_services_message_and_request_id_for_logs_and_dead_letters() -> None:
    response = error_response("ValidationException", 400, {"message": "Item size has exceeded the maximum"})
    response["ResponseMetadata"]["RequestId"] = "REQ123"
    error = AwsCallError("DynamoDB TransactWriteItems", "ValidationException", 400, response)
    assert error.detail == (
        "DynamoDB TransactWriteItems failed: ValidationException (HTTP 400): "
        "Item size has exceeded the maximum (request REQ123)"
    )
    assert "Item size" not in str(error), "the plain text stays code and status only (the receiver logs it)"
