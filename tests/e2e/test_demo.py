"""`make demo` end to end, and the samples in `events/` it and `sam local invoke` users rely on.

The demo runs as a user runs it (`python -m devstack.cli demo`, a subprocess); the table it prints
is checked against the story the Stripe samples tell: Ada pays $49 once, subscribes to Pro Monthly
($15, then a $15 renewal), moves to Team Monthly, schedules a cancellation and is refunded $19;
Haruki pays ¥3,000.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import stripe

from devstack.reference_rates import STAND_IN_RATES
from devstack.samples import EVENTS_DIR, SQS_DIR, samples
from devstack.template import ROOT, Template


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MIXPANEL_", "AWS_", "STRIPE_API_")) and not k.endswith("_WEBHOOK_SECRET")
    }
    return {**env, "PYTHONPATH": os.pathsep.join(["layers/common", "."]), **extra}


@pytest.fixture(scope="module")
def demo(demo_run: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """`make demo`, run once for this file and the README's commands (tests/e2e/conftest.py)."""
    return demo_run


def _row(output: str, first_cell: str) -> list[str]:
    """The cells of the table row that starts with `first_cell` (columns are two or more spaces apart)."""
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{output}")


def test_the_demo_exits_0_and_nothing_was_dead_lettered(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Dead-lettered: 0" in demo.stdout
    assert "make demo: done in" in demo.stdout


def test_the_demo_says_what_it_sends_and_why_it_waits(demo: subprocess.CompletedProcess[str]) -> None:
    served = samples()  # every route in events/ is served by the local stack (the demo sender included)
    announced = re.search(r"sending the (\d+) sample webhooks of events/", demo.stdout)
    assert announced and int(announced.group(1)) == len(served), demo.stdout
    sent = re.search(r"(\d+) webhooks sent \((\d+) samples and (\d+) wrongly signed\)", demo.stdout)
    assert sent and (int(sent.group(2)), int(sent.group(3))) == (len(served), 1), demo.stdout
    assert int(sent.group(1)) == len(served) + 1
    window = Template().parameters["ForwarderBatchingWindowSeconds"]
    assert f"batching window ({window} s, ForwarderBatchingWindowSeconds)" in demo.stdout
    assert demo.stdout.rstrip().endswith("nothing was sent beyond 127.0.0.1.")


def test_the_demo_ends_with_a_first_day_whose_reconcile_agrees(demo: subprocess.CompletedProcess[str]) -> None:
    assert 'make backfill ARGS="--since' in demo.stdout
    assert re.search(r"backfill: read \d+ objects .*; enqueued [1-9]\d*, skipped 0 already in the ledger", demo.stdout)
    assert "about payments the backfill read: each counts once" in demo.stdout
    tail = demo.stdout[demo.stdout.index("Reconcile ") :]
    for currency in ("EUR", "JPY", "KWD", "USD"):
        stripe = _row(tail, currency)
        assert stripe[1] == "Stripe"
        lines = tail.splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(currency))
        ledger, mixpanel = (re.split(r"\s{2,}", lines[at + k].strip()) for k in (1, 2))
        assert ledger[0] == "Ledger" and mixpanel[0] == "Mixpanel"
        assert stripe[2:] == ledger[1:] == mixpanel[1:], currency
    assert "All agree: no difference per currency or per object." in tail


def test_the_table_counts_the_mixpanel_events(demo: subprocess.CompletedProcess[str]) -> None:
    # Stripe 4 (two Checkouts, two paid invoices) + one each from Shopify, Paddle, Lemon Squeezy,
    # RevenueCat and the demo Standard Webhooks sender; the App Store 4 (subscription, renewal, two one-time
    # charges) and Google Play 3 (subscription, two one-time purchases).
    assert _row(demo.stdout, "Purchase Completed") == ["Purchase Completed", "16"]
    assert _row(demo.stdout, "Refund Issued") == ["Refund Issued", "3"]  # Stripe, App Store, Google Play
    assert _row(demo.stdout, "Subscription Renewed") == ["Subscription Renewed", "2"]
    assert _row(demo.stdout, "Subscription Changed") == ["Subscription Changed", "1"]
    assert _row(demo.stdout, "Subscription Cancellation Scheduled") == ["Subscription Cancellation Scheduled", "3"]


