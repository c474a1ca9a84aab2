"""Process-wide resources of a Lambda container: logger, metrics, AWS clients, secrets.

Created once per container (at init, by the handlers' `warm_up`), reused by warm invocations.
Every AWS call is a boto3 client call (aws_clients.py); the clients honour `AWS_ENDPOINT_URL` /
`AWS_ENDPOINT_URL_<SERVICE>` as boto3 does, so the same code runs against AWS, the local stack and
the tests' moto server.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from . import aws_clients
from .config import Settings

if TYPE_CHECKING:
    from .queue_sender import QueueSender

NAMESPACE = "RevenueWebhooks"
SECRET_MAX_AGE_S = 300


def _log_message(text: str) -> Any:
    """A message that is a JSON document is logged as one, as Powertools' default does, without its
    failed `json.loads` (and exception) on every other message: a seventh of a log line's CPU."""
    return json.loads(text) if text[:1] in ("{", "[") else text


logger = Logger(service="revenue-webhooks", json_deserializer=_log_message)
metrics = Metrics(namespace=NAMESPACE, service="revenue-webhooks")


@cache
def aws(service: str) -> Any:
    """The container's boto3 client for `service` (sqs, dynamodb, secretsmanager), created once."""
    return aws_clients.client(service, _aws_session())


@cache
def _aws_session() -> Any:
    """One session for every client: credentials resolved once, botocore's loaded data shared between clients."""
    return aws_clients.session()


@cache
def queue_sender() -> QueueSender:
    """SendMessage with SQS's MD5s checked, for the receiver's webhooks and the forwarder's dead letters."""
    from .queue_sender import QueueSender

    return QueueSender(aws("sqs"))


def warm_up(*services: str) -> None:
    """Create the clients a function will use, at init: with SnapStart that work is in the snapshot.

    Nothing is fetched: no connection is opened and no secret is read before the first invocation,
    so a snapshot holds neither a socket that will be stale nor a secret that may have rotated.
    """
    for service in services:
        aws(service)
    if "sqs" in services:
        queue_sender()
    if "secretsmanager" in services:
        _secrets()


def snapshot_init() -> bool:
    """Whether this init is SnapStart's (done once per published version, then restored), not a cold start's.

    Lambda says so in `AWS_LAMBDA_INITIALIZATION_TYPE`; work that only some requests need (a provider's
    library) is then worth doing at init, since no webhook waits for it.
    """
    import os

    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


def after_restore() -> None:
    """Run by Lambda after a SnapStart restore: what must differ between environments made from one snapshot.

    `random`'s state is in the snapshot, so every restored environment would draw the same retry jitter
    (botocore's and Mixpanel's backoff): reseeded from the OS. Cached secret values are dropped so a
    restore never serves one older than SECRET_MAX_AGE_S; credentials need nothing (with SnapStart,
    Lambda hands them out through the container credentials endpoint, and botocore refreshes them).
    """
    import random

    random.seed()
    if _secrets.cache_info().currsize:
        _secrets().clear_cache()


def register_snapstart_hooks() -> bool:
    """Register `after_restore` with Lambda's runtime hooks; False outside Lambda's Python runtime."""
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:  # the local stack, the tests, or a runtime before Python 3.12
        return False
    register_after_restore(after_restore)
    return True


def secret_values(secret_id: str) -> list[str]:
    """A secret's comma-separated values (several while a secret is rotated), cached for five minutes."""
    return [value.strip() for value in secret_string(secret_id).split(",") if value.strip()]


def secret_string(secret_id: str, *, force: bool = False) -> str:
    value = _secrets().get(secret_id, max_age=SECRET_MAX_AGE_S, force_fetch=force)
    return value if isinstance(value, str) else value.decode()


@cache
def _secrets() -> Any:
    """Powertools' secrets cache on the container's Secrets Manager client."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=aws("secretsmanager"))


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

    aws.cache_clear()
    _aws_session.cache_clear()
    queue_sender.cache_clear()
    _secrets.cache_clear()
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()
    config.settings.cache_clear()
    forwarder._FORWARDERS.clear()
    mixpanel.reset_shared_client()
    _INSTANCES.clear()
