"""A varied, reproducible account history: the shape of the issue's 13-month story, at any size.

Customers paying in USD, EUR, JPY and KWD through Checkout and directly (PaymentIntents), guests without a
customer, monthly subscriptions with renewals and an upgrade, and refunds of payments made months before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .account import MONTH_S, StripeAccount

# Amounts in minor units that are valid in each currency (KWD: three decimals, last digit 0; JPY: none).
AMOUNTS = {"usd": (1900, 4900, 9900), "eur": (1500, 2900, 7900), "jpy": (1200, 3000, 9800), "kwd": (5120, 12500, 30000)}
PLANS = {"usd": (1500, 2500), "eur": (1200, 2200), "jpy": (1500, 3000), "kwd": (4000, 7500)}


@dataclass
class History:
    """What was written: ids by role, for tests that refund, outage or reconcile by hand."""

    customers: list[str] = field(default_factory=list)
    payments: list[str] = field(default_factory=list)  # PaymentIntent ids, oldest first
    subscriptions: list[str] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)


def write_history(
    account: StripeAccount,
    *,
    start: int,
    months: int = 13,
    customers: int = 6,
    payments_per_month: int = 4,
    seed: int = 1,
    direct_payments: bool = True,
) -> History:
    """Write `months` of activity from `start` (unix seconds) into `account`, the same for the same arguments.

    `direct_payments=False` makes the direct PaymentIntent payments Checkout payments of the same customers.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible story, not secrets
    history = History()
    currencies = list(AMOUNTS)
    owners: dict[str, str] = {}
    for index in range(customers):
        event = account.customer(
            at=start + index * 3600,
            email=f"buyer{index}@example.com",
            name=f"Buyer {index}",
            metadata={"user_id": f"user-{index}"},
        )
        history.customers.append(event.object_id)
        owners[event.object_id] = currencies[index % len(currencies)]
    subscribers = history.customers[: max(1, customers // 2)]
    plans = {
        c: (account.price(PLANS[c][0], c, nickname="Basic"), account.price(PLANS[c][1], c, nickname="Pro"))
        for c in currencies
    }
    for index, customer in enumerate(subscribers):
        basic, _ = plans[owners[customer]]
        event = account.subscribe(customer, basic, at=start + 86400 + index * 3600, checkout=index % 2 == 0)
        history.subscriptions.append(event.object_id)
    for month in range(months):
        base = start + month * MONTH_S + 2 * 86400
        for slot in range(payments_per_month):
            when = base + slot * 5 * 86400 + rng.randrange(3600)
            currency = rng.choice(currencies)
            amount = rng.choice(AMOUNTS[currency])
            kind = slot % 3
            if kind == 2 and not direct_payments:
                kind = 0
            if kind == 0:  # Checkout, a customer's
                buyer = rng.choice(history.customers)
                event = account.pay_checkout(
                    amount,
                    owners[buyer],
                    at=when,
                    customer=buyer,
                    client_reference_id=f"user-{history.customers.index(buyer)}",
                )
                history.payments.append(event.object["payment_intent"])
            elif kind == 1:  # a guest through Checkout
                event = account.pay_checkout(amount, currency, at=when, email=f"guest{month}-{slot}@example.com")
                history.payments.append(event.object["payment_intent"])
            else:  # a direct PaymentIntent (Payment Element)
                buyer = rng.choice(history.customers)
                event = account.pay_direct(amount, owners[buyer], at=when, customer=buyer)
                history.payments.append(event.object_id)
        if month:
            for subscription in history.subscriptions:
                account.renew(subscription, at=start + 86400 + month * MONTH_S)
        if month == months // 2 and history.subscriptions:
            subscription = history.subscriptions[0]
            customer = subscribers[0]
            account.upgrade(subscription, plans[owners[customer]][1], at=start + month * MONTH_S + 10 * 86400)
        if month >= 3:  # refund something paid about three months earlier, half of it or all
            old = history.payments[max(0, len(history.payments) - 3 * payments_per_month)]
            charge = account.store.get(account.store.get(old)["latest_charge"])  # type: ignore[index]
            left = charge["amount"] - charge["amount_refunded"] if charge else 0
            if left > 0:
                part = left if rng.random() < 0.5 else (left // 2) // 10 * 10 or left
                history.refunds.append(account.refund(old, part, at=base + 20 * 86400).object_id)
    return history
