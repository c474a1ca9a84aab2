"""AWS calls over the JSON protocol for the hot paths: the receiver's SendMessage, the ledger's DynamoDB.

Why by hand: botocore's per-call pipeline (parameter validation, event hooks, endpoint rules with
JMESPath over every transaction item, user agent, model-driven serializing and parsing) costs
about 1.4 ms of CPU per SendMessage, 20 times the receiver's own work, and 5 ms per 100-item
`TransactWriteItems` whose items are already in DynamoDB's wire format (docs/performance.md).
What needs care about who we are stays botocore's: the credential chain (refreshable credentials
are frozen per call, so a role's rotation is honoured), the CA bundle and the recursion header.
Signing (sigv4.py) and the keep-alive transport (http11.py) are small modules of their own, each
with its measured reason. What is left here: one signed JSON POST, botocore-style retries inside
a time budget, and AWS's error codes as boto3 reports them.
"""

from __future__ import annotations

import json
import os
import random
import time
import zlib
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import NoCredentialsError
from botocore.handlers import add_recursion_detection_header

from .http11 import ConnectionPool
from .sigv4 import SigV4Signer

# The AWS JSON protocol's version is the service's (botocore's model `jsonVersion`): SQS and DynamoDB
# speak 1.0, Secrets Manager 1.1, and the Content-Type must name it.
JSON_1_0 = "1.0"
JSON_1_1 = "1.1"
USER_AGENT = "revenue-webhooks"  # how these calls read in CloudTrail (botocore leaves it out of the signature)
# botocore's standard retry mode: three attempts, full-jitter exponential backoff, on connection
# errors, 5xx, 429 and its transient and throttling error codes. (The ledger asks for more attempts,
# as botocore's DynamoDB default does; every client stops at its time budget.)
ATTEMPTS = 3
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "EC2ThrottledException",
        "KmsThrottled",
    }
)
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 1.0


