"""The container's AWS clients: one boto3 client per service, with explicit timeouts and retries.

Every AWS call goes through botocore, so the credential chain (SnapStart's container credentials
included), the AWS config file, `AWS_ENDPOINT_URL[_<SERVICE>]`, FIPS and dual-stack endpoints,
`HTTPS_PROXY`/`NO_PROXY`, `AWS_CA_BUNDLE` and `AWS_MAX_ATTEMPTS`/`AWS_RETRY_MODE` work as botocore
documents them. What is ours is the budget of each call: botocore has no deadline per call, so
attempts x (connect + read timeout) + standard-mode backoff is chosen to fit what the caller can wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

APP_ID = "revenue-webhooks"  # appears as `app/revenue-webhooks` in the user agent, so in CloudTrail


@dataclass(frozen=True)
class CallBudget:
    """How long one call of a service may take, and how many attempts botocore's standard mode makes."""

    connect_timeout_s: float
    read_timeout_s: float
    attempts: int
    pool: int = 10

    @property
    def worst_case_s(self) -> float:
        """Every attempt timing out, plus standard mode's backoff (random x 2^(attempt-1) s, capped at 20 s)."""
        backoff = sum(min(20.0, 2.0 ** (attempt - 1)) for attempt in range(1, self.attempts))
        return self.attempts * (self.connect_timeout_s + self.read_timeout_s) + backoff


BUDGETS = {
    # The receiver's SendMessage: Shopify and Paddle give up on a webhook after 5 s, so the receiver must be
    # able to answer 503 (and let them retry) before that: 2 x (0.5 + 1.0) + 1 = 4 s at worst. SQS answers a
    # SendMessage in ~10-20 ms, so a read timeout of 1 s is 50 times the usual.
    "sqs": CallBudget(connect_timeout_s=0.5, read_timeout_s=1.0, attempts=2),
    # A secret read on a cache miss (every five minutes): the same 4 s at worst.
    "secretsmanager": CallBudget(connect_timeout_s=0.5, read_timeout_s=1.0, attempts=2),
    # The ledger, from a forwarder with a 60 s timeout: throttling is its usual trouble, so more attempts;
    # 5 x (1 + 3) + 1 + 2 + 4 + 8 = 35 s at worst, after which the batch waits in SQS. The ledger calls
    # from 16 threads at once (ledger.CONCURRENCY): one pooled connection each.
    "dynamodb": CallBudget(connect_timeout_s=1.0, read_timeout_s=3.0, attempts=5, pool=16),
}


def config(service: str, operator: Mapping[str, Any] | None = None) -> Any:
    """The botocore `Config` of a service's client: its budget, standard retries, TCP keep-alive, our app id.

    `operator`: what the deployment set itself (`max_attempts`, `retry_mode` from `AWS_MAX_ATTEMPTS`,
    `AWS_RETRY_MODE` or the AWS config file), which wins over our defaults, as it would in any AWS SDK.
    """
    from botocore.config import Config

    budget = BUDGETS[service]
    chosen = operator or {}
    retries = {
        "mode": chosen.get("retry_mode") or "standard",
        "total_max_attempts": int(chosen.get("max_attempts") or budget.attempts),
    }
    return Config(
        connect_timeout=budget.connect_timeout_s,
        read_timeout=budget.read_timeout_s,
        retries=retries,  # type: ignore[arg-type]
        max_pool_connections=budget.pool,
        tcp_keepalive=True,
        user_agent_appid=APP_ID,  # type: ignore[call-arg]  # botocore has it since 1.31; its stubs do not
    )


def session() -> Any:
    """A boto3 session on a botocore session of our own, whose resolved settings we can read."""
    import boto3
    import botocore.session

    return boto3.session.Session(botocore_session=botocore.session.get_session())


def client(service: str, aws_session: Any = None) -> Any:
    """A boto3 client of `aws_session` (a new `session()` when None) with `config(service)`."""
    aws_session = aws_session or session()
    return aws_session.client(service, config=config(service, operator_retries(aws_session)))


def operator_retries(aws_session: Any) -> dict[str, Any]:
    """`max_attempts` and `retry_mode` as the deployment set them: environment first, then the AWS config file.

    (botocore's resolved value cannot tell a setting from its default, and an explicit `Config` would
    otherwise hide the operator's choice.)
    """
    import os

    profile = aws_session._session.get_scoped_config()  # boto3 keeps its botocore session in `_session`
    return {
        name: os.environ.get(variable) or profile.get(name)
        for name, variable in (("max_attempts", "AWS_MAX_ATTEMPTS"), ("retry_mode", "AWS_RETRY_MODE"))
    }


def error_code(error: BaseException) -> str:
    """AWS's error code of a botocore `ClientError`, else the exception's class name (a transport error)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return type(error).__name__


def error_detail(error: BaseException) -> str:
    """For logs and dead letters: the code, AWS's message and request id, never the request.

    (botocore's own text of a `ClientError` is the same; transport errors name the endpoint, not the body.)
    """
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return f"{type(error).__name__}: {error}"[:500]
    message = str((response.get("Error") or {}).get("Message") or "")[:300]
    request_id = (response.get("ResponseMetadata") or {}).get("RequestId") or ""
    operation = getattr(error, "operation_name", "") or "AWS call"
    return f"{operation} failed: {error_code(error)}: {message}" + (f" (request {request_id})" if request_id else "")
