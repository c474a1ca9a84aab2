"""Logging and metrics, in one place: Powertools' Logger and Metrics (EMF), with the project's dimensions."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = "RevenueWebhooks"
SERVICE = "revenue-webhooks"


def _log_message(text: str) -> Any:
    """A message that is a JSON document is logged as one, as Powertools' default does, without its
    failed `json.loads` (and exception) on every other message: a seventh of a log line's CPU."""
    return json.loads(text) if text[:1] in ("{", "[") else text


# Powertools annotates `json_deserializer` as returning str; any JSON value is what it logs.
logger = Logger(service=SERVICE, json_deserializer=cast(Any, _log_message))
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


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


def add(name: str, value: int = 1) -> None:
    """Count `name` in this invocation's EMF record."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count(name: str, by: Counter[tuple[str, str]], mode: str | None = None) -> None:
    """Emit `name` per (provider, event type), as EMF metrics with those two dimensions (and `Mode`, the
    forwarder's lane: live or test, so test-mode traffic never adds to production's figures)."""
    from aws_lambda_powertools.metrics import single_metric

    for (provider, event_type), value in by.items():
        with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="Provider", value=provider or "unknown")
            metric.add_dimension(name="EventType", value=(event_type or "unknown")[:200])
            if mode:
                metric.add_dimension(name="Mode", value=mode)


def tag_lane(mode: str) -> None:
    """A forwarder invocation serves one lane (one queue): its EMF record carries the lane as `Mode`.

    An invocation that counted nothing leaves its dimensions behind (Powertools clears them only when it
    publishes), so the next one may find the other lane's: replaced in place, without add_dimension's warning.
    """
    if "Mode" in metrics.dimension_set:
        metrics.dimension_set["Mode"] = mode
    else:
        metrics.add_dimension(name="Mode", value=mode)
