"""Process-wide resources of a Lambda container: logger, metrics, AWS clients, secrets.

Created lazily, once per container, and reused by warm invocations. The AWS calls (SQS,
DynamoDB, Secrets Manager) go through aws_json.py with the credentials of boto3's default
session, and honour `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` as boto3 does, so the
same code runs against AWS, the local stack and the tests' moto server.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from .aws_json import JSON_1_1
from .config import Settings

if TYPE_CHECKING:
    from .aws_json import AwsJsonClient
    from .queue_sender import QueueSender

NAMESPACE = "RevenueWebhooks"
SECRET_MAX_AGE_S = 300
# A ledger call and its retries; the forwarder keeps its own margin from the Lambda deadline. A
# throttled table gets up to ten attempts (botocore's DynamoDB default) before the message waits in SQS.
DYNAMODB_BUDGET_S = 10.0
DYNAMODB_ATTEMPTS = 10
# A secret read and its retries, within what the strictest webhook sender waits (Shopify, Paddle: 5 s).
SECRETS_BUDGET_S = 3.0


def _log_message(text: str) -> Any:
    """A message that is a JSON document is logged as one, as Powertools' default does, without its
    failed `json.loads` (and exception) on every other message: a seventh of a log line's CPU."""
    return json.loads(text) if text[:1] in ("{", "[") else text


logger = Logger(service="revenue-webhooks", json_deserializer=_log_message)
metrics = Metrics(namespace=NAMESPACE, service="revenue-webhooks")


@cache
def queue_sender() -> QueueSender:
    """SendMessage (queue_sender.py) for the receiver's webhooks and the forwarder's dead letters.

    All of this module's AWS calls take the credentials of boto3's default session, so the credential
    chain is resolved once per container.
    """
    from .queue_sender import QueueSender

    session = _default_session()
    return QueueSender(session.get_credentials(), region=_region(session))


def dynamodb(concurrency: int) -> AwsJsonClient:
    """The ledger's DynamoDB (aws_json.py), where a boto3 client of the default session would go."""
    return _aws_json(
        "dynamodb",
        "DynamoDB",
        "DynamoDB_20120810",
        budget_s=DYNAMODB_BUDGET_S,
        attempts=DYNAMODB_ATTEMPTS,
        pool_size=concurrency,
    )


class SecretsManager:
    """`get_secret_value` for Powertools' SecretsProvider, over aws_json (a boto3 client costs ~45 ms of cold start)."""

    def __init__(self, client: AwsJsonClient) -> None:
        self.client = client

    def get_secret_value(self, **options: Any) -> dict[str, Any]:
        answer = self.client.call("GetSecretValue", options)
        if "SecretBinary" in answer:  # base64 on the wire; boto3 gives bytes
            answer["SecretBinary"] = base64.b64decode(answer["SecretBinary"])
        return answer


def _aws_json(host_prefix: str, service_id: str, target_prefix: str, **options: Any) -> AwsJsonClient:
    from .aws_json import AwsJsonClient, endpoint

    session = _default_session()
    region = _region(session)
    return AwsJsonClient(
        host_prefix,
        service_id,
        target_prefix,
        endpoint=endpoint(service_id, host_prefix, region),
        region=region,
        credentials=session.get_credentials(),
        connect_timeout_s=options.pop("connect_timeout_s", 1.0),
        read_timeout_s=options.pop("read_timeout_s", 5.0),
        ca_bundle=os.environ.get("AWS_CA_BUNDLE", ""),
        **options,
    )


def _region(session: Any) -> str:
    """Lambda's `AWS_REGION`, else the default session's (`AWS_DEFAULT_REGION`, the config file): one rule for every call."""
    return os.environ.get("AWS_REGION") or session.region_name or ""


def _default_session() -> Any:
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


def secret_values(secret_id: str) -> list[str]:
    """A secret's comma-separated values (several while a secret is rotated), cached for five minutes."""
    return [value.strip() for value in secret_string(secret_id).split(",") if value.strip()]


def secret_string(secret_id: str, *, force: bool = False) -> str:
    value = _secrets().get(secret_id, max_age=SECRET_MAX_AGE_S, force_fetch=force)
    return value if isinstance(value, str) else value.decode()


@cache
def _secrets() -> Any:
    """Powertools' secrets cache, on GetSecretValue over aws_json with the default session's credentials.

    A boto3 client would load Secrets Manager's model and endpoint rules: about 45 ms of every
    cold start (docs/performance.md).
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    client = _aws_json(
        "secretsmanager", "Secrets Manager", "secretsmanager", budget_s=SECRETS_BUDGET_S, json_version=JSON_1_1
    )
    return SecretsProvider(boto3_client=SecretsManager(client))  # type: ignore[arg-type]


def standard_webhooks_secrets(settings: Settings, sender: str) -> list[str]:
    """One sender's secrets from the StandardWebhooksSecrets JSON object."""
    if not settings.standard_webhooks_secrets_id:
        return []
    data = json.loads(secret_string(settings.standard_webhooks_secrets_id) or "{}")
    raw = data.get(sender, "") if isinstance(data, dict) else ""
    return [value.strip() for value in str(raw).split(",") if value.strip()]


def tag_request(provider: str, event_type: str, event_id: str = "") -> None:
    """The receiver handles one request per invocation: its metrics share one EMF record with these dimensions.

    The event id rides along as EMF metadata (a log property, not a dimension), so that record is also
    the accepted webhook's log line: `filter event_id = "evt_..."` in Logs Insights finds it.
    (One record instead of one per metric and a log line beside it: those were half of the receiver's
    warm CPU, and of its log bytes.)
    """
    metrics.add_dimension(name="Provider", value=provider or "unknown")
    metrics.add_dimension(name="EventType", value=(event_type or "unknown")[:200])
    if event_id:
        metrics.add_metadata(key="event_id", value=event_id[:200])


def add(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def count(name: str, by: Counter[tuple[str, str]]) -> None:
    """Emit `name` per (provider, event type), as EMF metrics with those two dimensions."""
    from aws_lambda_powertools.metrics import single_metric

    for (provider, event_type), value in by.items():
        with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="Provider", value=provider or "unknown")
            metric.add_dimension(name="EventType", value=(event_type or "unknown")[:200])


def reset() -> None:
    """Forget every per-container cache (clients, secrets, settings), as a new Lambda container would.

    Lambda never needs this; the local stack and the tests call it when they start a handler
    against new endpoints in the same process.
    """
    from aws_lambda_powertools.utilities import parameters

    from . import config, forwarder, mixpanel
    from .providers import _INSTANCES

    queue_sender.cache_clear()
    _secrets.cache_clear()
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()
    config.settings.cache_clear()
    forwarder._FORWARDERS.clear()
    mixpanel.reset_shared_client()
    _INSTANCES.clear()
