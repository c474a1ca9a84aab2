"""The local stack's Stripe account, and the operator tools (backfill, reconcile) run against the stack.

Without STRIPE_API_BASE and STRIPE_API_KEY the stack serves the local Stripe API stand-in over a written
history (devstack/stripe_api: 13 months of customers paying in USD, EUR, JPY and KWD, subscriptions, refunds);
with both set, the tools read that API instead (a Stripe test-mode key, say). The tools run as a user runs
them, `python -m ops.cli <command>` in a subprocess, with the environment `tool_environment` gives them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revenue_webhooks.providers._stripe_objects import BACKFILL_EVENT_PREFIX

from .aws import REGION
from .stripe_api import History, StripeAccount, StripeApiServer, write_history
from .stripe_api.account import MONTH_S

STRIPE_ENV = ("STRIPE_API_BASE", "STRIPE_API_KEY")
PORT_ENV = "STRIPE_PORT"
DEFAULT_STRIPE_PORT = 3002
HISTORY_MONTHS = 13
ROOT = Path(__file__).resolve().parents[1]


class LocalStripe:
    """The Stripe API the stack's tools read: the stand-in (started here) or the one the environment names."""

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        port: int = DEFAULT_STRIPE_PORT,
        months: int = HISTORY_MONTHS,
        history_end: int | None = None,
        direct_payments: bool = True,
        seed: int = 1,
    ) -> None:
        given = {name: environ.get(name, "").strip() for name in STRIPE_ENV}
        if any(given.values()) and not all(given.values()):
            missing = [name for name, value in given.items() if not value]
            raise ValueError(f"a Stripe API for the tools needs both {' and '.join(STRIPE_ENV)}; missing {missing}")
        self.given = given if all(given.values()) else None
        self.port = port
        self.months = months
        self.history_end = history_end
        self.direct_payments = direct_payments
        self.seed = seed
        self.server: StripeApiServer | None = None
        self.account: StripeAccount | None = None
        self.history: History | None = None
        self.since = self.until = 0

    def start(self) -> LocalStripe:
        if self.given is not None:
            return self
        end = self.history_end or int(time.time())
        self.since, self.until = end - self.months * MONTH_S, end
        self.account = StripeAccount(seed=self.seed)
        self.history = write_history(
            self.account,
            start=self.since,
            months=self.months,
            customers=6,
            payments_per_month=4,
            seed=self.seed,
            direct_payments=self.direct_payments,
        )
        self.server = StripeApiServer(self.account, port=self.port).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def environment(self) -> dict[str, str]:
        if self.given is not None:
            return dict(self.given)
        assert self.server is not None, "the local Stripe API is not started"
        return self.server.environment()

    def description(self) -> str:
        if self.given is not None:
            return f"the API at {self.given['STRIPE_API_BASE']} (STRIPE_API_BASE, STRIPE_API_KEY)"
        assert self.server is not None and self.account is not None
        return (
            f"local stand-in at {self.server.url}, {self.months} months of test-mode history "
            f"({self.account.store.count()} objects, {_day(self.since)} to {_day(self.until)})"
        )

    def period(self) -> tuple[str, str]:
        """(--since, --until) of the whole history (the stand-in's), or of the last 30 days (a real API)."""
        if self.given is None:
            return _day(self.since), _day(self.until)
        now = int(time.time())
        return _day(now - 30 * 86400), _day(now)


@dataclass
class StripeOptions:
    """The local stack's Stripe account: the stand-in's port (None: STRIPE_PORT, else 3002), when its history
    ends (None: now) and whether it holds direct PaymentIntent payments."""

    port: int | None = None
    history_end: int | None = None
    direct_payments: bool = True


def start_for(options: Any, error: type[Exception]) -> LocalStripe:
    """The local stack's Stripe (its Options: environ and stripe); what goes wrong raises `error` saying what to change."""
    port = options.stripe.port
    if port is None:
        raw = str(options.environ.get(PORT_ENV, "")).strip()
        if raw and (not raw.isdigit() or not 0 <= int(raw) < 65536):
            raise error(f"{PORT_ENV}={raw!r}: expected a port number")
        port = int(raw) if raw else DEFAULT_STRIPE_PORT
    try:
        stripe = LocalStripe(
            options.environ,
            port=port,
            history_end=options.stripe.history_end,
            direct_payments=options.stripe.direct_payments,
        )
        return stripe.start()
    except ValueError as problem:
        raise error(str(problem)) from None
    except OSError as problem:
        raise error(f"port {port} is not free ({problem.strerror}): set {PORT_ENV} to another one") from None


