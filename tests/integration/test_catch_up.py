"""Missed-webhook catch-up end to end: the real CatchUpFunction handler against the local Stripe API, moto and the
local Mixpanel, after a 3-day webhook outage.

A Stripe account writes twelve days of history (Checkout payments of customers and guests, direct PaymentIntents,
subscriptions with renewals, refunds of earlier payments). Every webhook is delivered but those created during
three days, which never arrive. One catch-up run (its checkpoint at the outage's start) must enqueue exactly
those and nothing else; after the forwarder drains, Mixpanel and the ledger must equal a pipeline that received
every webhook, and a second run must recover nothing. The stand-in's 429s, 5xx, dropped connections and slow
answers only delay a run; a run that cannot finish leaves its checkpoint for the next.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from harness import Pipeline

from devstack.lambda_runtime import LambdaContext, load_handler
from devstack.stripe_api import Fault, StripeAccount, StripeApiServer
from devstack.stripe_api.store import Event

DAY = 86400
NOW = int(time.time())
START = NOW - 12 * DAY
OUTAGE = (NOW - 6 * DAY, NOW - 3 * DAY)
MAPPED = (
    "checkout.session.completed",
    "payment_intent.succeeded",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice_payment.paid",
    "refund.created",
    "charge.refunded",
    "customer.subscription.created",
    "customer.subscription.updated",
)


def write_account(account: StripeAccount) -> None:
    """Eleven days and a half: a payment every six hours (Checkout, guest Checkout, direct), two subscriptions renewed
    every four days, and a refund of a payment made two days before, every day."""
    ada = account.customer(at=START, email="ada@example.com", metadata={"user_id": "user-ada"}).object_id
    bob = account.customer(at=START + 60, email="bob@example.com", metadata={"user_id": "user-bob"}).object_id
    price = account.price(1500, "usd", nickname="Basic")
    subscriptions = [
        account.subscribe(customer, price, at=START + 3600 * (n + 1), checkout=n == 0).object_id
        for n, customer in enumerate((ada, bob))
    ]
    payments: list[str] = []
    for slot in range(11 * 4):
        at = START + DAY // 2 + slot * 6 * 3600
        kind = slot % 3
        if kind == 0:
            event = account.pay_checkout(4900, "eur", at=at, customer=ada, client_reference_id="user-ada")
            payments.append(event.object["payment_intent"])
        elif kind == 1:
            event = account.pay_checkout(1200, "jpy", at=at, email=f"guest{slot}@example.com")
            payments.append(event.object["payment_intent"])
        else:
            payments.append(account.pay_direct(5120, "kwd", at=at, customer=bob).object_id)
        if slot % 16 == 15:
            for subscription in subscriptions:
                account.renew(subscription, at=at + 600)
        if slot % 4 == 3 and len(payments) > 8:
            account.refund(payments[-9], at=at + 1200)


@pytest.fixture(scope="module")
def account() -> StripeAccount:
    story = StripeAccount(seed=15)
    write_account(story)
    return story


@pytest.fixture
def api(account: StripeAccount) -> Iterator[StripeApiServer]:
    with StripeApiServer(account, read_limits={"test": 25, "live": 100}, validate_spec=True) as server:
        yield server
    assert server.spec_violations() == []


def webhooks(account: StripeAccount) -> list[Event]:
    return [e for e in account.events(types=MAPPED) if e.created < NOW - 600]


def in_outage(event: Event) -> bool:
    return OUTAGE[0] <= event.created < OUTAGE[1]


class CatchUpPipeline(Pipeline):
    """The pipeline with the Stripe API's key and address, and CatchUpFunction loaded beside the others."""

    def __init__(self, api: StripeApiServer, **extra: str) -> None:
        super().__init__(extra_env={**api.environment(), **extra})
        resolve = self.resources.resolver
        for name, value in self.template.function_environment("CatchUpFunction", resolve).items():
            self.environment.setdefault(name, value)  # moto's endpoints and the Stripe API stay
        self.environment.update({**api.environment(), **extra})
        self.catch_up = load_handler(self.template, "CatchUpFunction", self.environment)
        self.forwarder = load_handler(self.template, "ForwarderFunction", self.environment)
        self.esm.handler = self.forwarder

    def run_catch_up(self) -> dict[str, Any]:
        self.activate()
        answer: dict[str, Any] = self.catch_up({"source": "aws.events"}, LambdaContext("CatchUpFunction", 300))
        return answer

    def set_checkpoint(self, origin: int, until: int) -> None:
        self.dynamodb.put_item(
            TableName=self.environment["LEDGER_TABLE"],
            Item={
                "pk": {"S": "catch-up#stripe-events"},
                "value": {"S": json.dumps({"origin": origin, "until": until})},
            },
        )

    def checkpoint(self) -> dict[str, Any]:
        item = self.dynamodb.get_item(
            TableName=self.environment["LEDGER_TABLE"], Key={"pk": {"S": "catch-up#stripe-events"}}, ConsistentRead=True
        )["Item"]
        return dict(json.loads(item["value"]["S"]))

    def deliver(self, events: list[Event]) -> None:
        for event in events:
            assert self.post_stripe(event.body())["statusCode"] == 200
        assert self.drain(120)

    def queued_event_ids(self) -> list[str]:
        found = []
        for _ in range(50):
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
            ).get("Messages", [])
            if not batch:
                break
            found += batch
        for message in found:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return [m["MessageAttributes"]["event_id"]["StringValue"] for m in found]


