"""What a provider event means, before it is a Mixpanel event: a business fact.

A provider module turns one webhook into zero or more facts. A fact has a stable
`key` naming the business object it is about (a payment, a refund, a subscription
start), so that every webhook describing the same thing, in any order and any number
of times, yields the same fact and therefore the same Mixpanel event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .amounts import Amounts
from .fx import Conversion, Rate
from .money import Money
from .mrr import MrrChange


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a fact is about, in Mixpanel's Simplified ID Merge terms.

    `user_id` is the app's own id (passed to the provider by the app at checkout),
    `device_id` an anonymous id (the browser's, or the provider's customer id),
    `customer` the provider's customer id, which keys the profile totals, and `company` the
    account the payment belongs to (Group Analytics: the group id under GROUP_KEY), which keys
    the company totals.
    """

    user_id: str | None = None
    device_id: str | None = None
    customer: str | None = None
    company: str | None = None

    @property
    def known(self) -> bool:
        return bool(self.user_id or self.device_id or self.customer)


@dataclass(frozen=True, slots=True)
class ProfileEffect:
    """How a fact changes the customer's profile totals in the ledger.

    Counters are applied once per fact (the ledger records the fact and the totals in
    one transaction); `status` and `plan` are states where the newest event wins.
    """

    purchases: int = 0
    refunds: int = 0
    revenue: Money | None = None
    status: str | None = None
    plan: str | None = None
    quantity: int | None = None  # seats or units of the subscription, newest event wins


@dataclass(frozen=True, slots=True)
class Fact:
    """One business fact, ready to become one Mixpanel event.

    `key` is `<provider>:<kind>:<object id>` and must be the same for every webhook
    describing this fact; `time` is in Unix seconds and must come from the provider's
    own data, never from the clock, so redeliveries produce byte-identical events.
    """

    key: str
    event: str
    time: int
    identity: Identity
    money: Money | None = None
    order_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    profile: ProfileEffect | None = None
    ip: str | None = None
    # The buyer's e-mail, for profiles only when SEND_EMAIL is on (PII; never an event property).
    email: str | None = None
    # Payment references this fact establishes (`payment_ref`: a purchase names what its
    # refunds will name) so later facts about the same payment find its user.
    links: tuple[str, ...] = ()
    # References whose recorded identity this fact must take (a refund takes the user
    # of the payment it refunds); unresolved references defer the fact.
    identity_from: tuple[str, ...] = ()
    # One payment, announced as several objects (a Checkout Session or an invoice, and the PaymentIntent that
    # paid it), is counted once whatever arrives first:
    # - `same_as`: keys of other facts that count this same money (a Checkout's or an invoice's purchase names
    #   its PaymentIntent's own fact); when one is recorded, this fact is that one.
    # - `yields_to`: payment references which, once a purchase of another key links them, make this fact
    #   that purchase's (a PaymentIntent's own fact yields to its Checkout or invoice): it then sends nothing.
    same_as: tuple[str, ...] = ()
    yields_to: tuple[str, ...] = ()
    # Subscription economics: the subscription's MRR after (and before) this event (domain/mrr.py); what a
    # payment or refund was made of (amounts.py); the provider's own conversions of `money` into other
    # currencies, and the reporting-currency rate the forwarder chose before rendering (fx.py).
    mrr: MrrChange | None = None
    amounts: Amounts | None = None
    conversions: tuple[Conversion, ...] = ()
    rate: Rate | None = None
    # A payment or refund the provider's API can state the settlement of (Stripe: a PaymentIntent, charge or
    # balance transaction id); the forwarder looks it up before rendering when an API key is configured.
    settlement_ref: str | None = None

    @property
    def provider(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def currency(self) -> str | None:
        """The currency of this fact's money (its payment's, else its subscription's MRR)."""
        if self.money is not None:
            return self.money.currency
        return self.mrr.after.currency if self.mrr is not None else None


PAYMENT_REF = ":payment-ref:"


def payment_ref(provider: str, payment_id: str) -> str:
    """The ledger key under which a purchase records who paid, for refunds that name only the payment."""
    return f"{provider}{PAYMENT_REF}{payment_id}"


def payment_id(ref: str) -> str | None:
    """The provider's payment id inside a `payment_ref`, None for any other reference."""
    _, found, payment = ref.partition(PAYMENT_REF)
    return payment if found and payment else None


@dataclass(frozen=True, slots=True)
class PaymentOwner:
    """A payment that belongs to a purchase counted under another fact (Stripe's `invoice_payment.paid`: this
    PaymentIntent paid that invoice), so the payment's own fact yields to it. It is recorded, never sent."""

    ref: str  # `payment_ref` of the payment
    fact_key: str  # the purchase it belongs to


@dataclass(frozen=True, slots=True)
class Deferred:
    """A fact that cannot be decided yet (it depends on another event not seen so far).

    The forwarder retries the message later; on the last attempt it dead-letters it
    with `reason`, so nothing is dropped silently.
    """

    reason: str
