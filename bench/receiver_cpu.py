"""Receiver per webhook: CPU time of a warm receiver for verify, parse and enqueue, by payload size.

This project: the real ReceiverFunction handler (Powertools logging and metrics included), sending
to a local keep-alive SQS endpoint in another process (bench/sqs_endpoint.py; secrets from moto). The common recipe: `stripe.Webhook.construct_event` (verifies
and builds a StripeObject tree) plus one `mixpanel` SDK call per event (`Consumer`, one HTTP
request) to the local Mixpanel in another process. CPU is `time.process_time()` of this process,
so the endpoints' own work is never counted; wall time is reported beside it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from typing import Any

from devstack import signing
from devstack.aws import LOCAL_CREDENTIALS, provision
from devstack.lambda_runtime import LambdaContext, load_handler
from devstack.mixpanel_server import DEMO_CREDENTIALS
from devstack.template import Template

from . import payloads
from .cold import _http_event
from .common import STRIPE_SECRET, ratio, table
from .services import Service

WARMUP = 5


def run(*, requests_per_size: int) -> dict[str, Any]:
    import mixpanel
    import stripe
    from mixpanel.credentials import ServiceAccountCredentials

    sized = payloads.sized()
    template = Template(parameters={"Mode": "any"})
    saved_env = dict(os.environ)
    try:
        with Service("moto") as moto, Service("sqs") as sqs, Service("mixpanel") as mixpanel_server:
            resources = provision(
                template,
                moto.url,
                stack=f"rcpu{int(time.time()) % 10**6}",
                secret_values={"StripeWebhookSecret": STRIPE_SECRET},
            )
            env = {
                **template.function_environment("ReceiverFunction", resources.resolver),
                "AWS_ENDPOINT_URL": moto.url,
                "AWS_ENDPOINT_URL_SQS": sqs.url,  # keep-alive, as SQS (moto closes every connection)
                **LOCAL_CREDENTIALS,
                "AWS_EC2_METADATA_DISABLED": "true",
                "POWERTOOLS_METRICS_NAMESPACE": "RevenueWebhooks",
            }
            from revenue_webhooks import runtime

            runtime.reset()
            handler = load_handler(template, "ReceiverFunction", env)
            consumer = mixpanel.Consumer(
                import_url=f"{mixpanel_server.url}/import",
                credentials=ServiceAccountCredentials(
                    DEMO_CREDENTIALS.username, DEMO_CREDENTIALS.secret, DEMO_CREDENTIALS.project_id
                ),
            )
            mp = mixpanel.Mixpanel(DEMO_CREDENTIALS.project_token, consumer=consumer)

            def ours_input(body: bytes) -> Any:
                return _http_event("stripe", body, signing.stripe(body, STRIPE_SECRET))

            def ours(event: dict[str, Any]) -> None:
                response = handler(event, LambdaContext("ReceiverFunction", 10))
                if response["statusCode"] != 200:
                    raise RuntimeError(f"receiver answered {response}")

            def recipe_input(body: bytes) -> Any:
                return body.decode(), signing.stripe(body, STRIPE_SECRET)["stripe-signature"]

            def recipe(request: tuple[str, str]) -> None:
                event = stripe.Webhook.construct_event(request[0], request[1], STRIPE_SECRET)
                obj = event.data.object
                mp.import_data(
                    None,
                    getattr(obj, "customer", None) or "anonymous-buyer",
                    "Purchase Completed",
                    event.created,
                    {"Revenue": (getattr(obj, "amount_total", None) or getattr(obj, "amount_paid", 0)) / 100},
                )

            rows, results = [], []
            for payload in sized:
                ours_cpu, ours_wall, log_bytes = _measure(ours, ours_input, payload.body, requests_per_size)
                recipe_cpu, recipe_wall, _ = _measure(recipe, recipe_input, payload.body, requests_per_size)
                entry = {
                    "payload": payload.name,
                    "bytes": payload.size,
                    "requests": requests_per_size,
                    "ours_cpu_ms": ours_cpu,
                    "ours_wall_ms": ours_wall,
                    "recipe_cpu_ms": recipe_cpu,
                    "recipe_wall_ms": recipe_wall,
                    "cpu_ratio": ratio(ours_cpu, recipe_cpu),
                    "ours_log_bytes": log_bytes,
                    **_domain_work(payload.body, requests_per_size),
                }
                results.append(entry)
                rows.append(
                    [
                        payload.name,
                        payload.size,
                        ours_cpu,
                        recipe_cpu,
                        entry["cpu_ratio"],
                        entry["ours_verify_parse_message_ms"],
                        entry["recipe_construct_event_ms"],
                        ours_wall,
                        recipe_wall,
                    ]
                )
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    worst = max(r["cpu_ratio"] for r in results)
    return {
        "method": (
            f"{requests_per_size} warm requests per payload after {WARMUP} warm-up ones; CPU = process_time of the "
            "benchmark process (SQS on moto and Mixpanel run in other processes); requests are signed before the clock starts"
        ),
        "results": results,
        "targets": {"receiver_warm_cpu_vs_recipe": {"value": worst, "target": "<= 0.333", "met": worst <= 1 / 3}},
        "table": table(
            [
                "payload",
                "bytes",
                "ours CPU ms",
                "recipe CPU ms",
                "ours/recipe",
                "ours: verify+parse+message ms",
                "recipe: construct_event ms",
                "ours wall ms",
                "recipe wall ms",
            ],
            rows,
        ),
    }


def _domain_work(body: bytes, count: int) -> dict[str, float]:
    """CPU of the domain steps alone: our verify + parse + queue message vs `stripe.Webhook.construct_event`."""
    import stripe
    from revenue_webhooks.config import from_environ
    from revenue_webhooks.envelope import QueuedEvent
    from revenue_webhooks.providers import get_provider
    from revenue_webhooks.providers.base import WebhookRequest

    provider = get_provider("stripe", from_environ({"MODE": "any"}))
    assert provider is not None
    headers = signing.stripe(body, STRIPE_SECRET)
    request = WebhookRequest(body=body, headers=headers, received_at_ms=int(time.time() * 1000), route="stripe")

    def ours() -> None:
        provider.verify(request, [STRIPE_SECRET])
        parsed = provider.parse(request)
        QueuedEvent("stripe", parsed.event_id, parsed.event_type, request.received_at_ms, body).to_sqs()

    def recipe() -> None:
        stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], STRIPE_SECRET)

    out = {}
    for name, call in (("ours_verify_parse_message_ms", ours), ("recipe_construct_event_ms", recipe)):
        for _ in range(WARMUP):
            call()
        started = time.process_time()
        for _ in range(count):
            call()
        out[name] = (time.process_time() - started) * 1000 / count
    return out


@contextlib.contextmanager
def _logger_stream(stream: io.StringIO) -> Any:
    """Point Powertools' handlers (which kept the original sys.stdout) at `stream` for a while."""
    handlers = [h for h in logging.getLogger("revenue-webhooks").handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.setStream(stream) for h in handlers]
    try:
        yield
    finally:
        for handler, old in zip(handlers, previous, strict=True):
            handler.setStream(old)


def _measure(call: Any, prepare: Any, body: bytes, count: int) -> tuple[float, float, float]:
    """Mean CPU and wall milliseconds per call, and log bytes per call (stdout, the handler's JSON logs)."""
    warmup = [prepare(body) for _ in range(WARMUP)]
    inputs = [prepare(body) for _ in range(count)]  # signed before the clock starts
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), _logger_stream(sink):
        for item in warmup:
            call(item)
        sink.seek(0)
        sink.truncate()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for item in inputs:
            call(item)
        cpu1, wall1 = time.process_time(), time.perf_counter()
    return (cpu1 - cpu0) * 1000 / count, (wall1 - wall0) * 1000 / count, len(sink.getvalue().encode()) / count
