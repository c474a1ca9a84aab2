"""An hour of Mixpanel trouble, compressed: every fault in sequence, then random mixes, and nothing lost.

Time is compressed: backoff waits milliseconds (harness FAST_BACKOFF), the read timeout is 0.3 s, the
forwarder has 0.6 s to back off in per invocation and the queue's visibility timeout is 1 s, so five
receives and a dead letter take seconds. Each test counts what became of every accepted webhook and
prints the counts: delivered exactly once after Mixpanel's dedup, or dead-lettered with a reason. Lost: 0.

`RUN_SLOW=1` runs the longer fuzz (`-m slow`); CI runs a few examples.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from harness import SHORT_TIMEOUTS, Pipeline, stripe_checkout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.service import forwarder as forwarder_module
from revenue_webhooks.service.envelope import to_sqs

from devstack.mixpanel import RANDOM_FAULT_NAMES, Fault

SLOW_ANSWER_S = 0.6  # longer than SHORT_TIMEOUTS' 0.3 s read timeout
POISON_KINDS = ("malformed-body", "unknown-provider", "mapping-exception")


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    running = Pipeline(
        extra_env=SHORT_TIMEOUTS,
        visibility_timeout_s=1,
        forwarder_timeout_s=forwarder_module.SAFETY_MARGIN_S + 0.6,
    )
    try:
        yield running
    finally:
        running.close()


# ---- webhooks -------------------------------------------------------------------------------------------


class Traffic:
    """The webhooks of one run: what was accepted, and which of them can never be delivered."""

    def __init__(self, pipeline: Pipeline, run: str) -> None:
        self.pipeline = pipeline
        self.run = run
        self.accepted: list[str] = []
        self.invalid: set[str] = set()  # Mixpanel refuses their events every time
        self.poison: set[str] = set()  # the forwarder cannot map them
        self.injected: set[str] = set()  # chosen for a scripted strict-400 rejection

    def orders(self, wave: str, count: int, *, invalid_every: int = 0) -> list[str]:
        """Post `count` paid Checkouts; every `invalid_every`-th is stamped two hours ahead (Mixpanel refuses it)."""
        posted = []
        for n in range(count):
            tag = f"{self.run}-{wave}-{n:03d}"
            invalid = bool(invalid_every) and n % invalid_every == invalid_every - 1
            created = int(time.time()) + 7200 if invalid else 1_700_000_000 + len(self.accepted)
            body = stripe_checkout(tag, created=created, user_id=f"user-{tag}" if n % 4 == 0 else None)
            response = self.pipeline.post_stripe(body)
            assert (response["statusCode"], json.loads(response["body"])) == (200, {"status": "accepted"})
            self.accepted.append(tag)
            posted.append(tag)
            if invalid:
                self.invalid.add(tag)
        return posted

    def poison_message(self, kind: str) -> None:
        tag = f"{self.run}-poison-{kind}"
        if kind == "mapping-exception":  # the receiver accepts it; the Stripe mapping needs the session id
            event = json.loads(stripe_checkout(tag))
            del event["data"]["object"]["id"]
            assert self.pipeline.post_stripe(json.dumps(event).encode())["statusCode"] == 200
        else:
            provider, body = (
                ("stripe", b"{not json") if kind == "malformed-body" else ("nonesuch", stripe_checkout(tag))
            )
            queued = QueuedEvent(provider, f"evt_{tag}", "checkout.session.completed", int(time.time() * 1000), body)
            self.pipeline.sqs.send_message(QueueUrl=self.pipeline.queue_url, **to_sqs(queued))
        self.accepted.append(tag)
        self.poison.add(tag)

    def reject(self, tags: list[str], copies: int) -> Fault:
        """A scripted strict 400 for these orders' events, for the next `copies` /import requests."""
        chosen = frozenset(tags)
        self.injected |= chosen
        fault = Fault.reject(
            predicate=lambda event: str(event["properties"].get("Order ID", "")).removeprefix("cs_") in chosen,
            field="properties.Revenue",
            message="'properties.Revenue' is invalid: rejected by an injected fault",
            path="/import",
        )
        self.pipeline.mixpanel.faults.push(*[fault] * copies)
        return fault


