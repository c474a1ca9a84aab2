"""Cold request: a fresh Python 3.13 process loads a `sam build` artifact, imports the handler, answers one event.

Variants run round-robin, so drift on the machine touches all of them alike. The receiver
answers one signed webhook and enqueues it to SQS (moto, another process); the forwarder
delivers one SQS record to the local Mixpanel (another process) and records it in the ledger.
The App Store and Google Play routes answer a notification signed by the local stand-ins
(devstack/stores): their libraries load on that first webhook, which `imported` shows, and never on
another route's.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.providers import sign
from revenue_webhooks.service.envelope import to_sqs

from devstack import apigw
from devstack.aws import LOCAL_CREDENTIALS, provision
from devstack.esm import sqs_record
from devstack.mixpanel import DEMO_CREDENTIALS
from devstack.template import Template

from . import artifacts, payloads
from .common import FIXTURES, ROOT, STRIPE_SECRET, WORK, log, ratio, spread, table, venv_python
from .services import Service

CHILD = Path(__file__).with_name("cold_child.py")
SHOPIFY_SECRET = "shpss_bench_" + "c" * 32
WATCH = (
    "stripe",
    "boto3",
    "mixpanel",
    "requests",
    "aws_lambda_powertools.utilities.parameters",
    # The app stores' libraries: a Stripe webhook's cold start must not load them.
    "appstoreserverlibrary",
    "google.auth",
    "cryptography",
)
CHILD_TIMEOUT_S = 120


@dataclass
class Variant:
    name: str
    function: str  # logical id (ours or naive)
    kind: str  # "receiver" | "forwarder"
    route: str = "stripe"
    task: Path = Path()
    layer: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    handler: str = "app.handler"
    samples: list[dict[str, Any]] = field(default_factory=list)


def _lambda_env(function: str, memory_mb: int) -> dict[str, str]:
    """The variables Lambda itself sets in every sandbox (Powertools reads some of them)."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_REGION": LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
    }