def test_the_table_has_revenue_per_currency_in_its_own_decimals(demo: subprocess.CompletedProcess[str]) -> None:
    # Haruki's ¥3,000 by Stripe, and ¥1,200 by each store, refunded.
    assert _row(demo.stdout, "JPY") == ["JPY", "5,400", "2,400", "3,000", "5"]
    assert _row(demo.stdout, "EUR") == ["EUR", "25.00", "0.00", "25.00", "1"]
    assert _row(demo.stdout, "KWD") == ["KWD", "6.240", "0.000", "6.240", "2"]  # 4.990 (App Store) + 1.250 (Play)
    usd = _row(demo.stdout, "USD")
    assert usd[2] == "19.00"  # the partial refund of Ada's $49 Checkout payment
    assert float(usd[1].replace(",", "")) - float(usd[3].replace(",", "")) == pytest.approx(19.0)


def _play_mrr() -> Decimal:
    """The Google Play sample subscription's MRR by hand: its monthly order line's total minus its tax."""
    orders = json.loads((EVENTS_DIR / "googleplay" / "play-api" / "orders.json").read_text())
    line = orders["GPA.3312-4455-6677-88990"]["lineItems"][0]
    total, tax = (Decimal(line[k]["units"]) + Decimal(line[k]["nanos"]) / 10**9 for k in ("total", "tax"))
    return total - tax


def _sample(name: str) -> dict:
    return json.loads((EVENTS_DIR / "stripe" / f"{name}.json").read_text())["data"]["object"]


def test_stripe_events_through_eventbridge_add_nothing_to_the_webhooks(demo: subprocess.CompletedProcess[str]) -> None:
    assert "Stripe through EventBridge: the 9 mapped Stripe samples were also put on the partner bus" in demo.stdout


def test_the_table_has_each_customers_profile(demo: subprocess.CompletedProcess[str]) -> None:
    team = _sample("customer.subscription.updated.plan_change")["items"]["data"][0]
    mrr = team["price"]["unit_amount"] * team["quantity"] / 100  # Team Monthly: 49.00 a month
    assert _row(demo.stdout, "user_1001") == [
        "user_1001", "3", "1", "USD 60.00", f"USD {mrr:.2f}", "60.00", f"{mrr:.2f}", "Team Monthly", "active"
    ]  # fmt: skip
    # Haruki's ¥3,000 in USD at the local ECB stand-in's rates (USD and JPY per euro), crossed through the euro.
    usd = Decimal(3000) / Decimal(STAND_IN_RATES["JPY"]) * Decimal(STAND_IN_RATES["USD"])
    assert _row(demo.stdout, "user_2002") == [
        "user_2002",
        "1",
        "0",
        "JPY 3,000",
        f"{usd.quantize(Decimal('0.01'), ROUND_HALF_UP)}",
    ]
    # The App Store subscriber (appAccountToken) renewed once, then let the subscription expire; Apple's
    # notifications state no tax, so no MRR is claimed (docs/providers.md, "Subscription economics").
    subscriber = _row(demo.stdout, "7e3fb20b-4cdb-47cc-936d-99d65f608138")
    assert subscriber == [
        "7e3fb20b-4cdb-47cc-936d-99d65f608138",
        "2",
        "0",
        "USD 19.98",
        "19.98",
        "com.example.pro.monthly",
        "canceled",
    ]
    # The Google Play subscriber: its order's total with tax, and its MRR without (the line's total - tax, monthly).
    play_mrr = _play_mrr()
    assert _row(demo.stdout, "user-7f3a") == [
        "user-7f3a", "1", "0", "USD 10.69", f"USD {play_mrr:.2f}", "10.69", f"{play_mrr:.2f}", "pro_monthly", "active"
    ]  # fmt: skip
    assert _row(demo.stdout, "user-kw-01") == ["user-kw-01", "1", "0", "KWD 1.250"]  # obfuscatedExternalAccountId


