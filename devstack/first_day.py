"""The demo's second half: a Stripe account's first day with the pipeline, as the README's "First day" tells it.

The local Stripe account (devstack/local_stripe.py) has 13 months of history. `revenue-webhooks backfill` brings
it into Mixpanel; the last month's webhooks arrive too, about the same payments, and each still counts once;
`revenue-webhooks reconcile` then shows Stripe, the ledger and Mixpanel agreeing, per currency and per object. The tools run as a user runs them (subprocesses with the stack's environment); the report goes on the
local Mixpanel's page too. The account's history ends the day before the sample webhooks of events/stripe
begin: those come from another account, and the reconciled period holds this one's payments only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import requests

from .local_stripe import reconcile_json, run_tool, tool_environment
from .samples import samples
from .stack import LocalStack
from .stripe_api import Event

OVERLAP_S = 30 * 86400
REQUEST_TIMEOUT_S = 15


def history_end() -> int:
    """The end of the day before the first Stripe sample webhook (events/stripe), in Unix seconds."""
    first = min(int(json.loads(sample.body)["created"]) for sample in samples("stripe"))
    return first - first % 86400 - 1


def direct_payments_mapped() -> bool:
    """Whether the pipeline counts direct PaymentIntent payments (`payment_intent.succeeded`)."""
    from revenue_webhooks.providers.stripe import PRODUCES

    return "payment_intent.succeeded" in PRODUCES


def run(stack: LocalStack, state: Path, wait: Callable[[str], None]) -> tuple[int, str]:
    """Backfill the history, let the last month's webhooks overlap it, reconcile; (reconcile's exit status, report)."""
    assert stack.stripe is not None and stack.stripe.account is not None and stack.api is not None
    account, environment = stack.stripe.account, tool_environment(stack)
    since, until = stack.stripe.period()
    stack.say(f"First day with a Stripe account: {stack.stripe.description()}")
    if not direct_payments_mapped():
        stack.say(
            "  (its payments are Checkout and invoice ones: this pipeline does not map payment_intent.succeeded yet)"
        )
    stack.say(f'$ make backfill ARGS="--since {since} --until {until}"')
    backfill = run_tool(
        "backfill", ["--since", since, "--until", until, "--state-dir", str(state / "backfill")], environment
    )
    for line in (backfill.stderr + backfill.stdout).strip().splitlines()[-2:]:
        stack.say(f"  {line}")
    if backfill.returncode != 0:
        raise RuntimeError(f"backfill exited {backfill.returncode}")
    wait("the backfilled history")
    _overlap(stack, account.events(since=stack.stripe.until - OVERLAP_S))
    wait("the last month's webhooks")
    stack.say(f'$ make reconcile ARGS="--since {since} --until {until}"')
    reconcile = run_tool("reconcile", ["--since", since, "--until", until], environment)
    if stack.mixpanel is not None:
        stack.mixpanel.show_reconcile(reconcile_json(since, until, environment))
    return reconcile.returncode, (reconcile.stdout + reconcile.stderr).strip()


def _overlap(stack: LocalStack, events: list[Event]) -> None:
    """The webhooks of the payments the backfill just read, as Stripe delivers them: each still counts once."""
    from revenue_webhooks.providers import sign
    from revenue_webhooks.providers.stripe import PRODUCES

    assert stack.api is not None
    mapped = [e for e in events if e.type in PRODUCES]
    stack.say(f"the last month's {len(mapped)} webhooks arrive too, about payments the backfill read: each counts once")
    secret = stack.webhook_secrets["stripe"]
    for event in mapped:
        body = event.body()
        headers = sign("stripe", body, secret)
        response = requests.post(
            f"{stack.api.url}/webhooks/stripe", data=body, headers=headers, timeout=REQUEST_TIMEOUT_S
        )
        if response.status_code != 200:
            raise RuntimeError(f"the receiver answered {response.status_code} to {event.type} {event.id}")
