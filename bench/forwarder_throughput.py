"""Forwarder throughput: events per second from SQS batches into a Mixpanel that answers after a set latency.

Only time inside invocations counts. Every contender gets the same SQS records (this project's
queue format) and sends the same Mixpanel events to the same server process:
- this project: the real ForwarderFunction handler (mapping, the DynamoDB ledger on a stand-in with
  DynamoDB-like latencies in another process (bench/dynamodb_endpoint.py: moto cannot take the load),
  gzip `/import` of up to 2000 events per request, concurrent requests, `/engage`);
- this project's Mixpanel client alone: parse + map + `MixpanelClient.import_events` (no ledger);
- `BufferedConsumer`: each record parsed and mapped by this project's code, then the official SDK's
  `import_data` through `BufferedConsumer` (it sends 50 events per request) and a final `flush()`;
- `Consumer`: the same with the SDK's default consumer (one request per event); at high latency it
  runs on the first events only, as it would take minutes otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import io
import logging
import os
import time
import tracemalloc
from typing import Any

from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.service.envelope import from_record, to_sqs

from devstack.aws import LOCAL_CREDENTIALS, provision
from devstack.esm import sqs_record
from devstack.lambda_runtime import LambdaContext, load_handler
from devstack.mixpanel import DEMO_CREDENTIALS
from devstack.template import Template

from . import payloads
from .common import ratio, table
from .services import Service, dynamodb_stats, mixpanel_summary

CONSUMER_MAX_SECONDS = 8.0  # the per-event Consumer stops after this much time inside invocations


def records_for(bodies: list[bytes], offset: int = 0) -> list[dict[str, Any]]:
    """Lambda SQS records in this project's queue format (raw body + message attributes)."""
    import json

    records = []
    for index, body in enumerate(bodies):
        parsed = json.loads(body)
        message = to_sqs(QueuedEvent("stripe", parsed["id"], parsed["type"], 1_700_000_000_000, body))
        records.append(
            sqs_record(
                message_id=f"00000000-0000-4000-8000-{offset + index:012d}",
                receipt_handle=base64.b64encode(f"bench-{offset + index}".encode()).decode(),
                body=message["MessageBody"],
                message_attributes=message["MessageAttributes"],
                attributes={"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
                queue_arn="arn:aws:sqs:us-east-1:123456789012:bench-EventsQueue",
            )
        )
    return records


@contextlib.contextmanager
def _quiet() -> Any:
    """Send the handlers' JSON logs and EMF metrics to a buffer (they would flood the terminal)."""
    sink = io.StringIO()
    handlers = [h for h in logging.getLogger("revenue-webhooks").handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.setStream(sink) for h in handlers]
    try:
        with contextlib.redirect_stdout(sink):
            yield sink
    finally:
        for handler, old in zip(handlers, previous, strict=True):
            handler.setStream(old)


class _Stack:
    """moto + the local Mixpanel (own processes) and the forwarder loaded as Lambda would load it."""

    def __init__(self, moto: Service, mixpanel: Service, dynamodb: Service | None = None) -> None:
        import json

        self.mixpanel = mixpanel
        self.template = Template(parameters={"Mode": "any"})
        creds = DEMO_CREDENTIALS.secret_value()
        resources = provision(
            self.template,
            moto.url,
            stack=f"fwd{time.monotonic_ns() % 10**8}",
            secret_values={"MixpanelCredentials": json.dumps(creds)},
        )
        self.env = {
            **self.template.function_environment("ForwarderFunction", resources.resolver),
            "AWS_ENDPOINT_URL": moto.url,
            **LOCAL_CREDENTIALS,
            "AWS_EC2_METADATA_DISABLED": "true",
            "MIXPANEL_API_URL": mixpanel.url,
        }
        if dynamodb is not None:
            self.env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb.url
        from revenue_webhooks import bootstrap

        bootstrap.reset()
        self.handler = load_handler(self.template, "ForwarderFunction", self.env)
        self.timeout_s = float(self.template.function_setting("ForwarderFunction", "Timeout") or 60)

    def invoke(self, records: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
        context = LambdaContext("ForwarderFunction", self.timeout_s)
        started = time.perf_counter()
        response = self.handler({"Records": records}, context)
        return time.perf_counter() - started, response


@contextlib.contextmanager
def _counting_requests() -> Any:
    """Count Mixpanel requests per path made by this project's client (benchmark instrumentation only)."""
    from revenue_webhooks.mixpanel.client import MixpanelClient

    counts: dict[str, int] = {}
    original = MixpanelClient._post

    def counted(self: Any, path: str, **kwargs: Any) -> Any:
        counts[path] = counts.get(path, 0) + 1
        return original(self, path, **kwargs)

    MixpanelClient._post = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        MixpanelClient._post = original  # type: ignore[method-assign]


# Where an invocation's time goes: each step, and the calls inside it that wait on a service.
PHASES = (
    ("revenue_webhooks.service.forwarder", "Forwarder", "_map", "map: parse each body, map it to facts"),
    ("revenue_webhooks.service.forwarder", "Forwarder", "_record", "ledger: render, read, write"),
    (
        "revenue_webhooks.adapters.dynamodb_ledger",
        "DynamoDbLedger",
        "_batch_get",
        "  of which the concurrent read round",
    ),
    ("revenue_webhooks.mixpanel.client", "MixpanelClient", "import_events", "/import (alongside /engage)"),
    ("revenue_webhooks.mixpanel.client", "MixpanelClient", "update_profiles", "/engage (alongside /import)"),
    ("revenue_webhooks.service.forwarder", "Forwarder", "_finish", "dead letters, metrics, the summary"),
    ("revenue_webhooks.service.forwarder", "Forwarder", "process", "the whole batch"),
)


@contextlib.contextmanager
def _timing_phases() -> Any:
    """Wall and calling-thread CPU seconds per phase (benchmark instrumentation only, like the request count)."""
    import importlib

    spent: dict[str, list[float]] = {label: [0.0, 0.0] for *_, label in PHASES}
    originals = []
    for module_name, class_name, method, label in PHASES:
        cls = getattr(importlib.import_module(module_name), class_name)
        original = getattr(cls, method)
        originals.append((cls, method, original))

        def timed(*args: Any, _original: Any = original, _label: str = label, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label][0] += time.perf_counter() - wall
                spent[_label][1] += time.thread_time() - cpu

        setattr(cls, method, timed)
    try:
        yield spent
    finally:
        for cls, method, original in originals:
            setattr(cls, method, original)


def _ours(stack: _Stack, records: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    seconds, cpu_seconds, failures, batches = 0.0, 0.0, 0, 0
    with _quiet() as logs, _counting_requests() as paths, _timing_phases() as phases:
        for start in range(0, len(records), batch_size):
            cpu = time.process_time()
            spent, response = stack.invoke(records[start : start + batch_size])
            cpu_seconds += time.process_time() - cpu
            seconds += spent
            batches += 1
            failures += len(response.get("batchItemFailures") or [])
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # the whole process: includes nothing else while invocations run
        "invocations": batches,
        "failed_messages": failures,
        "requests": dict(paths),
        "log_bytes": len(logs.getvalue().encode()),
        "phases_ms_per_invocation": {
            label: {"wall": wall * 1000 / max(batches, 1), "cpu": cpu * 1000 / max(batches, 1)}
            for label, (wall, cpu) in phases.items()
        },
    }


def _client_only(
    url: str, records: list[dict[str, Any]], batch_size: int, premapped: list[list[dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """This project's Mixpanel client alone (no ledger, no profiles): parse + map + `import_events` per batch.

    With `premapped`, the events are given and only the delivery is timed.
    """
    from revenue_webhooks.mixpanel.client import Credentials, MixpanelClient

    client = MixpanelClient(
        url,
        Credentials(DEMO_CREDENTIALS.project_id, DEMO_CREDENTIALS.username, DEMO_CREDENTIALS.secret),
    )
    seconds, sent, invocations = 0.0, 0, 0
    for start in range(0, len(records), batch_size):
        started = time.perf_counter()
        mapped = (
            premapped[start : start + batch_size] if premapped else _mapped_events(records[start : start + batch_size])
        )
        events = [event for one in mapped for event in one]
        results = client.import_events(events)
        seconds += time.perf_counter() - started
        invocations += 1
        sent += sum(1 for r in results if r.outcome.value == "delivered")
    return {"seconds": seconds, "invocations": invocations, "events": sent, "requests": client.requests_sent}


def _mapped_events(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each record's Mixpanel events, by this project's mapping (what the SDK contenders send)."""
    from revenue_webhooks.config import settings
    from revenue_webhooks.domain.facts import Fact
    from revenue_webhooks.mixpanel.rendering import mixpanel_event
    from revenue_webhooks.providers import get_provider

    current = settings()
    out = []
    for record in records:
        queued = from_record(record)
        provider = get_provider(queued.provider, current)
        assert provider is not None
        out.append([mixpanel_event(f, current) for f in provider.map(queued) if isinstance(f, Fact)])
    return out


def _sdk(
    consumer_kind: str,
    url: str,
    records: list[dict[str, Any]],
    batch_size: int,
    max_seconds: float,
    premapped: list[list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The SDK contender: map each record with this project's code, send with the SDK; time per invocation.

    With `premapped`, the events are given and only the delivery is timed.
    """
    import mixpanel
    from mixpanel.credentials import ServiceAccountCredentials

    credentials = ServiceAccountCredentials(
        DEMO_CREDENTIALS.username, DEMO_CREDENTIALS.secret, DEMO_CREDENTIALS.project_id
    )
    if consumer_kind == "BufferedConsumer":
        consumer: Any = mixpanel.BufferedConsumer(import_url=f"{url}/import", credentials=credentials)
    else:
        consumer = mixpanel.Consumer(import_url=f"{url}/import", credentials=credentials)
    mp = mixpanel.Mixpanel(DEMO_CREDENTIALS.project_token, consumer=consumer)
    sent = 0
    seconds, invocations = 0.0, 0
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        started = time.perf_counter()
        for events in premapped[start : start + batch_size] if premapped else _mapped_events(batch):
            for event in events:
                properties = dict(event["properties"])
                mp.import_data(None, properties.pop("distinct_id"), event["event"], properties.pop("time"), properties)
                sent += 1
                if seconds + time.perf_counter() - started > max_seconds:
                    break
            if seconds + time.perf_counter() - started > max_seconds:
                break
        if hasattr(consumer, "flush"):
            consumer.flush()
        seconds += time.perf_counter() - started
        invocations += 1
        if seconds > max_seconds:
            break
    return {"seconds": seconds, "invocations": invocations, "events": sent}


def _memory(stack: _Stack, records: list[dict[str, Any]], batch_sizes: list[int]) -> list[dict[str, Any]]:
    """Peak Python heap (tracemalloc) of one invocation per batch size, event included (not timed)."""
    import json

    out = []
    for size in batch_sizes:
        batch = records[:size]
        gc.collect()
        tracemalloc.start()
        event_bytes = len(json.dumps({"Records": batch}).encode())
        with _quiet():
            stack.invoke(batch)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out.append({"batch_size": len(batch), "event_mib": event_bytes / 2**20, "peak_heap_mib": peak / 2**20})
    return out


CONTENDERS = (
    ("forwarder", "this project: ForwarderFunction (map + ledger + /import + /engage)"),
    ("client", "this project: MixpanelClient (map + /import)"),
    ("buffered", "mixpanel SDK: BufferedConsumer (map + send)"),
    ("consumer", "mixpanel SDK: Consumer, per event (map + send)"),
    ("client_delivery", "this project: MixpanelClient, delivery only"),
    ("buffered_delivery", "mixpanel SDK: BufferedConsumer, delivery only"),
)


def run(*, events: int, batch_size: int, latencies_ms: list[int], memory_batches: list[int]) -> dict[str, Any]:
    bodies = payloads.unique_events(events * len(latencies_ms) + max(memory_batches, default=0))
    saved_env = dict(os.environ)
    results: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    try:
        with Service("moto") as moto, Service("dynamodb") as dynamodb:
            for round_index, latency in enumerate(latencies_ms):
                offset = round_index * events
                records = records_for(bodies[offset : offset + events], offset)
                with Service("mixpanel", latency_s=latency / 1000) as mixpanel_server:
                    url = mixpanel_server.url
                    stack = _Stack(moto, mixpanel_server, dynamodb)
                    before, ledger_before = mixpanel_summary(url), dynamodb_stats(dynamodb.url)
                    ours = _ours(stack, records, batch_size)
                    after, ledger_after = mixpanel_summary(url), dynamodb_stats(dynamodb.url)
                    delivered = after["raw_events"] - before["raw_events"]
                    premapped = _mapped_events(records)
                    expected = sum(len(e) for e in premapped)
                    if delivered != expected or ours["failed_messages"]:
                        raise RuntimeError(f"forwarder delivered {delivered} of {expected} events: {ours}")
                    paths = ours.pop("requests")
                    calls = {op: n - ledger_before["calls"].get(op, 0) for op, n in ledger_after["calls"].items()}
                    calls.pop("Stats", None)
                    ours.update(
                        events=delivered,
                        import_requests=paths.get("/import", 0),
                        engage_requests=paths.get("/engage", 0),
                        dynamodb_calls=calls,
                        dynamodb_calls_per_event=sum(calls.values()) / delivered,
                        transact_items_per_event=(ledger_after["transact_items"] - ledger_before["transact_items"])
                        / delivered,
                    )
                    runs = {
                        "forwarder": ours,
                        "client": _client_only(url, records, batch_size),
                        "buffered": _sdk("BufferedConsumer", url, records, batch_size, float("inf")),
                        "consumer": _sdk("Consumer", url, records, batch_size, CONSUMER_MAX_SECONDS),
                        "client_delivery": _client_only(url, records, batch_size, premapped),
                        "buffered_delivery": _sdk(
                            "BufferedConsumer", url, records, batch_size, float("inf"), premapped
                        ),
                    }
                    if not memory and memory_batches:
                        extra = bodies[len(bodies) - max(memory_batches) :]
                        memory = _memory(stack, records_for(extra, 10**9), memory_batches)
                for run_ in runs.values():
                    run_["events_per_s"] = run_["events"] / run_["seconds"] if run_["seconds"] else float("nan")
                results.append(
                    {
                        "latency_ms": latency,
                        "messages": len(records),
                        "events": expected,
                        "batch_size": batch_size,
                        **runs,
                    }
                )
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    return _report(results, memory)


def _report(results: list[dict[str, Any]], memory: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for entry in results:
        same_work = {"client_delivery": "buffered_delivery", "buffered_delivery": "buffered_delivery"}
        for key, label in CONTENDERS:
            run_ = entry[key]
            baseline = entry[same_work.get(key, "buffered")]
            entry[key]["vs_buffered_consumer"] = ratio(run_["events_per_s"], baseline["events_per_s"])
            rows.append(
                [
                    f"{entry['latency_ms']} ms",
                    label,
                    run_["events"],
                    run_["events_per_s"],
                    run_["vs_buffered_consumer"],
                ]
            )
    by_latency = {r["latency_ms"]: r for r in results}
    targets: dict[str, Any] = {}
    for latency, goal in ((50, 10.0), (0, 2.0)):
        if latency in by_latency:
            value = by_latency[latency]["forwarder"]["vs_buffered_consumer"]
            targets[f"forwarder_vs_buffered_at_{latency}ms"] = {
                "value": value,
                "target": f">= {goal:g}",
                "met": value >= goal,
            }
            value = by_latency[latency]["client"]["vs_buffered_consumer"]
            targets[f"client_vs_buffered_at_{latency}ms"] = {
                "value": value,
                "target": f">= {goal:g} (informative)",
                "met": value >= goal,
            }
    per_million = max(r["forwarder"]["import_requests"] / r["forwarder"]["events"] * 1e6 for r in results)
    targets["import_requests_per_million_events"] = {
        "value": per_million,
        "target": "<= 1000 (floor 500)",
        "met": per_million <= 1000,
    }
    forwarder = results[0]["forwarder"] if results else {}
    return {
        "method": (
            "time inside invocations only; every contender gets the same SQS records (this project's queue format) "
            "in the same batches and sends the same Mixpanel events to the same server; 'delivery only' rows get the "
            "events already mapped; Mixpanel, moto and the DynamoDB stand-in run in their own processes"
        ),
        "results": results,
        "requests_per_million_events": {
            "import": per_million,
            "engage": forwarder.get("engage_requests", 0) / forwarder["events"] * 1e6 if forwarder else None,
            "floor_import": 1e6 / 2000,
        },
        "memory": memory,
        "targets": targets,
        "table": table(
            ["Mixpanel latency", "contender", "events", "events/s", "vs BufferedConsumer (same work)"], rows
        ),
        "memory_table": table(
            ["batch size", "Lambda event MiB", "peak Python heap MiB"],
            [[m["batch_size"], m["event_mib"], m["peak_heap_mib"]] for m in memory],
        ),
        "phases_table": table(
            ["Mixpanel latency", "ForwarderFunction phase", "wall ms per invocation", "CPU ms (calling thread)"],
            [
                [f"{entry['latency_ms']} ms", label, spent["wall"], spent["cpu"]]
                for entry in results
                for label, spent in entry["forwarder"]["phases_ms_per_invocation"].items()
            ],
        ),
    }