class AwsCallError(Exception):
    """A call failed. `code` is AWS's error code as boto3 reports it, or the transport error's name.

    The text holds the operation, the code and the HTTP status only, never the request (it may be a
    webhook). `response` is the error answer shaped as boto3's `ClientError.response`.
    """

    def __init__(
        self, operation: str, code: str, status: int | None = None, response: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{operation} failed: {code}" + (f" (HTTP {status})" if status else ""))
        self.operation = operation
        self.code = code
        self.status = status
        self.response = response or {"Error": {"Code": code, "Message": ""}}

    @property
    def detail(self) -> str:
        """The service's own message and request id, for logs and dead letters where no request body can
        leak (DynamoDB's messages name attributes, not values)."""
        message = str(self.response.get("Error", {}).get("Message") or "")[:300]
        request_id = self.response.get("ResponseMetadata", {}).get("RequestId") or ""
        return f"{self}: {message}" + (f" (request {request_id})" if request_id else "")

    @property
    def retryable(self) -> bool:
        """Transport errors, 5xx, 429 and throttling (also as `AWS.SimpleQueueService.<code>`, `KMS.<code>`)."""
        return (
            self.status is None
            or self.status in RETRYABLE_STATUS
            or self.code in RETRYABLE_CODES
            or self.code.rsplit(".", 1)[-1] in RETRYABLE_CODES
        )


class AwsJsonClient:
    """One endpoint of one service; keep one per container, its pool keeps the connections warm.

    Thread-safe: the ledger calls it from several threads at once (`pool_size` connections kept).
    """

    def __init__(
        self,
        service: str,
        label: str,
        target_prefix: str,
        *,
        endpoint: str,
        region: str,
        credentials: Any,
        budget_s: float,
        connect_timeout_s: float,
        read_timeout_s: float,
        attempts: int = ATTEMPTS,
        json_version: str = JSON_1_0,
        headers: Mapping[str, str] | None = None,
        pool_size: int = 10,
        ca_bundle: str = "",
    ) -> None:
        require_credentials_and_region(credentials, region)
        try:
            self.pool = ConnectionPool(endpoint, maxsize=pool_size, ca_bundle=ca_bundle)
        except ValueError:
            raise ValueError(f"{label} endpoint is not an http(s) URL") from None
        self.signer = SigV4Signer(service, region)
        self.label, self.target_prefix = label, target_prefix
        self.credentials = credentials
        self.budget_s, self.connect_timeout_s, self.read_timeout_s = budget_s, connect_timeout_s, read_timeout_s
        self.attempts = attempts
        self.headers = {
            "Content-Type": f"application/x-amz-json-{json_version}",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }

    def call(self, operation: str, payload: Mapping[str, Any] | bytes) -> dict[str, Any]:
        """The operation's JSON answer, retried as botocore would within `budget_s`; `AwsCallError` otherwise."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        deadline = time.monotonic() + self.budget_s
        attempt = 1
        while True:
            try:
                return self._post(operation, body, deadline)
            except AwsCallError as error:
                delay = random.random() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))  # noqa: S311 (jitter)  # nosec B311
                if not error.retryable or attempt >= self.attempts or time.monotonic() + delay >= deadline:
                    raise
                time.sleep(delay)
                attempt += 1

    def _post(self, operation: str, body: bytes, deadline: float) -> dict[str, Any]:
        what = f"{self.label} {operation}"
        headers = {**self.headers, "X-Amz-Target": f"{self.target_prefix}.{operation}"}
        add_recursion_detection_header({"headers": headers})  # X-Ray / recursion detection, as botocore
        signed = self.signer.headers(
            self.credentials.get_frozen_credentials(), self.pool.host, self.pool.path, headers, body
        )
        try:
            response = self.pool.post(
                self.pool.path,
                signed,
                body,
                deadline=deadline,
                connect_timeout=self.connect_timeout_s,
                read_timeout=self.read_timeout_s,
            )
        except OSError as error:  # refused, reset, timed out, TLS, or an answer that is not HTTP
            raise AwsCallError(what, type(error).__name__) from error
        data = response.data
        crc = response.headers.get("x-amz-crc32")  # DynamoDB's checksum of its answer: retried, as botocore does
        if crc is not None and crc.isdigit() and int(crc) != zlib.crc32(data):
            raise AwsCallError(what, "CRC32Mismatch")
        try:
            answer = json.loads(data) if data else {}
        except ValueError:
            answer = None
        if response.status >= 300:
            code = error_code(response.status, response.headers, data)
            response_dict = error_response(code, response.status, answer)
            response_dict["ResponseMetadata"]["RequestId"] = response.headers.get("x-amzn-requestid", "")
            raise AwsCallError(what, code, response.status, response_dict)
        if not isinstance(answer, dict):
            raise AwsCallError(what, "InvalidResponse", response.status)
        return answer


def require_credentials_and_region(credentials: Any, region: str) -> None:
    """What botocore would refuse at the first call, refused when a container starts instead."""
    if credentials is None:
        raise NoCredentialsError()
    if not region:
        raise ValueError("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION")


def configured_endpoint(service_id: str, environ: Mapping[str, str] = os.environ) -> str:
    """`AWS_ENDPOINT_URL_<SERVICE ID>`, else `AWS_ENDPOINT_URL`, as botocore reads them ("" when neither is set)."""
    variable = f"AWS_ENDPOINT_URL_{service_id.upper().replace(' ', '_')}"
    return (environ.get(variable) or environ.get("AWS_ENDPOINT_URL") or "").rstrip("/")


def endpoint(service_id: str, host_prefix: str, region: str, environ: Mapping[str, str] = os.environ) -> str:
    """Where boto3 would send this service's calls, without building a boto3 client (~45 ms of cold start).

    A configured endpoint wins; FIPS or dual-stack, when asked for, come from a boto3 client's rules;
    otherwise the regional endpoint in the region's partition, from botocore's own partitions data.
    """
    configured = configured_endpoint(service_id, environ)
    if configured:
        return configured
    if any(environ.get(flag, "").lower() == "true" for flag in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT")):
        import boto3

        return str(boto3.client(host_prefix, region_name=region).meta.endpoint_url)
    return f"https://{host_prefix}.{region}.{dns_suffix(region)}"


def dns_suffix(region: str) -> str:
    """The DNS suffix of the region's partition (amazonaws.com, amazonaws.com.cn, ...), as botocore's rules find it."""
    import re

    from botocore.loaders import create_loader

    partitions = create_loader().load_data("partitions")["partitions"]
    for partition in partitions:
        if region in partition["regions"]:
            return str(partition["outputs"]["dnsSuffix"])
    for partition in partitions:
        if re.match(partition["regionRegex"], region):
            return str(partition["outputs"]["dnsSuffix"])
    return str(partitions[0]["outputs"]["dnsSuffix"])


def error_code(status: int, headers: Mapping[str, str], data: bytes) -> str:
    """The error code boto3 would report: the query-compatible code when SQS sends one, else `__type`."""
    query_error = (headers.get("x-amzn-query-error") or "").split(";")
    if len(query_error) == 2 and query_error[0]:
        return query_error[0]
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    kind = answer.get("__type") if isinstance(answer, dict) else None
    if not isinstance(kind, str) or not kind:
        return f"HTTP{status}"
    return kind.split(":", 1)[0].rsplit("#", 1)[-1]


def error_response(code: str, status: int, answer: Any) -> dict[str, Any]:
    """An error answer as boto3's `ClientError.response`: `Error`, plus the service's own fields
    (DynamoDB's `CancellationReasons`)."""
    fields = answer if isinstance(answer, dict) else {}
    extra = {k: v for k, v in fields.items() if k not in ("__type", "message", "Message")}
    message = fields.get("message") or fields.get("Message") or ""
    return {**extra, "Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
