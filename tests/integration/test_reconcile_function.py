"""ReconcileFunction, the daily reconcile, as Lambda runs it: template.yaml's environment, its secrets on moto,
the local Stripe API and the local Mixpanel; what it publishes (EMF metrics) and logs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
from harness import Pipeline
from stripe_history_rig import Rig

from devstack.lambda_runtime import context_for, load_handler
from devstack.stripe_api import ApiKey, StripeAccount, StripeApiServer

DAY = 86400
NOW = int(time.time())
KEY = "rk_test_daily_reconcile"
READS = frozenset({"invoices", "checkout_sessions", "payment_intents", "refunds", "charges"})


def account() -> StripeAccount:
    story = StripeAccount(seed=41)
    ada = story.customer(at=NOW - 20 * DAY, metadata={"user_id": "user-ada"}).object_id
    story.pay_checkout(4900, "usd", at=NOW - 10 * DAY, customer=ada)
    story.pay_checkout(5120, "kwd", at=NOW - 9 * DAY, email="guest@example.com")
    story.refund(story.store.objects("checkout.session")[0]["id"], 1000, at=NOW - 5 * DAY)
    return story


@pytest.fixture
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    # A restricted key with exactly the read permissions docs/operations.md lists for the reconcile.
    with StripeApiServer(account(), keys=(ApiKey(KEY, READS),)) as api:
        pipeline = Pipeline(secret_values={"StripeApiKey": KEY}, extra_env={"STRIPE_API_BASE": api.url})
        try:
            yield Rig(pipeline, api, tmp_path_factory.mktemp("state"))
        finally:
            pipeline.close()


def run_function(rig: Rig, capsys: pytest.CaptureFixture[str]) -> tuple[dict, list[dict]]:
    pipeline = rig.pipeline
    environment = {
        **pipeline.template.function_environment("ReconcileFunction", pipeline.resources.resolver),
        **{
            k: v
            for k, v in pipeline.environment.items()
            if k.startswith(("AWS_", "MIXPANEL_API_URL", "STRIPE_API_BASE"))
        },
    }
    saved = dict(os.environ)
    try:
        handler = load_handler(pipeline.template, "ReconcileFunction", environment)
        capsys.readouterr()
        answer = handler({"source": "aws.scheduler", "detail": {}}, context_for(pipeline.template, "ReconcileFunction"))
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from revenue_webhooks import bootstrap

        bootstrap.reset()
    return answer, lines


def metric(lines: list[dict], name: str) -> list[tuple[dict, float]]:
    found = []
    for line in lines:
        for directive in (line.get("_aws") or {}).get("CloudWatchMetrics", []):
            if any(m["Name"] == name for m in directive["Metrics"]):
                value = line[name]
                found.append((line, value[0] if isinstance(value, list) else value))
    return found


def test_the_daily_run_publishes_zero_when_all_agree(
    rig: Rig, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    rig.deliver(rig.api.accounts["test"].events())
    answer, lines = run_function(rig, capsys)
    assert answer == {"reconciled": True, "agree": True, "differences": 0}
    assert [value for _, value in metric(lines, "ReconcileDifferences")] == [0]
    gaps = {line["Currency"]: value for line, value in metric(lines, "ReconcileNetDifference")}
    assert gaps == {"USD": 0.0, "KWD": 0.0}
    [log] = [r for r in caplog.records if r.getMessage() == "reconciled"]
    assert log.reconcile["agree"] is True and log.levelname == "INFO"  # type: ignore[attr-defined]


def test_a_lost_payment_is_a_difference_with_its_repair(
    rig: Rig, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    account = rig.api.accounts["test"]
    lost = account.store.objects("checkout.session")[-1]["id"]
    rig.deliver([e for e in account.events() if e.object_id != lost])
    answer, lines = run_function(rig, capsys)
    assert answer == {"reconciled": True, "agree": False, "differences": 1}
    assert [value for _, value in metric(lines, "ReconcileDifferences")] == [1]
    [log] = [r for r in caplog.records if r.getMessage() == "reconciled"]
    assert log.levelname == "WARNING" and log.reconcile["repair"] == f'make backfill ARGS="--ids {lost}"'  # type: ignore[attr-defined]
    assert {line["Currency"]: value for line, value in metric(lines, "ReconcileNetDifference")}["USD"] == 49.0


def test_without_a_stripe_key_it_says_so_and_does_nothing(
    rig: Rig, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    secret = rig.pipeline.resources.refs["StripeApiKey"]
    boto = rig.pipeline.moto.environment()
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=boto["AWS_ENDPOINT_URL"], region_name="us-east-1")
    client.put_secret_value(SecretId=secret, SecretString="not-a-key")
    answer, lines = run_function(rig, capsys)
    assert answer == {"reconciled": False, "why": "no Stripe API key in StripeApiKey"}
    assert any("the daily reconcile is off" in r.getMessage() for r in caplog.records)
    assert metric(lines, "ReconcileDifferences") == []
