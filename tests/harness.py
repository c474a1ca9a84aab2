"""The integration harness: the real handlers on real protocols, inside one test process.

SQS, DynamoDB and Secrets Manager are moto's server mode reached over HTTP by boto3;
Mixpanel is the Mixpanel-compatible server from devstack, reached over HTTP; queues, table
and secrets are created from template.yaml; the forwarder is driven by an event source
mapping that honours batchItemFailures, visibility timeouts and the redrive policy.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from revenue_webhooks.providers import sign

from devstack import apigw
from devstack.aws import MotoServer, provision
from devstack.esm import EventSourceMapping
from devstack.lambda_runtime import LambdaContext, context_for, load_handler
from devstack.mixpanel import (
    DEMO_CREDENTIALS,
    DEMO_TEST_CREDENTIALS,
    MAX_EVENTS_PER_REQUEST,
    MAX_REQUEST_BYTES,
    MixpanelServer,
)
from devstack.template import Template

FIXTURES = Path(__file__).parent / "fixtures"
STRIPE_SECRET = "whsec_test_" + "a" * 32
# One signing secret per route; "acme" is the Standard Webhooks sender of docs/providers.md's worked example.
SECRETS = {
    "stripe": STRIPE_SECRET,
    "shopify": "shpss_harness_secret",
    "paddle": "pdl_ntfset_harness_secret",
    "lemonsqueezy": "ls-harness-secret",
    "revenuecat": "Bearer rc-harness-authorization",
    "acme": "whsec_" + base64.b64encode(b"harness-standard-webhooks-key").decode(),
}
SECRET_LOGICAL_IDS = {
    "stripe": "StripeWebhookSecret",
    "shopify": "ShopifyWebhookSecret",
    "paddle": "PaddleWebhookSecret",
    "lemonsqueezy": "LemonSqueezyWebhookSecret",
    "revenuecat": "RevenueCatWebhookSecret",
}


def documented_standard_webhooks_mapping() -> str:
    """The worked example of docs/providers.md, as a deployment would pass it."""
    docs = (Path(__file__).parent.parent / "docs" / "providers.md").read_text()
    start = docs.index('{\n  "acme"')
    return json.dumps(json.loads(docs[start : docs.index("```", start)]))


# Retries in tests wait milliseconds, not Mixpanel's seconds.
FAST_BACKOFF = {
    "MIXPANEL_BACKOFF_BASE_SECONDS": "0.01",
    "MIXPANEL_BACKOFF_CAP_SECONDS": "0.05",
    "MIXPANEL_JITTER_MIN_SECONDS": "0",
    "MIXPANEL_JITTER_MAX_SECONDS": "0.01",
    "MIXPANEL_READ_TIMEOUT_SECONDS": "2",
}
# For fault tests: an answer slower than 0.3 s is a timeout (the Mixpanel test server's slow faults wait longer).
SHORT_TIMEOUTS = {"MIXPANEL_READ_TIMEOUT_SECONDS": "0.3", "MIXPANEL_CONNECT_TIMEOUT_SECONDS": "0.5"}


def fixture_bytes(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()


def stripe_checkout(tag: str, *, created: int = 1_700_000_000, user_id: str | None = None) -> bytes:
    """A paid one-time Checkout webhook (the fixture) made distinct by `tag`: event `evt_<tag>`, session
    `cs_<tag>`, customer `cus_<tag>`. It maps to one Purchase Completed whose Order ID is `cs_<tag>`."""
    event = json.loads(fixture_bytes("stripe", "checkout.session.completed.payment_mode.json"))
    event.update(id=f"evt_{tag}", created=created)
    session = event["data"]["object"]
    session.update(id=f"cs_{tag}", customer=f"cus_{tag}", payment_intent=f"pi_{tag}")
    if user_id:
        session["metadata"] = {"user_id": user_id}
    return json.dumps(event).encode()


@dataclass
class Fates:
    """Where each `stripe_checkout(tag)` webhook ended: in Mixpanel, in the dead-letter queue, or nowhere."""

    delivered: Counter[str]  # tag -> its events after Mixpanel's dedup (Order ID cs_<tag>)
    ingested: Counter[str]  # tag -> its events as ingested, retries' duplicates included
    dead_letters: dict[str, dict[str, Any]]  # tag -> its dead letter (event_id attribute evt_<tag>)

    def lost(self, tags: list[str]) -> list[str]:
        return [tag for tag in tags if not self.delivered[tag] and tag not in self.dead_letters]

    def duplicated(self) -> list[str]:
        return sorted(tag for tag, copies in self.delivered.items() if copies > 1)


def http_api_event(path: str, body: bytes, headers: dict[str, str], *, base64_body: bool = False) -> dict[str, Any]:
    """The payload-format-2.0 event API Gateway sends for a POST to `path`, built by the local stack's adapter.

    `base64_body` forces the base64 form API Gateway uses for binary content types.
    """
    provider = path.rstrip("/").rsplit("/", 1)[-1]
    event = apigw.http_api_event(
        apigw.Route("POST", "/webhooks/{provider}"),
        method="POST",
        raw_path=path,
        raw_query="",
        headers=list(headers.items()),
        body=body,
        path_parameters={"provider": provider},
    )
    if base64_body and body:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


class Pipeline:
    """Receiver, queues, forwarder and Mixpanel, wired as the template wires them.

    The local Mixpanel hosts the production project and the test project (MixpanelTestCredentials), and an event
    source mapping drains each of the forwarder's queues. Unless a test asks for the test lane
    (`parameters={"TestEventsTo": "test-project"}`), the pipeline runs with TestEventsTo=production: most suites
    post Stripe's own test-mode fixtures and read them in the production project, as a Mode=any deployment
    without a test project does.
    """

    def __init__(
        self,
        *,
        parameters: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        visibility_timeout_s: int = 1,
        mixpanel_credentials: dict[str, str] | None = None,
        forwarder_timeout_s: float | None = None,
        secret_values: dict[str, str] | None = None,
    ) -> None:
        """`secret_values`: more secrets by logical id (a Stripe API key for a function that reads Stripe)."""
        self.template = Template(
            parameters={
                "Mode": "any",
                "TestEventsTo": "production",
                "StandardWebhooksMapping": documented_standard_webhooks_mapping(),
                **(parameters or {}),
            }
        )
        self.moto = MotoServer().start()
        self.mixpanel = MixpanelServer(credentials=DEMO_CREDENTIALS, more_projects=[DEMO_TEST_CREDENTIALS]).start()
        self.test_project = self.mixpanel.project(DEMO_TEST_CREDENTIALS.project_id)
        creds = mixpanel_credentials or DEMO_CREDENTIALS.secret_value()
        self.resources = provision(
            self.template,
            self.moto.endpoint,
            stack=f"t{int(time.time() * 1000) % 10**8}",
            secret_values={
                **{logical: SECRETS[route] for route, logical in SECRET_LOGICAL_IDS.items()},
                "StandardWebhooksSecrets": json.dumps({"acme": SECRETS["acme"]}),
                "MixpanelCredentials": json.dumps(creds),
                "MixpanelTestCredentials": json.dumps(DEMO_TEST_CREDENTIALS.secret_value()),
                **(secret_values or {}),
            },
            queue_overrides={
                queue: {"VisibilityTimeout": str(visibility_timeout_s)} for queue in ("EventsQueue", "EventsTestQueue")
            },
        )
        resolve = self.resources.resolver
        env = {**self.moto.environment(), "MIXPANEL_API_URL": self.mixpanel.url, **FAST_BACKOFF, **(extra_env or {})}
        self.environment = {
            **self.template.function_environment("ReceiverFunction", resolve),
            **self.template.function_environment("ForwarderFunction", resolve),
            **env,
        }
        self._leave_previous()
        self.receiver = load_handler(self.template, "ReceiverFunction", self.environment)
        self.forwarder = load_handler(self.template, "ForwarderFunction", self.environment)
        Pipeline._active = self
        self.sqs = boto3.client("sqs", endpoint_url=self.moto.endpoint)
        self.dynamodb = boto3.client("dynamodb", endpoint_url=self.moto.endpoint)
        self.queue_url = self.resources.queue_url("EventsQueue")
        self.dlq_url = self.resources.queue_url("EventsDeadLetterQueue")
        self.test_queue_url = self.resources.queue_url("EventsTestQueue")
        self.test_dlq_url = self.resources.queue_url("EventsTestDeadLetterQueue")
        source, test_source = self.template.sqs_event_sources("ForwarderFunction", resolve)

        def context() -> LambdaContext:
            # A shorter Timeout than the template's compresses the time the forwarder may spend backing off.
            if forwarder_timeout_s is None:
                return context_for(self.template, "ForwarderFunction")
            return LambdaContext("ForwarderFunction", forwarder_timeout_s)

        self.esm = EventSourceMapping(
            self.sqs,
            self.queue_url,
            self.resources.attributes[("EventsQueue", "Arn")],
            self.forwarder,
            context,
            batch_size=source.batch_size,
            batching_window_s=0,
            report_batch_item_failures=source.report_batch_item_failures,
        )
        self.test_esm = EventSourceMapping(
            self.sqs,
            self.test_queue_url,
            self.resources.attributes[(test_source.queue, "Arn")],
            self.forwarder,
            context,
            batch_size=test_source.batch_size,
            batching_window_s=0,
            report_batch_item_failures=test_source.report_batch_item_failures,
        )

    def close(self) -> None:
        self.mixpanel.stop()
        self.moto.stop()

    # ---- driving -----------------------------------------------------------------------

    _active: Pipeline | None = None

    def activate(self) -> None:
        """Point the process-wide clients back at this pipeline when another one was started since.

        Lambda containers never share a process; the tests' pipelines do, so the per-container
        caches (boto3 clients, secrets, the Mixpanel client) follow the pipeline in use.
        """
        if Pipeline._active is not self:
            from revenue_webhooks import bootstrap

            self._leave_previous()
            os.environ.update(self.environment)
            bootstrap.reset()
            Pipeline._active = self

    def _leave_previous(self) -> None:
        """Drop what only the previously active pipeline set (a Stripe key of its `extra_env`, say): a Lambda
        container of this deployment would not have it, and its forwarder would ask Stripe with it."""
        previous = Pipeline._active
        if previous is not None and previous is not self:
            for name in previous.environment.keys() - self.environment.keys():
                os.environ.pop(name, None)

    def post(self, provider: str, body: bytes, headers: dict[str, str], *, base64_body: bool = False) -> dict[str, Any]:
        self.activate()
        event = http_api_event(f"/webhooks/{provider}", body, headers, base64_body=base64_body)
        return self.receiver(event, LambdaContext("ReceiverFunction", 10))

    def post_stripe(self, body: bytes, *, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> dict[str, Any]:
        return self.post("stripe", body, sign("stripe", body, secret, timestamp))

    def deliver_stripe(
        self, events: list[dict[str, Any]], *, per_batch: int | None = None, timeout_s: float = 60
    ) -> None:
        """Post each Stripe webhook (freshly signed), letting the forwarder run every `per_batch` webhooks, then drain."""
        for position, event in enumerate(events, 1):
            assert self.post_stripe(json.dumps(event).encode())["statusCode"] == 200
            if per_batch and position % per_batch == 0:
                self.esm.poll_once(0)
        assert self.drain(timeout_s)

    def drain(self, timeout_s: float = 30) -> bool:
        """Until both queues are empty (the test lane's is only used with TestEventsTo=test-project)."""
        self.activate()
        deadline = time.monotonic() + timeout_s
        while True:
            live = self.esm.drain(max(0.1, deadline - time.monotonic()))
            test = self.test_esm.drain(max(0.1, deadline - time.monotonic()))
            if live and test and self.queue_depth() == 0:
                return True
            if time.monotonic() >= deadline:
                return False

    # ---- looking -----------------------------------------------------------------------

    def queue_depth(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dead_letters(self, url: str | None = None) -> list[dict[str, Any]]:
        """Every message in the DLQ (received, then made visible again); `url` another one (the test lane's)."""
        url = url or self.dlq_url
        found: dict[str, dict[str, Any]] = {}
        for _ in range(100):  # up to 1000 messages
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=5
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                found[message["MessageId"]] = message
        for message in found.values():
            self.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return list(found.values())

    def limit_breaches(self) -> list[str]:
        """Requests Mixpanel would refuse or the client must not send (count, size, strict, gzip) and spec violations."""
        found = [f"spec: {v['operation']} {v['where']}: {v['message']}" for v in self.mixpanel.spec_violations()]
        for r in self.mixpanel.requests_log():
            checks = {"records": (r["records"] or 0) <= MAX_EVENTS_PER_REQUEST}
            if r["path"] == "/import":
                checks["bytes"] = (r["uncompressed_bytes"] or 0) <= MAX_REQUEST_BYTES
                checks["strict=1"] = r["query"].get("strict") == "1"
                checks["gzip"] = r["headers"].get("content-encoding") == "gzip"
            else:
                checks["verbose"] = r["query"].get("verbose") == "1"
                checks["no gzip"] = "content-encoding" not in r["headers"]
            found += [f"request {r['id']} {r['path']}: {name}" for name, ok in checks.items() if not ok]
        return found

    def fates(self) -> Fates:
        def tags(events: list[dict[str, Any]]) -> Counter[str]:
            return Counter(str(e["properties"].get("Order ID", "")).removeprefix("cs_") for e in events)

        dead = {
            m["MessageAttributes"]["event_id"]["StringValue"].removeprefix("evt_"): m
            for m in self.dead_letters()
            if "event_id" in m.get("MessageAttributes", {})
        }
        return Fates(tags(self.mixpanel.events()), tags(self.mixpanel.raw_events()), dead)

    def reset(self) -> None:
        """Empty queues, ledger and Mixpanel: a fresh deployment for the next example."""
        # PurgeQueue is limited to once a minute: delete instead.
        for url in (self.queue_url, self.dlq_url, self.test_queue_url, self.test_dlq_url):
            while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                for message in messages:
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        table = self.resources.refs["LedgerTable"]
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk"):
            for item in page.get("Items", []):
                self.dynamodb.delete_item(TableName=table, Key={"pk": item["pk"]})
        self.mixpanel.reset()

    def customer_totals(self, customer_key: str) -> dict[str, Any]:
        item = self.dynamodb.get_item(
            TableName=self.resources.refs["LedgerTable"],
            Key={"pk": {"S": f"customer#{customer_key}"}},
            ConsistentRead=True,
        ).get("Item")
        return json.loads(item["totals"]["S"]) if item else {}
