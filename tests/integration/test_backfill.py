"""`revenue-webhooks backfill` against the local Stripe API and the pipeline on moto and the local Mixpanel.

What must hold: the backfill gives Mixpanel the events the webhooks gave (a webhook and its backfilled twin are
one event), a second run adds nothing, a SIGKILL in the middle loses and doubles nothing after the resume, and
429s, 5xx, timeouts and dropped connections change nothing but the time it takes.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Pipeline
from stripe_history_rig import Rig, changed, objects_read

from devstack.stripe_api import StripeAccount, StripeApiServer, write_history

NOW = int(time.time())
DAY = 86400
START = NOW - 5 * 30 * DAY
SINCE = time.strftime("%Y-%m-%d", time.gmtime(START - DAY))


@pytest.fixture(scope="module")
def account() -> StripeAccount:
    story = StripeAccount(seed=21)
    write_history(story, start=START, months=5, customers=4, payments_per_month=4)
    return story


@pytest.fixture
def rig(quick_pipeline: Pipeline, account: StripeAccount, tmp_path: Path) -> Iterator[Rig]:
    quick_pipeline.reset()
    with StripeApiServer(account, validate_spec=True) as api:
        yield Rig(quick_pipeline, api, tmp_path / "state")
        assert api.spec_violations() == []


@pytest.fixture(scope="module")
def reference(
    quick_pipeline: Pipeline, account: StripeAccount, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict]:
    """Mixpanel after every webhook of the history, once and in order."""
    quick_pipeline.reset()
    with StripeApiServer(account) as api:
        rig = Rig(quick_pipeline, api, tmp_path_factory.mktemp("reference"))
        rig.deliver(account.events())
        events = rig.events()
    assert not quick_pipeline.dead_letters()
    return events


def webhook_only(events: dict[str, dict]) -> dict[str, dict]:
    """What only a webhook can say (Stripe's lists keep no past plan changes): the story's one upgrade."""
    return {k: e for k, e in events.items() if e["event"] == "Subscription Changed"}


def test_the_backfill_gives_mixpanel_what_the_webhooks_gave(rig: Rig, reference: dict[str, dict]) -> None:
    code, out = rig.backfill("--since", SINCE)
    assert code == 0, out
    rig.drain()
    got = rig.events()
    assert Counter(e["event"] for e in webhook_only(reference).values()) == {"Subscription Changed": 1}
    assert got.keys() == reference.keys() - webhook_only(reference).keys()
    # A backfilled start names the plan the subscription has now: the upgraded one's differs, nothing else
    # but its MRR, which is the in-order start's plus the upgrade only a webhook told (a start from 0).
    differences = changed(reference, got)
    assert [d["event"] for d in differences.values()] == ["Subscription Started"]
    (difference,) = differences.values()
    assert set(difference) == {"event", "Plan", "Price", "MRR", "MRR Change"}
    (upgrade,) = webhook_only(reference).values()
    before, after = difference["MRR"]
    assert after == pytest.approx(before + upgrade["properties"]["MRR Change"]) and difference["MRR Change"][1] == after
    assert rig.pipeline.mixpanel.spec_violations() == [] and not rig.pipeline.dead_letters()


def test_a_webhook_and_its_backfilled_twin_are_one_event(rig: Rig, account: StripeAccount, reference: dict) -> None:
    rig.deliver(account.events())
    facts = rig.ledger_facts()
    code, out = rig.backfill("--since", SINCE)  # every object: the ledger holds them all
    assert code == 0 and "enqueued 0," in out, out
    session = account.store.objects("checkout.session")[0]["id"]
    refund = account.store.objects("refund")[0]["id"]
    code, out = rig.backfill("--ids", f"{session},{refund}")  # forced through, twins of delivered webhooks
    assert code == 0 and "enqueued 2," in out, out
    rig.drain()
    assert rig.events() == reference
    assert rig.ledger_facts() == facts
    raw = Counter(e["properties"]["Order ID"] for e in rig.pipeline.mixpanel.raw_events("Purchase Completed"))
    assert raw[session] == 2  # sent twice, byte for byte the same event: Mixpanel keeps one


def test_a_second_run_adds_nothing(rig: Rig) -> None:
    assert rig.backfill("--since", SINCE)[0] == 0
    rig.drain()
    before, facts = rig.events(), rig.ledger_facts()
    code, out = rig.backfill("--since", SINCE)
    assert code == 0 and "was finished at" in out, out
    code, out = rig.backfill("--since", SINCE, "--restart")
    assert code == 0 and "enqueued 0," in out and "already in the ledger" in out, out
    assert rig.pipeline.queue_depth() == 0
    assert rig.events() == before and rig.ledger_facts() == facts


def test_a_dry_run_counts_and_enqueues_nothing(rig: Rig) -> None:
    code, out = rig.backfill("--since", SINCE, "--dry-run")
    assert code == 0 and "would enqueue" in out, out
    assert rig.pipeline.queue_depth() == 0 and not (rig.state_dir).exists()


def test_killed_in_the_middle_it_resumes_with_nothing_lost_or_doubled(
    rig: Rig, reference: dict[str, dict], account: StripeAccount
) -> None:
    rig.api.list_latency_s = 0.03
    argv, env = rig.command("--since", SINCE, "--page-size", "3", "--concurrency", "2")
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child.poll() is None:
        if objects_read(rig.state_dir, "*") >= 20:  # several pages checkpointed, most still to read
            break
        time.sleep(0.01)
    assert child.poll() is None, child.communicate()[0].decode()
    child.send_signal(signal.SIGKILL)
    child.wait()
    rig.api.list_latency_s = 0
    listed = rig.pipeline.queue_depth()
    assert listed > 0
    code, out = rig.backfill("--since", SINCE, "--page-size", "3")
    assert code == 0 and "resuming" in out, out
    rig.drain()
    assert rig.events().keys() == reference.keys() - webhook_only(reference).keys()
    assert not rig.pipeline.dead_letters()


def test_429s_5xx_timeouts_and_dropped_connections_change_nothing(rig: Rig, reference: dict[str, dict]) -> None:
    rates = {"rate_limit": 0.08, "500": 0.04, "503": 0.04, "slow": 0.03, "disconnect": 0.03}
    rig.api.faults.random(seed=7, rates=rates, slow_s=1.5)
    code, out = rig.backfill("--since", SINCE, "--page-size", "5", "--timeout", "0.5", "--backoff", "0.05")
    assert code == 0, out
    served = rig.api.faults.served
    assert set(served) == set(rates), served
    rig.drain()
    assert rig.events().keys() == reference.keys() - webhook_only(reference).keys()


def test_it_stays_under_stripes_rate_limit_and_honours_its_429s(rig: Rig) -> None:
    code, out = rig.backfill("--since", SINCE, "--page-size", "2", "--kinds", "payment_intents")
    assert code == 0 and "(0 rate-limited)" in out, out
    assert [r for r in rig.api.requests_log() if r["status"] == 429] == []
    rig.api.reset_log()
    code, out = rig.backfill(
        "--since",
        SINCE,
        "--page-size",
        "2",
        "--kinds",
        "payment_intents",
        "--rate",
        "80",
        "--restart",
        "--backoff",
        "0.2",
    )
    limited = [r for r in rig.api.requests_log() if r["status"] == 429]
    assert code == 0 and limited, out
    assert "(0 rate-limited)" not in out


def test_usage_errors_say_what_to_set(rig: Rig) -> None:
    code, out = rig.backfill("--since", SINCE, STRIPE_API_KEY=None)
    assert code == 2 and "STRIPE_API_KEY" in out
    code, out = rig.backfill("--since", SINCE, STRIPE_API_KEY="sk_test_not_this_one")
    assert code == 2 and "Stripe refused the key" in out
    code, out = rig.backfill("--since", SINCE, "--kinds", "charges")
    assert code == 2 and "invoices, checkout_sessions, payment_intents, refunds, subscriptions" in out
    code, out = rig.backfill("--ids", "ch_123")
    assert code == 2 and "in_" in out
    code, out = rig.backfill("--since", SINCE, EVENTS_QUEUE_URL=None)
    assert code == 2 and "EVENTS_QUEUE_URL" in out
    code, out = rig.backfill()
    assert code == 2 and "--since" in out