def run_for(pipeline: Pipeline, seconds: float) -> None:
    """Let the event source mapping poll for a while (Lambda keeps polling whatever Mixpanel does)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if pipeline.esm.poll_once(0) == 0:
            time.sleep(0.1)


# ---- counting ---------------------------------------------------------------------------------------------


def account(traffic: Traffic, title: str, started: float, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Count every accepted webhook's fate, print the counts, and assert that nothing was lost or doubled."""
    pipeline = traffic.pipeline
    fates = pipeline.fates()
    dead_letters = pipeline.dead_letters()
    reasons = {
        tag: m["MessageAttributes"].get("dead_letter_reason", {}).get("StringValue", "")
        for tag, m in fates.dead_letters.items()
    }
    delivered = [tag for tag in traffic.accepted if fates.delivered[tag] == 1]
    counts = {
        "accepted": len(traffic.accepted),
        "delivered exactly once": len(delivered),
        "dead-lettered with a reason": sum(1 for tag in traffic.accepted if reasons.get(tag)),
        "of which also delivered (a profile update or a timed-out import ran out of retries)": sum(
            1 for tag in delivered if tag in fates.dead_letters
        ),
        "lost": len(fates.lost(traffic.accepted)),
        "duplicated after dedup": len(fates.duplicated()),
        "dead-letter reasons": dict(sorted(Counter(reasons.values()).items())),
        "ingested copies (retries included)": sum(fates.ingested[tag] for tag in traffic.accepted),
        "mixpanel requests": Counter(r["path"] for r in pipeline.mixpanel.requests_log()),
        "faults served": dict(sorted(pipeline.mixpanel.faults.served.items())),
        "invocations": pipeline.esm.invocations,
        "seconds": round(time.monotonic() - started, 1),
    }
    with capsys.disabled():  # the counts are the point of the test: show them without -s
        print(f"\n{title}: " + json.dumps(counts, default=dict, indent=1))

    assert pipeline.queue_depth() == 0, "messages still queued"
    assert fates.lost(traffic.accepted) == [], counts
    assert fates.duplicated() == [], counts
    assert all(reasons.values()), "every dead letter says why"
    assert len(dead_letters) == len(fates.dead_letters), "one dead letter per message, each with its event id"
    assert set(fates.dead_letters) <= set(traffic.accepted)
    for tag in traffic.invalid | traffic.poison:
        assert fates.delivered[tag] == 0 and tag in fates.dead_letters, tag
    for tag in traffic.poison:
        assert reasons[tag] in ("mapping_error", "unknown_provider"), reasons[tag]
    # A valid event is never dead-lettered for its neighbours: only its own rejection names it.
    rejected = {tag for tag, reason in reasons.items() if reason == "mixpanel_rejected_event"}
    assert rejected <= traffic.invalid | traffic.injected, rejected - traffic.invalid - traffic.injected
    assert "mixpanel_rejected_request" not in reasons.values()
    assert pipeline.limit_breaches() == []
    both = counts["of which also delivered (a profile update or a timed-out import ran out of retries)"]
    assert counts["delivered exactly once"] + counts["dead-lettered with a reason"] - both == len(traffic.accepted)
    return counts


# ---- the hour, in sequence --------------------------------------------------------------------------------

EVERYTHING_AT_ONCE = {name: 0.06 for name in RANDOM_FAULT_NAMES}  # 8 kinds, 48% of requests fail