def _http_event(route: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """A signed webhook as API Gateway delivers it (the local stack's payload-2.0 builder)."""
    return apigw.http_api_event(
        apigw.Route("POST", "/webhooks/{provider}"),
        method="POST",
        raw_path=f"/webhooks/{route}",
        raw_query="",
        headers=list(headers.items()),
        body=body,
        path_parameters={"provider": route},
    )


def _sqs_event(body: bytes, *, ours: bool, index: int) -> dict[str, Any]:
    """A one-record Lambda SQS event, in this project's queue format or the naive one (raw body only)."""
    parsed = json.loads(body)
    message: dict[str, Any] = {"MessageBody": body.decode(), "MessageAttributes": {}}
    if ours:
        message = to_sqs(QueuedEvent("stripe", parsed["id"], parsed["type"], int(time.time() * 1000), body))
    return {
        "Records": [
            sqs_record(
                message_id=f"00000000-0000-4000-8000-{index:012d}",
                receipt_handle=base64.b64encode(f"bench-{index}".encode()).decode(),
                body=message["MessageBody"],
                message_attributes=message["MessageAttributes"],
                attributes={"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                queue_arn="arn:aws:sqs:us-east-1:123456789012:bench-EventsQueue",
            )
        ]
    }


def _shopify_body() -> bytes:
    order = json.loads((FIXTURES / "shopify" / "rest_fixture_order.json").read_bytes())
    return json.dumps(order.get("order", order)).encode()


def _store_request(route: str, stores: Any) -> dict[str, Any]:
    """A freshly signed App Store notification or Google Play push (the local stand-ins sign them)."""
    sample = (ROOT / "events" / route / f"{STORE_SAMPLES[route]}.json").read_bytes()
    body, headers = stores.deliver(route, sample)
    return _http_event(route, body, headers)


STORE_SAMPLES = {"appstore": "DID_RENEW", "googleplay": "SUBSCRIPTION_PURCHASED"}


def run(*, runs: int, reuse_builds: bool = False) -> dict[str, Any]:
    built = artifacts.build(reuse=reuse_builds)
    pyc = artifacts.bytecode_files(built.layer)
    no_pyc_layer = None
    if pyc:
        no_pyc_layer = artifacts.without_bytecode(built.ours / "CommonLayer", WORK / "ours-no-bytecode" / "CommonLayer")
    checkout = payloads.sized()[0].body
    forwarder_bodies = payloads.unique_events(runs * 8 + 8)
    template = Template(parameters={"Mode": "any"})
    from devstack.stores import Stores

    stores = Stores(WORK / "stores").start("https://bench.example/webhooks/googleplay")
    with stores_stopped(stores), Service("moto") as moto, Service("mixpanel") as mixpanel:
        creds = DEMO_CREDENTIALS.secret_value()
        resources = provision(
            template,
            moto.url,
            stack=f"cold{int(time.time()) % 10**6}",
            secret_values={
                "StripeWebhookSecret": STRIPE_SECRET,
                "ShopifyWebhookSecret": SHOPIFY_SECRET,
                "MixpanelCredentials": json.dumps(creds),
                "AppStoreConfig": stores.receiver_secrets()["appstore"],
                "GooglePlayPushConfig": stores.receiver_secrets()["googleplay"],
            },
        )
        resolve = resources.resolver
        aws = {"AWS_ENDPOINT_URL": moto.url, **LOCAL_CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"}

        def ours(logical_id: str, memory: int) -> dict[str, str]:
            return {
                **template.function_environment(logical_id, resolve),
                **aws,
                "MIXPANEL_API_URL": mixpanel.url,
                **stores.environment(),
                **_lambda_env(logical_id, memory),
            }

        naive_env = {
            **aws,
            "EVENTS_QUEUE_URL": resources.queue_url("EventsQueue"),
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "MIXPANEL_IMPORT_URL": f"{mixpanel.url}/import",
            "MIXPANEL_PROJECT_ID": DEMO_CREDENTIALS.project_id,
            "MIXPANEL_SERVICE_ACCOUNT_USERNAME": DEMO_CREDENTIALS.username,
            "MIXPANEL_SERVICE_ACCOUNT_SECRET": DEMO_CREDENTIALS.secret,
            "MIXPANEL_PROJECT_TOKEN": DEMO_CREDENTIALS.project_token,
            "POWERTOOLS_SERVICE_NAME": "naive",
            "POWERTOOLS_METRICS_NAMESPACE": "Naive",
        }
        receiver_env, forwarder_env = ours("ReceiverFunction", 512), ours("ForwarderFunction", 1024)
        variants = [
            Variant("this project", "ReceiverFunction", "receiver", env=receiver_env),
            Variant("naive handler", "NaiveReceiverFunction", "receiver", env=naive_env, handler="receiver.handler"),
            Variant("this project, Shopify route", "ReceiverFunction", "receiver", route="shopify", env=receiver_env),
            Variant(
                "this project, App Store route", "ReceiverFunction", "receiver", route="appstore", env=receiver_env
            ),
            Variant(
                "this project, Google Play route", "ReceiverFunction", "receiver", route="googleplay", env=receiver_env
            ),
            Variant("this project", "ForwarderFunction", "forwarder", env=forwarder_env),
            Variant("naive handler", "NaiveForwarderFunction", "forwarder", env=naive_env, handler="forwarder.handler"),
        ]
        if no_pyc_layer is not None:
            variants.insert(
                2,
                Variant("this project, layer without bytecode", "ReceiverFunction", "receiver", env=receiver_env),
            )
            variants.insert(
                len(variants) - 1,
                Variant("this project, layer without bytecode", "ForwarderFunction", "forwarder", env=forwarder_env),
            )
        for variant in variants:
            variant.task = built.function(variant.function)
            if not variant.function.startswith("Naive"):
                variant.layer = no_pyc_layer / "python" if "without bytecode" in variant.name else built.layer
        counter = 0
        with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
            for index in range(runs):
                log(f"bench cold: round {index + 1}/{runs}")
                for variant in variants:
                    counter += 1
                    if variant.kind == "receiver":
                        if variant.route in STORE_SAMPLES:
                            event = _store_request(variant.route, stores)
                        elif variant.route == "shopify":
                            body = _shopify_body()
                            event = _http_event("shopify", body, sign("shopify", body, SHOPIFY_SECRET))
                        else:
                            event = _http_event("stripe", checkout, sign("stripe", checkout, STRIPE_SECRET))
                    else:
                        body = forwarder_bodies[counter % len(forwarder_bodies)]
                        event = _sqs_event(body, ours=not variant.function.startswith("Naive"), index=counter)
                    variant.samples.append(_one(variant, event, built.runtime, Path(tmp), counter))
    return _report(variants, built, pyc)


@contextlib.contextmanager
def stores_stopped(stores: Any) -> Iterator[None]:
    try:
        yield
    finally:
        stores.stop()


def _one(variant: Variant, event: dict[str, Any], runtime: Path, tmp: Path, counter: int) -> dict[str, Any]:
    result_path = tmp / f"result-{counter}.json"
    config = {
        "sys_path": [str(variant.task)] + ([str(variant.layer)] if variant.layer else []) + [str(runtime)],
        "env": variant.env,
        "handler": variant.handler,
        "function": variant.function,
        "timeout_s": 60,
        "memory_mb": 1024,
        "event": event,
        "result": str(result_path),
        "watch": list(WATCH),
    }
    config_path = tmp / f"config-{counter}.json"
    config_path.write_text(json.dumps(config))
    started = time.perf_counter()
    process = subprocess.run(
        [venv_python(), "-I", "-S", "-B", str(CHILD), str(config_path)],
        capture_output=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    wall_ms = (time.perf_counter() - started) * 1000
    if process.returncode != 0 or not result_path.exists():
        raise RuntimeError(f"cold start of {variant.function} failed:\n{process.stderr.decode()[-3000:]}")
    result = json.loads(result_path.read_text())
    result["process_ms"] = wall_ms
    result["log_bytes"] = len(process.stdout)
    expected_ok = result["status"] == 200 if variant.kind == "receiver" else result["batch_item_failures"] == 0
    if not expected_ok:
        raise RuntimeError(f"{variant.function} did not succeed: {result}\n{process.stdout.decode()[-2000:]}")
    return result


def _report(variants: list[Variant], built: artifacts.Artifacts, pyc: int) -> dict[str, Any]:
    rows, out = [], []
    baseline: dict[str, float] = {}
    for variant in variants:
        total = [s["import_ms"] + s["init_ms"] + s["first_request_ms"] for s in variant.samples]
        if variant.function.startswith("Naive"):
            baseline[variant.kind] = spread(total)["median"]
    for variant in variants:
        samples = variant.samples
        imports = spread([s["import_ms"] for s in samples])
        init = spread([s["init_ms"] for s in samples])
        first = spread([s["first_request_ms"] for s in samples])
        total = spread([s["import_ms"] + s["init_ms"] + s["first_request_ms"] for s in samples])
        process = spread([s["process_ms"] for s in samples])
        rss = spread([s["max_rss_kb"] / 1024 for s in samples])
        entry = {
            "function": variant.kind,
            "variant": variant.name,
            "logical_id": variant.function,
            "route": variant.route if variant.kind == "receiver" else None,
            "import_ms": imports,
            "init_ms": init,
            "first_request_ms": first,
            # SnapStart replaces import + init by a restore: it shortens this cold request only when
            # Lambda's restore (its REPORT line's Restore Duration) is shorter than this.
            "snapstart_break_even_restore_ms": imports["median"] + init["median"],
            "cold_request_ms": total,
            "process_ms": process,
            "max_rss_mib": rss,
            "log_bytes": spread([s["log_bytes"] for s in samples]),
            "modules": samples[0]["modules"],
            "imported": samples[0]["imported"],
            "vs_naive": ratio(total["median"], baseline.get(variant.kind, float("nan"))),
        }
        out.append(entry)
        rows.append(
            [
                variant.kind,
                variant.name,
                imports["median"],
                init["median"],
                first["median"],
                total["median"],
                entry["vs_naive"],
                rss["median"],
                ", ".join(name for name, on in samples[0]["imported"].items() if on) or "-",
            ]
        )
    text = table(
        [
            "function",
            "variant",
            "import ms",
            "init ms",
            "first request ms",
            "cold request ms",
            "vs naive",
            "peak RSS MiB",
            "imported",
        ],
        rows,
    )
    runs = len(variants[0].samples) if variants else 0
    receiver = next(e for e in out if e["logical_id"] == "ReceiverFunction" and e["variant"] == "this project")
    return {
        "method": (
            f"median of {runs} fresh `python3.13 -I -S -B` processes per variant, round-robin; sys.path = function "
            "artifact, layer artifact (boto3 and botocore included), the runtime's packages; the handler file's "
            "top-level imports, its init (the rest of its module body) and the first request timed inside the process"
        ),
        "layer_bytecode_files": pyc,
        "build_seconds": built.build_seconds,
        "results": out,
        "targets": {
            "receiver_cold_vs_naive": {
                "value": receiver["vs_naive"],
                "target": "<= 0.6 (a guard rail)",
                "met": receiver["vs_naive"] <= 0.6,
            }
        },
        "table": text,
    }
