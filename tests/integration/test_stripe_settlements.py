"""Stripe's fee and settlement from its balance transactions, asked through the `stripe` library of the local
Stripe API (devstack/stripe_api), by the forwarder before rendering (on in-memory ledger and sink)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
from revenue_webhooks.adapters.stripe_settlements import StripeSettlements
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.amounts import Settlement, settled
from revenue_webhooks.domain.money import Money
from revenue_webhooks.service.settlements import Settlements

from devstack.stripe_api import Fault, StripeAccount, StripeApiServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "service"))
from test_forwarder import Rig, record

NOW = int(time.time())


@pytest.fixture
def account() -> StripeAccount:
    return StripeAccount(seed=5)


@pytest.fixture
def api(account: StripeAccount) -> Iterator[StripeApiServer]:
    with StripeApiServer(account, read_limits=None, validate_spec=True) as server:
        yield server
    assert server.spec_violations() == []


def lookup(api: StripeApiServer) -> StripeSettlements:
    client = stripe.StripeClient(api.secret_key, base_addresses={"api": api.url}, max_network_retries=0)  # type: ignore[arg-type]
    return StripeSettlements(lambda: client)


def test_a_checkout_payment_and_its_refund_state_stripes_fee_and_net(
    api: StripeApiServer, account: StripeAccount
) -> None:
    customer = account.customer(email="ada@example.com", at=NOW - 600, metadata={"user_id": "user-ada"})
    checkout = account.pay_checkout(
        4999, "usd", at=NOW - 300, customer=customer.object_id, metadata={"user_id": "user-ada"}
    )
    refund = account.refund(checkout.object["payment_intent"], 1999, at=NOW - 60)
    rig = Rig()
    rig.forwarder.enrichers = [Settlements("stripe", lookup(api))]
    assert rig.run(record(checkout.body()), record(refund.body())) == []
    events = {e["event"]: e["properties"] for e in rig.sink.imported}
    charge = account.render(account.render(checkout.object["payment_intent"])["latest_charge"])
    transaction = account.render(charge["balance_transaction"])
    purchase = events[c.PURCHASE_COMPLETED]
    assert purchase[c.FEE] == transaction["fee"] / 100  # Stripe's fee on 49.99 USD
    assert (purchase[c.SETTLEMENT_AMOUNT], purchase[c.SETTLEMENT_CURRENCY]) == (transaction["net"] / 100, "USD")
    refunded = events[c.REFUND_ISSUED]
    assert (refunded[c.REVENUE], refunded[c.FEE], refunded[c.SETTLEMENT_AMOUNT]) == (19.99, 0, 19.99)


def test_a_stripe_outage_delays_then_lets_the_payment_through_without_its_fee(
    api: StripeApiServer, account: StripeAccount
) -> None:
    checkout = account.pay_checkout(1500, "eur", at=NOW - 300)
    api.faults.push(*[Fault.server_error(500) for _ in range(5)])
    rig = Rig()
    rig.forwarder.enrichers = [Settlements("stripe", lookup(api))]
    assert rig.run(record(checkout.body())) == [f"msg-{checkout.id}"]
    assert rig.sink.imported == []
    assert rig.run(record(checkout.body(), attempts=5)) == []
    (event,) = rig.sink.imported
    assert event["properties"][c.REVENUE] == 15 and c.FEE not in event["properties"]


def test_a_settlement_in_another_currency_converts_at_stripes_own_rate() -> None:
    """A EUR charge settled in USD: the fee in EUR at Stripe's rate, the settled USD, and the conversion."""
    settlement = Settlement(Money(1750, "USD"), Money(81, "USD"), Money(1669, "USD"), "stripe_balance_transaction")
    amounts, conversion = settled(None, Money(1500, "EUR"), settlement)
    assert amounts.fee == Money(round(81 * 1500 / 1750), "EUR") and amounts.settlement == Money(1669, "USD")
    assert conversion is not None and (conversion.original, conversion.converted) == (
        Money(1500, "EUR"),
        Money(1750, "USD"),
    )


def test_unknown_objects_have_no_settlement(api: StripeApiServer) -> None:
    assert lookup(api).settlements(["pi_unknown000", "txn_unknown000", "sub_notapayment"]) == {}


def test_an_event_says_which_payment_to_ask_about(account: StripeAccount) -> None:
    from revenue_webhooks.config import Settings
    from revenue_webhooks.domain.webhook import QueuedEvent
    from revenue_webhooks.providers.stripe import StripeProvider

    checkout = account.pay_checkout(2500, "usd", at=NOW)
    (fact,) = StripeProvider(Settings()).map(QueuedEvent("stripe", checkout.id, checkout.type, 0, checkout.body()))
    assert fact.settlement_ref == checkout.object["payment_intent"]
    assert json.loads(checkout.body())["data"]["object"]["payment_intent"].startswith("pi_")