def test_an_hour_of_mixpanel_trouble_loses_nothing(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline.reset()
    started = time.monotonic()
    traffic = Traffic(pipeline, "hour")
    faults = pipeline.mixpanel.faults

    traffic.orders("calm", 8, invalid_every=4)
    run_for(pipeline, 1.0)

    traffic.orders("5xx", 10)
    faults.push(*[Fault.http(503)] * 5, *[Fault.http(502)] * 3, *[Fault.http(500)] * 3)
    run_for(pipeline, 2.0)

    traffic.orders("rate-limited", 10, invalid_every=5)
    faults.push(*[Fault.rate_limited()] * 8)
    traffic.poison_message("malformed-body")
    run_for(pipeline, 2.0)

    traffic.orders("too-large", 10)
    faults.push(*[Fault.http(413, path="/import")] * 3)
    run_for(pipeline, 1.5)

    wave = traffic.orders("rejections", 10, invalid_every=3)
    traffic.reject(wave[:2], copies=2)
    traffic.poison_message("unknown-provider")
    run_for(pipeline, 1.5)

    traffic.orders("slow", 8)
    faults.push(*[Fault.slow(SLOW_ANSWER_S)] * 2, *[Fault.slow(SLOW_ANSWER_S, store=True)] * 2)
    run_for(pipeline, 2.0)

    traffic.orders("disconnects", 8)
    faults.push(*[Fault.disconnect()] * 4)
    run_for(pipeline, 1.5)

    traffic.orders("credentials", 10)
    faults.push(*[Fault.http(401)] * 4)
    traffic.poison_message("mapping-exception")
    run_for(pipeline, 2.0)

    # An outage long enough for some messages to run out of receives: they are dead-lettered, not lost.
    traffic.orders("outage", 10)
    faults.random(seed=503, rates={"503": 1.0})
    run_for(pipeline, 9.0)

    traffic.orders("everything-at-once", 20, invalid_every=7)
    faults.random(seed=2026, rates=EVERYTHING_AT_ONCE, slow_s=SLOW_ANSWER_S)
    run_for(pipeline, 6.0)

    faults.clear()  # the hour is over
    assert pipeline.drain(60)

    counts = account(traffic, "an hour of Mixpanel trouble", started, capsys)
    assert counts["dead-letter reasons"].get("retries_exhausted:mixpanel_503"), "the outage exhausted some retries"
    assert counts["lost"] == counts["duplicated after dedup"] == 0


# ---- random mixes -----------------------------------------------------------------------------------------

QUEUED_FAULTS = {
    "500": lambda: Fault.http(500),
    "502": lambda: Fault.http(502),
    "503": lambda: Fault.http(503),
    "429": Fault.rate_limited,
    "413": lambda: Fault.http(413, path="/import"),
    "401": lambda: Fault.http(401),
    "slow": lambda: Fault.slow(SLOW_ANSWER_S),
    "slow-but-stored": lambda: Fault.slow(SLOW_ANSWER_S, store=True),
    "disconnect": Fault.disconnect,
}


@st.composite
def troubles(draw: st.DrawFn, max_orders: int = 16) -> dict[str, Any]:
    return {
        "orders": draw(st.integers(min_value=1, max_value=max_orders)),
        "invalid_every": draw(st.sampled_from([0, 3, 5])),
        "queued": draw(st.lists(st.sampled_from(sorted(QUEUED_FAULTS)), max_size=12)),
        "rejected": draw(st.lists(st.integers(min_value=0, max_value=max_orders - 1), max_size=3, unique=True)),
        "random": draw(
            st.none()
            | st.fixed_dictionaries(
                {
                    "seed": st.integers(min_value=0, max_value=2**32 - 1),
                    "rates": st.dictionaries(
                        st.sampled_from(RANDOM_FAULT_NAMES), st.floats(min_value=0.0, max_value=0.1), max_size=6
                    ),
                    "seconds": st.floats(min_value=0.5, max_value=4.0),
                }
            )
        ),
        "poison": draw(st.none() | st.sampled_from(POISON_KINDS)),
    }


def play(pipeline: Pipeline, trouble: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    pipeline.reset()
    started = time.monotonic()
    traffic = Traffic(pipeline, "mix")
    orders = traffic.orders("wave", trouble["orders"], invalid_every=trouble["invalid_every"])
    if trouble["poison"]:
        traffic.poison_message(trouble["poison"])
    chosen = [orders[i] for i in trouble["rejected"] if i < len(orders)]
    if chosen:
        traffic.reject(chosen, copies=2)
    pipeline.mixpanel.faults.push(*[QUEUED_FAULTS[name]() for name in trouble["queued"]])
    if trouble["random"]:
        random = trouble["random"]
        pipeline.mixpanel.faults.random(random["seed"], random["rates"], slow_s=SLOW_ANSWER_S)
        run_for(pipeline, random["seconds"])
        pipeline.mixpanel.faults.clear()
    assert pipeline.drain(60)
    return account(traffic, f"random mix {trouble}", started, capsys)


@settings(
    max_examples=3,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(trouble=troubles())
def test_random_mixes_of_faults_lose_nothing(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], trouble: dict[str, Any]
) -> None:
    play(pipeline, trouble, capsys)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RUN_SLOW") != "1", reason="the long fuzz runs with RUN_SLOW=1")
@settings(
    max_examples=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(trouble=troubles(max_orders=40))
def test_random_mixes_of_faults_lose_nothing_long(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], trouble: dict[str, Any]
) -> None:
    play(pipeline, trouble, capsys)
