"""Crash safety: the forwarder SIGKILLed in the middle of a batch, then redelivery, loses and double-counts nothing.

The forwarder runs in a child process (this file, run as a script) that polls EventsQueue once with the
real handler and kills itself with SIGKILL at a seam of our own code, so no `finally`, no answer and no
cleanup run, exactly as when Lambda's sandbox dies:

- `after_ledger_write`: the ledger committed the batch's facts (their customer totals with them), nothing
  was sent to Mixpanel;
- `after_import`: `MixpanelClient.import_events` returned (Mixpanel stored the events), profiles not sent;
- `after_profiles`: `Forwarder.process` returned (events and profiles sent), the batch never answered.

The messages then come back after their visibility timeout and the in-process forwarder drains them.
What must hold: every webhook is one event after Mixpanel's dedup rule, the ledger's totals and the
Mixpanel profiles equal the sums of the payloads, the dead-letter queue is empty.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # the child process: import paths as pytest's configuration sets them
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT), str(ROOT / "layers" / "common"), str(ROOT / "functions")]

import pytest  # noqa: E402
from harness import Pipeline, stripe_checkout  # noqa: E402

KILL_POINTS = ("after_ledger_write", "after_import", "after_profiles")
LONG = os.environ.get("RUN_SLOW") == "1"


# (tag, customer, user, minor amount, currency): two customers, several purchases each, two currencies.
PURCHASES = (
    ("crash-a1", "cus_crash_a", "user-crash-a", 1_250, "usd"),
    ("crash-a2", "cus_crash_a", "user-crash-a", 4_999, "usd"),
    ("crash-a3", "cus_crash_a", "user-crash-a", 700, "eur"),
    ("crash-b1", "cus_crash_b", "user-crash-b", 10_000, "usd"),
    ("crash-b2", "cus_crash_b", "user-crash-b", 2_500, "usd"),
    ("crash-b3", "cus_crash_b", "user-crash-b", 99, "usd"),
)
CRASH_ROUNDS = 8
EARLIER = ("crash-a0", "cus_crash_a", "user-crash-a", 3_000, "usd")  # delivered before the crash


def checkout(tag: str, customer: str, user: str, amount: int, currency: str) -> bytes:
    event = json.loads(stripe_checkout(tag, user_id=user))
    event["data"]["object"].update(customer=customer, amount_total=amount, amount_subtotal=amount, currency=currency)
    return json.dumps(event).encode()


# ---- the tests ----------------------------------------------------------------------------------


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    running = Pipeline(visibility_timeout_s=1)
    try:
        yield running
    finally:
        running.close()


@pytest.mark.parametrize("kill_point", KILL_POINTS)
def test_a_forwarder_killed_mid_batch_loses_and_double_counts_nothing(pipeline: Pipeline, kill_point: str) -> None:
    assert pipeline.post_stripe(checkout(*EARLIER))["statusCode"] == 200
    assert pipeline.drain(30)
    for purchase in PURCHASES:
        assert pipeline.post_stripe(checkout(*purchase))["statusCode"] == 200

    returncode, output = run_killed_forwarder(pipeline, kill_point)
    assert returncode == -signal.SIGKILL, f"the forwarder was not killed at {kill_point}: {output[-3000:]}"
    stored_before_redelivery = Counter(pipeline.fates().ingested)

    assert pipeline.drain(60), "redelivered messages did not drain"
    fates = pipeline.fates()
    tags = [p[0] for p in (EARLIER, *PURCHASES)]
    assert fates.lost(tags) == [] and fates.duplicated() == []
    assert all(fates.delivered[tag] == 1 for tag in tags)
    assert fates.dead_letters == {}
    sent_twice = sum(fates.ingested[p[0]] == 2 for p in PURCHASES)
    if kill_point == "after_ledger_write":
        assert sum(stored_before_redelivery.values()) == 1  # only the earlier purchase reached Mixpanel
        assert sent_twice == 0
    else:
        assert sent_twice == len(PURCHASES)  # sent before the kill and again after it: deduplicated

    for customer, user in (("cus_crash_a", "user-crash-a"), ("cus_crash_b", "user-crash-b")):
        own = [p for p in (EARLIER, *PURCHASES) if p[1] == customer]
        revenue = Counter()
        for _, _, _, amount, currency in own:
            revenue[currency.upper()] += amount
        totals = pipeline.customer_totals(f"stripe:{customer}")
        assert totals["purchases"] == len(own)
        assert totals["revenue"] == dict(revenue)
        profile = pipeline.mixpanel.profiles()[user]
        assert profile["Purchase Count"] == len(own)
        for currency, minor in revenue.items():
            assert profile[f"Lifetime Revenue {currency}"] == minor / 100


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="long crash series: RUN_SLOW=1")
def test_a_series_of_crashes_at_random_seams_loses_and_double_counts_nothing(seed: int) -> None:
    """Many customers, one forwarder killed at a random seam (and ledger write) batch after batch, then a drain."""
    rng = random.Random(seed)
    purchases = [
        (
            f"series{seed}-{n}",
            f"cus_series_{n % 7}",
            f"user-series-{n % 7}",
            rng.randint(1, 100_000),
            rng.choice(("usd", "eur")),
        )
        for n in range(60)
    ]
    # Long enough that each round takes fresh messages: none is received MaxReceiveCount times and dead-lettered.
    pipeline = Pipeline(visibility_timeout_s=10)
    try:
        for purchase in purchases:
            assert pipeline.post_stripe(checkout(*purchase))["statusCode"] == 200
        kills = 0
        for _ in range(CRASH_ROUNDS):
            point = rng.choice(KILL_POINTS)
            returncode, _ = run_killed_forwarder(pipeline, point)
            kills += returncode == -signal.SIGKILL
        assert pipeline.drain(120)
        fates = pipeline.fates()
        tags = [p[0] for p in purchases]
        assert fates.lost(tags) == [] and fates.duplicated() == [] and fates.dead_letters == {}
        for n in range(7):
            own = [p for p in purchases if p[1] == f"cus_series_{n}"]
            revenue = Counter()
            for _, _, _, amount, currency in own:
                revenue[currency.upper()] += amount
            totals = pipeline.customer_totals(f"stripe:cus_series_{n}")
            assert totals["purchases"] == len(own) and totals["revenue"] == dict(revenue)
            profile = pipeline.mixpanel.profiles()[f"user-series-{n}"]
            assert profile["Purchase Count"] == len(own)
        print(
            f"\ncrash series {seed}: {len(purchases)} webhooks, {kills} forwarder kills in {CRASH_ROUNDS} batches, "
            f"{sum(fates.ingested.values())} events ingested, {sum(fates.delivered.values())} after dedup, "
            f"lost {len(fates.lost(tags))}, double-counted {len(fates.duplicated())}"
        )
    finally:
        pipeline.close()


def run_killed_forwarder(pipeline: Pipeline, kill_point: str) -> tuple[int, str]:
    """Run one forwarder poll in a child process that SIGKILLs itself at `kill_point`."""
    spec = {
        "environment": pipeline.environment,
        "endpoint": pipeline.moto.endpoint,
        "queue_url": pipeline.queue_url,
        "queue_arn": pipeline.resources.attributes[("EventsQueue", "Arn")],
        "batch_size": pipeline.esm.batch_size,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        child = subprocess.run(
            [sys.executable, __file__, kill_point, handle.name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    return child.returncode, child.stdout + child.stderr


# ---- the child: one forwarder poll that dies at a seam ----------------------------------------------


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill(kill_point: str) -> None:
    from revenue_webhooks.adapters import dynamodb_ledger as ledger
    from revenue_webhooks.mixpanel import client as mixpanel
    from revenue_webhooks.service import forwarder as forwarder

    if kill_point == "after_ledger_write":
        # The ledger's write (the port's `record_all`: the batch's facts, in per-customer transactions): the
        # kill comes after a committed write, before any send.
        write = ledger.DynamoDbLedger.record_all

        def write_then_die(self: Any, *args: Any, **kwargs: Any) -> Any:
            write(self, *args, **kwargs)
            _die()

        ledger.DynamoDbLedger.record_all = write_then_die  # type: ignore[method-assign]
    elif kill_point == "after_import":
        import_events = mixpanel.MixpanelClient.import_events

        def import_then_die(self: Any, *args: Any, **kwargs: Any) -> Any:
            import_events(self, *args, **kwargs)
            _die()

        mixpanel.MixpanelClient.import_events = import_then_die
    elif kill_point == "after_profiles":
        process = forwarder.Forwarder.process

        def process_then_die(self: Any, *args: Any, **kwargs: Any) -> Any:
            process(self, *args, **kwargs)
            _die()

        forwarder.Forwarder.process = process_then_die
    else:
        raise SystemExit(f"unknown kill point {kill_point!r}")


def _child(kill_point: str, spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    import boto3

    from devstack.esm import EventSourceMapping
    from devstack.lambda_runtime import LambdaContext, load_handler
    from devstack.template import Template

    handler = load_handler(Template(), "ForwarderFunction", spec["environment"])
    _install_kill(kill_point)
    sqs = boto3.client("sqs", endpoint_url=spec["endpoint"])
    esm = EventSourceMapping(
        sqs,
        spec["queue_url"],
        spec["queue_arn"],
        handler,
        lambda: LambdaContext("ForwarderFunction", 60),
        batch_size=spec["batch_size"],
        batching_window_s=0,
    )
    polled = esm.poll_once(0)
    print(f"the kill point {kill_point} was never reached (batch of {polled})")
    return 3


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1], sys.argv[2]))