def test_the_table_has_mrr_movements(demo: subprocess.CompletedProcess[str]) -> None:
    pro = _sample("customer.subscription.created")["items"]["data"][0]["price"]["unit_amount"] / 100  # 15.00
    team = _sample("customer.subscription.updated.plan_change")["items"]["data"][0]["price"]["unit_amount"] / 100
    assert _row(demo.stdout, "Expansion") == ["Expansion", "USD", "1", f"{team - pro:.2f}"]  # Pro to Team
    revenuecat = json.loads((EVENTS_DIR / "revenuecat" / "INITIAL_PURCHASE.json").read_text())["event"]
    weekly = Decimal(str(revenuecat["price_in_purchased_currency"])) * 52 / 12  # a weekly product, per month
    new = Decimal(str(pro)) + weekly.quantize(Decimal("0.01"), ROUND_HALF_UP) + _play_mrr()
    assert _row(demo.stdout, "New") == ["New", "USD", "3", f"{new:.2f}"]
    assert "Revenue in the reporting currency USD" in demo.stdout


def test_the_table_has_the_company_profile_of_adas_subscription(demo: subprocess.CompletedProcess[str]) -> None:
    # Her subscription's metadata names company_id acme-corp: its two paid invoices ($15 each), its plan, and the
    # subscription's MRR after the move to Team Monthly (its unit amount x quantity, monthly).
    team = _sample("customer.subscription.updated.plan_change")["items"]["data"][0]
    assert _row(demo.stdout, "company_id=acme-corp") == [
        "company_id=acme-corp",
        "2",
        "0",
        "USD 30.00",
        f"USD {team['price']['unit_amount'] * team['quantity'] / 100:.2f}",
        "Team Monthly",
        "1",
        "active",
    ]


def test_the_test_mode_checkout_reached_only_the_test_project(demo: subprocess.CompletedProcess[str]) -> None:
    assert "Test project (project 2: test-mode webhooks, 1 events):" in demo.stdout
    assert _row(demo.stdout, "Purchase Completed")[0:2] == ["Purchase Completed", "16"]  # not counted in production
    test_row = [line for line in demo.stdout.splitlines() if "cs_test_a1QcDemoTestModeUsd0001" in line]
    assert len(test_row) == 1 and "USD 5" in test_row[0]
    assert "delivered to the test project: Purchase Completed" in demo.stdout


def test_the_table_says_what_was_ignored_and_rejected_and_why(demo: subprocess.CompletedProcess[str]) -> None:
    assert _row(demo.stdout, "stripe/customer.created") == [
        "stripe/customer.created",
        "customer.created",
        "event type not mapped",
    ]
    assert "400 signature verification failed" in demo.stdout


def test_every_sqs_sample_carries_a_provider_sample_as_the_receiver_queues_it() -> None:
    bodies = {(s.route, s.name): s.body for s in samples()}
    files = sorted((EVENTS_DIR / SQS_DIR).glob("*.json"))
    assert files
    for path in files:
        (record,) = json.loads(path.read_text())["Records"]
        attributes = {name: value["stringValue"] for name, value in record["messageAttributes"].items()}
        route = attributes["provider"]
        name = path.stem.removeprefix(f"{route}.")
        assert record["body"].encode() == bodies[(route, name)], path.name
        assert attributes["event_id"] and attributes["event_type"], path.name
        assert record["eventSource"] == "aws:sqs"


def test_make_event_writes_a_freshly_signed_api_gateway_event(tmp_path: Path) -> None:
    secret = "whsec_make_event_" + "d" * 24
    output = tmp_path / "event.json"
    done = subprocess.run(
        [sys.executable, "-m", "devstack.cli", "event", "--provider", "stripe", "--name", "checkout.session.completed"]
        + ["-o", str(output)],
        cwd=ROOT,
        env=_env(STRIPE_WEBHOOK_SECRET=secret),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    event = json.loads(output.read_text())
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/{provider}"
    assert event["pathParameters"] == {"provider": "stripe"}
    assert event["isBase64Encoded"] is False
    # Verifies with Stripe's own library, within its default 300 s tolerance: the signature is fresh.
    stripe.WebhookSignature.verify_header(event["body"], event["headers"]["stripe-signature"], secret, tolerance=300)


def test_make_event_without_a_secret_says_which_variable_to_set() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devstack.cli", "event", "--provider", "paddle", "--name", "transaction.completed"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "PADDLE_WEBHOOK_SECRET" in done.stderr
