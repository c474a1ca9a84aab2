"""Stripe Connect: events of connected accounts carry `Stripe Account`, an invoice's application fee is the
payment's `Platform Fee`, the account can be the company, and the platform's own fee events are not mapped.

Payloads: tests/fixtures/stripe-connect/SOURCES.md. The Connect payment events are assembled from real parts:
the real payment fixtures in the envelope of dj-stripe's real Connect event (its `account`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from revenue_webhooks import providers
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Fact
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.mixpanel.rendering import mixpanel_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SETTINGS = from_environ({"MODE": "any"})


def fixture(folder: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / folder / f"{name}.json").read_text())


REAL_CONNECT_EVENT = fixture("stripe-connect", "account.application.deauthorized")
ACCOUNT = REAL_CONNECT_EVENT["account"]  # acct_1Fg9jUA3kq9o1aTc
STRIPE_EXAMPLE_FEE = fixture("stripe-connect", "application_fee.fixtures3")["amount"]  # 100 (cents)


def on_connected_account(name: str, **object_fields: Any) -> dict[str, Any]:
    """A real payment fixture, as the Connect endpoint delivers it: the connected account's `account` on top."""
    event = fixture("stripe", name)
    event["account"] = ACCOUNT
    event["data"]["object"].update(object_fields)
    return event


def facts(event: dict[str, Any], settings: Any = SETTINGS) -> list[Fact]:
    queued = QueuedEvent("stripe", event["id"], event["type"], 1_700_000_000_000, json.dumps(event).encode())
    mapped = providers.get_provider("stripe", settings).map(queued)  # type: ignore[union-attr]
    return [f for f in mapped if isinstance(f, Fact)]


def test_a_connected_accounts_invoice_carries_the_account_and_the_platform_fee() -> None:
    (purchase,) = facts(on_connected_account("invoice.paid", application_fee_amount=STRIPE_EXAMPLE_FEE))
    properties = mixpanel_event(purchase, SETTINGS)["properties"]
    assert properties[c.STRIPE_ACCOUNT] == "acct_1Fg9jUA3kq9o1aTc"
    assert properties[c.PLATFORM_FEE] == 1  # 100 cents of USD
    assert properties[c.REVENUE] == 20 and properties[c.CURRENCY] == "USD"  # the customer paid the whole 2000


def test_a_connected_accounts_checkout_carries_the_account_and_no_fee_it_does_not_state() -> None:
    (purchase,) = facts(on_connected_account("checkout.session.completed.payment_mode"))
    properties = mixpanel_event(purchase, SETTINGS)["properties"]
    assert properties[c.STRIPE_ACCOUNT] == ACCOUNT
    assert c.PLATFORM_FEE not in properties  # a Checkout Session names no fee: it is on its PaymentIntent


def test_the_platforms_own_events_carry_no_account_and_no_fee() -> None:
    (purchase,) = facts(fixture("stripe", "invoice.paid"))
    properties = mixpanel_event(purchase, SETTINGS)["properties"]
    assert c.STRIPE_ACCOUNT not in properties and c.PLATFORM_FEE not in properties


def test_a_refund_on_a_connected_account_carries_the_account() -> None:
    refunds = facts(on_connected_account("charge.refunded"))
    assert refunds and all(f.properties[c.STRIPE_ACCOUNT] == ACCOUNT for f in refunds)


def test_the_connected_account_can_be_the_company() -> None:
    as_company = from_environ({"MODE": "any", "GROUP_KEY": "merchant_id", "COMPANY_FALLBACK": "account"})
    (purchase,) = facts(on_connected_account("invoice.paid"), as_company)
    assert purchase.identity.company == ACCOUNT
    assert mixpanel_event(purchase, as_company)["properties"]["merchant_id"] == ACCOUNT


def test_fee_events_and_deauthorization_are_acknowledged_not_mapped() -> None:
    stripe = providers.get_provider("stripe", SETTINGS)
    assert stripe is not None
    for name in ("application_fee.created", "application_fee.refunded", "account.application.deauthorized"):
        event = fixture("stripe-connect", name)
        assert not stripe.is_relevant(event["type"])  # the receiver answers 200 "event type not mapped"
        assert facts(event) == []