def tool_environment(stack: Any) -> dict[str, str]:
    """What the operator tools need to act on a running LocalStack: AWS (moto), its queues and table, Stripe, Mixpanel."""
    assert stack.moto is not None and stack.stripe is not None
    credentials = stack._mixpanel_target()[0]  # the forwarder's MixpanelCredentials: the local project's or yours
    mixpanel = {
        "MIXPANEL_PROJECT_ID": credentials.get("project_id", ""),
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": credentials.get("service_account_username", ""),
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": credentials.get("service_account_secret", ""),
        "MIXPANEL_API_URL": stack.mixpanel.url if stack.mixpanel is not None else "",
    }
    if stack.mixpanel is not None:  # the local Mixpanel's test project: where the test lane sends
        from .mixpanel import DEMO_TEST_CREDENTIALS

        mixpanel.update(
            MIXPANEL_TEST_PROJECT_ID=DEMO_TEST_CREDENTIALS.project_id,
            MIXPANEL_TEST_SERVICE_ACCOUNT_USERNAME=DEMO_TEST_CREDENTIALS.username,
            MIXPANEL_TEST_SERVICE_ACCOUNT_SECRET=DEMO_TEST_CREDENTIALS.secret,
        )
    return {
        **stack.moto.environment(),
        "AWS_DEFAULT_REGION": REGION,
        "EVENTS_QUEUE_URL": stack.queue_url,
        "DEAD_LETTER_QUEUE_URL": stack.dead_letter_url,
        # Set only when test-mode webhooks have their own lane (Mode=any, TestEventsTo=test-project).
        "TEST_EVENTS_QUEUE_URL": stack.receiver_environment.get("TEST_EVENTS_QUEUE_URL", ""),
        "LEDGER_TABLE": stack.forwarder_environment["LEDGER_TABLE"],
        **stack.stripe.environment(),
        **{name: value for name, value in mixpanel.items() if value},
    }


def reconcile_report(stack: Any) -> dict[str, Any]:
    """`revenue-webhooks reconcile --json` over the stack's Stripe account's period (the page's button)."""
    since, until = stack.stripe.period()
    return reconcile_json(since, until, tool_environment(stack))


def banner_lines(stack: Any) -> list[str]:
    """The banner's lines for the tools: their environment, and the commands over the account's period."""
    if stack.stripe is None or stack.moto is None:
        return []
    since, until = stack.stripe.period()
    return [
        f"Stripe (for backfill and reconcile): {stack.stripe.description()}",
        "",
        "The operator tools against this stack (paste the first line into another shell):",
        "  export " + " ".join(f"{k}={v}" for k, v in sorted(tool_environment(stack).items())),
        f'  make backfill ARGS="--since {since}"',
        f'  make reconcile ARGS="--since {since} --until {until}"',
        "",
    ]


def say_delivered(stack: Any, event_id: str | None, names: list[str], line: str) -> None:
    """A delivered message's console line; the backfill's (thousands) are counted for one line per batch instead."""
    if str(event_id).startswith(BACKFILL_EVENT_PREFIX):
        stack.__dict__.setdefault("_backfilled", Counter()).update(names or ["nothing to count"])
    else:
        stack.say(line)


def say_backfilled(stack: Any) -> None:
    """The batch's backfilled messages in one line: their events by name."""
    delivered = stack.__dict__.pop("_backfilled", None)
    if delivered:
        shown = ", ".join(f"{count} {name}" for name, count in sorted(delivered.items()))
        stack.say(f"→ backfilled stripe objects delivered: {shown}")


def run_tool(
    command: str, args: list[str], environment: Mapping[str, str], *, timeout_s: float = 600
) -> subprocess.CompletedProcess[str]:
    """`python -m ops.cli <command> <args>` with the stack's tool environment, as a user runs it."""
    path = os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", command, *args],
        env={**os.environ, **environment, "PYTHONPATH": path},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def reconcile_json(since: str, until: str, environment: Mapping[str, str]) -> dict[str, Any]:
    """`revenue-webhooks reconcile --json` over the period: its report, or why there is none."""
    done = run_tool("reconcile", ["--since", since, "--until", until, "--json"], environment)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        return {"error": (done.stderr or done.stdout).strip()[-2000:] or f"exit status {done.returncode}"}
    report["exit_status"] = done.returncode
    return report


def _day(seconds: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))