def mixpanel_state(pipeline: Pipeline) -> tuple[list[str], dict[str, Any]]:
    events = sorted(json.dumps(e, sort_keys=True) for e in pipeline.mixpanel.events())
    return events, pipeline.mixpanel.profiles()


def test_a_3_day_outage_is_recovered_exactly_and_mixpanel_equals_every_webhook_delivered(
    account: StripeAccount, api: StripeApiServer
) -> None:
    delivered = [e for e in webhooks(account) if not in_outage(e)]
    lost = [e for e in webhooks(account) if in_outage(e)]
    assert len(lost) > 20 and {e.type for e in lost} >= {"checkout.session.completed", "payment_intent.succeeded"}

    everything = CatchUpPipeline(api)
    try:
        everything.deliver(webhooks(account))
        expected = mixpanel_state(everything)
        assert everything.dead_letters() == []
    finally:
        everything.close()

    pipeline = CatchUpPipeline(api)
    try:
        pipeline.deliver(delivered)
        pipeline.set_checkpoint(START, OUTAGE[0])
        api.reset_log()
        answer = pipeline.run_catch_up()
        recovered = pipeline.queued_event_ids()
        counted = {e.id for e in lost if pipeline_maps_to_something(pipeline, e)}
        assert answer["status"] == "complete" and answer["recovered"] == len(recovered)
        assert set(recovered) == counted, "exactly the lost events that count for something, and nothing else"
        assert len(recovered) == len(set(recovered))
        assert pipeline.checkpoint()["until"] >= NOW - 600 - 5
        assert pipeline.drain(180)
        assert mixpanel_state(pipeline) == expected
        assert pipeline.dead_letters() == []
        again = pipeline.run_catch_up()
        assert again["recovered"] == 0 and pipeline.queue_depth() == 0
        listed = [r for r in api.requests_log() if r["path"] == "/v1/events"]
        assert listed and all(r["status"] in (200, 429) for r in listed)
    finally:
        pipeline.close()


def pipeline_maps_to_something(pipeline: Pipeline, event: Event) -> bool:
    """Whether a lost event means anything for revenue (a subscription-mode Checkout, for one, does not)."""
    from revenue_webhooks.config import from_environ
    from revenue_webhooks.domain.webhook import QueuedEvent
    from revenue_webhooks.providers.stripe import StripeProvider

    queued = QueuedEvent("stripe", event.id, event.type, 0, event.body())
    return bool(StripeProvider(from_environ({})).map(queued))


def test_429s_5xx_dropped_connections_and_timeouts_only_delay_a_run(
    account: StripeAccount, api: StripeApiServer
) -> None:
    pipeline = CatchUpPipeline(api, STRIPE_TIMEOUT_SECONDS="3")
    try:
        pipeline.set_checkpoint(START, OUTAGE[0])
        for fault in (
            Fault.rate_limited(path="/v1/events"),
            Fault.rate_limited(path="/v1/events"),
            Fault.server_error(503, path="/v1/events"),
            Fault.disconnect(path="/v1/events"),
            Fault.slow(5.0, path="/v1/events"),
        ):
            api.faults.push(fault)
        answer = pipeline.run_catch_up()
        assert answer["status"] == "complete" and answer["recovered"] > 20
        assert api.faults.pending == []
        assert api.faults.served == {"rate_limit": 2, "503": 1, "disconnect": 1, "slow": 1}
    finally:
        pipeline.close()


def test_a_run_stripe_keeps_refusing_leaves_its_checkpoint(account: StripeAccount, api: StripeApiServer) -> None:
    pipeline = CatchUpPipeline(api)
    try:
        pipeline.set_checkpoint(START, OUTAGE[0])
        for _ in range(20):
            api.faults.push(Fault.server_error(503, path="/v1/events"))
        assert pipeline.run_catch_up()["status"] == "stripe_unavailable"
        assert pipeline.checkpoint()["until"] == OUTAGE[0] and pipeline.queue_depth() == 0
    finally:
        pipeline.close()


def test_without_a_key_catch_up_is_off_and_says_so_once(api: StripeApiServer) -> None:
    pipeline = CatchUpPipeline(api, STRIPE_API_KEY="")
    try:
        assert pipeline.run_catch_up() == {"status": "disabled"}
        assert pipeline.checkpoint()["disabled_noted"] is True
        assert pipeline.run_catch_up() == {"status": "disabled"}
        assert [r for r in api.requests_log() if r["path"] == "/v1/events"] == []
    finally:
        pipeline.close()
