"""The event catalog: every Mixpanel event and property this project emits, in one place.

`docs/events.md` is generated from this module and the providers' `PRODUCES` tables
(`python -m revenue_webhooks.docs`); a test fails when the two drift apart.
Names are the defaults; operators rename them with EVENT_NAMES / PROPERTY_NAMES.
"""

from __future__ import annotations

from dataclasses import dataclass

# Events.
PURCHASE_COMPLETED = "Purchase Completed"
REFUND_ISSUED = "Refund Issued"
SUBSCRIPTION_STARTED = "Subscription Started"
SUBSCRIPTION_RENEWED = "Subscription Renewed"
SUBSCRIPTION_CHANGED = "Subscription Changed"
SUBSCRIPTION_CANCELLATION_SCHEDULED = "Subscription Cancellation Scheduled"
SUBSCRIPTION_REACTIVATED = "Subscription Reactivated"
SUBSCRIPTION_CANCELLED = "Subscription Cancelled"
TRIAL_ENDING = "Trial Ending"
PAYMENT_FAILED = "Payment Failed"
TRIAL_CONVERTED = "Trial Converted"

# Event properties.
REVENUE = "Revenue"
CURRENCY = "Currency"
ORDER_ID = "Order ID"
PROVIDER = "Provider"
PURCHASE_TYPE = "Purchase Type"
PLAN = "Plan"
PRICE = "Price"
INTERVAL = "Interval"
SUBSCRIPTION_ID = "Subscription ID"
QUANTITY = "Quantity"
FROM_PLAN = "From Plan"
TO_PLAN = "To Plan"
FROM_QUANTITY = "From Quantity"
TO_QUANTITY = "To Quantity"
REFUND_ID = "Refund ID"
REASON = "Reason"
ATTEMPT = "Attempt"
CANCEL_AT = "Cancel At"
TRIAL_END = "Trial End"
STATUS = "Status"
# App stores: where the buyer's store account is (App Store storefront, Google Play billing region).
STOREFRONT = "Storefront"

# Subscription economics (domain/mrr.py, amounts.py, fx.py).
MRR = "MRR"
MRR_CHANGE = "MRR Change"
MRR_MOVEMENT = "MRR Movement"
TAX = "Tax"
DISCOUNT = "Discount"
NET_REVENUE = "Net Revenue"
FEE = "Fee"
SETTLEMENT_AMOUNT = "Settlement Amount"
SETTLEMENT_CURRENCY = "Settlement Currency"
EXCHANGE_RATE = "Exchange Rate"
EXCHANGE_RATE_DATE = "Exchange Rate Date"
EXCHANGE_RATE_SOURCE = "Exchange Rate Source"
# Money properties also given in the reporting currency, named by REPORTING_PROPERTY_FORMAT ("Revenue (USD)").
CONVERTED = (REVENUE, TAX, DISCOUNT, NET_REVENUE, FEE, MRR, MRR_CHANGE)
DEFAULT_REPORTING_FORMAT = "{property} ({currency})"

# Purchase Type values.
ONE_TIME = "one_time"
SUBSCRIPTION_INITIAL = "subscription_initial"
SUBSCRIPTION_RENEWAL = "subscription_renewal"
SUBSCRIPTION_UPDATE = "subscription_update"
INVOICE = "invoice"

# Profile properties (sent to /engage as $set of absolute values).
LIFETIME_REVENUE = "Lifetime Revenue"
PURCHASE_COUNT = "Purchase Count"
REFUND_COUNT = "Refund Count"
SUBSCRIPTION_STATUS = "Subscription Status"
PROFILE_PLAN = "Plan"
LAST_PURCHASE_DATE = "Last Purchase Date"
PROFILE_MRR = "MRR"

# Company (group) profile properties, besides the profile ones above (sent to /groups as $set of absolute values).
SEATS = "Seats"
FIRST_PURCHASE_DATE = "First Purchase Date"

# Stripe Connect: on events of connected accounts, and the platform's application fee on their payments.
STRIPE_ACCOUNT = "Stripe Account"
PLATFORM_FEE = "Platform Fee"

# Properties every event has (set by the event builder, not by providers).
COMMON_PROPERTIES = {
    "distinct_id": "The user: `$user_id` when the app passed one, else `$device:<device id>` (see docs/identity.md).",
    "time": "Unix seconds from the provider's own data (event or object time), never the processing time.",
    "$insert_id": "UUIDv5 of the fact key and the event name: 36 characters of `[0-9a-f-]`.",
    "$user_id": "The app's user id, when the payment carried one (Simplified ID Merge).",
    "$device_id": "The browser's device id when passed, else the provider's customer id.",
    "ip": '"0" (no geolocation of the Lambda), or the buyer\'s IP when passed in metadata.',
    PROVIDER: (
        "The payment provider: stripe, shopify, paddle, lemonsqueezy, revenuecat, appstore, googleplay or a Standard"
        " Webhooks sender."
    ),
    STRIPE_ACCOUNT: "Stripe Connect: the connected account (`acct_...`) the event happened on; absent otherwise.",
}


@dataclass(frozen=True)
class CatalogEvent:
    name: str
    meaning: str
    insert_id_recipe: str
    properties: tuple[tuple[str, str], ...]


STOREFRONT_MEANING = "App stores: the App Store storefront (ISO 3166-1 alpha-3, `USA`) or the Google Play billing region (alpha-2, `US`)."

MONEY = (
    (REVENUE, "Amount in major units of `Currency` (exact: minor units / 10^exponent)."),
    (CURRENCY, "Upper-case ISO 4217 code of the currency charged."),
)

# What a payment or refund was made of, where the provider states it (docs/providers.md says where from).
GROSS_NET = (
    (TAX, "Tax in `Revenue`, in `Currency`, when the provider states it."),
    (DISCOUNT, "What discounts took off before the customer paid, in `Currency`, when stated."),
    (NET_REVENUE, "`Revenue` - `Tax`: only when the tax is stated."),
    (FEE, "The processor's fee, in `Currency`, when the provider reports it."),
    (SETTLEMENT_AMOUNT, "What reached the merchant after fees (and tax a merchant of record remits), when reported."),
    (SETTLEMENT_CURRENCY, "Currency of `Settlement Amount`."),
)

# A subscription's MRR after the event, from the payload alone (docs/events.md "MRR"; domain/mrr.py).
MRR_STATE = (
    (MRR, "The subscription's monthly recurring revenue after this event, in major units of `Currency`."),
    (MRR_CHANGE, "MRR after minus before, when the payload states both (0 when unchanged)."),
    (MRR_MOVEMENT, "New, Expansion, Contraction, Churn or Reactivation, when MRR moved."),
    (CURRENCY, "Currency of the subscription's MRR."),
)

# When REPORTING_CURRENCY is set, on every event with money or MRR.
REPORTING = (
    ("<property> (<REPORTING_CURRENCY>)", "Revenue, Tax, Discount, Net Revenue, Fee, MRR and MRR Change converted."),
    (EXCHANGE_RATE, "1 `Currency` = this many of the reporting currency (absent when no conversion was needed)."),
    (EXCHANGE_RATE_DATE, "The rate's day: the reference table's publication day, or the payment's day."),
    (EXCHANGE_RATE_SOURCE, "ecb, or the provider's own conversion (e.g. paddle_payout_totals)."),
)

EVENTS: tuple[CatalogEvent, ...] = (
    CatalogEvent(
        PURCHASE_COMPLETED,
        "Money collected: one per paid one-time order, per paid invoice above zero and per payment made on its own"
        " (a Stripe PaymentIntent paid without Checkout or an invoice). A payment announced several ways (a Checkout"
        " Session or an invoice, and the PaymentIntent that paid it) is one event, whichever arrives first.",
        "`<provider>:payment:<order, session, invoice or PaymentIntent id>`",
        MONEY
        + GROSS_NET
        + (
            (ORDER_ID, "The provider's order, Checkout session, invoice or PaymentIntent id."),
            (PURCHASE_TYPE, "one_time, subscription_initial, subscription_renewal, subscription_update or invoice."),
            (SUBSCRIPTION_ID, "For subscription payments."),
            (PLAN, "For subscription payments: the plan or product name or id."),
            (PRICE, "For subscription payments: the price id (Stripe: every invoice shape, basil's `pricing` too)."),
            (INTERVAL, "For subscription payments: day, week, month or year."),
            (
                PLATFORM_FEE,
                "Stripe Connect: the platform's application fee on the invoice, in major units of `Currency`.",
            ),
            (STOREFRONT, STOREFRONT_MEANING),
        ),
    ),
    CatalogEvent(
        REFUND_ISSUED,
        "One per refund, with that refund's own amount (never a cumulative total).",
        "`<provider>:refund:<refund id>`",
        MONEY
        + GROSS_NET
        + (
            (ORDER_ID, "The order or payment refunded."),
            (REFUND_ID, "The provider's refund id."),
            (REASON, "The refund reason when the provider gives one."),
            (STOREFRONT, STOREFRONT_MEANING),
        ),
    ),
    CatalogEvent(
        SUBSCRIPTION_STARTED,
        "A subscription became active or trialing (an incomplete one has not started).",
        "`<provider>:subscription-start:<subscription id>`",
        (
            (SUBSCRIPTION_ID, "The provider's subscription id."),
            (PLAN, "Plan or product name or id."),
            (PRICE, "Price id."),
            (INTERVAL, "Billing interval."),
            (QUANTITY, "Seats or units."),
            (STATUS, "active or trialing."),
            (TRIAL_END, "ISO 8601 end of the trial, when trialing."),
            (STOREFRONT, STOREFRONT_MEANING),
        )
        + MRR_STATE,
    ),
    CatalogEvent(
        TRIAL_CONVERTED,
        "A trial became paying: its MRR counts from here (MRR Movement New).",
        "`<provider>:trial-converted:<subscription id>`",
        ((SUBSCRIPTION_ID, "The subscription."), (PLAN, "Plan.")) + MRR_STATE,
    ),
    CatalogEvent(
        SUBSCRIPTION_RENEWED,
        "A paid renewal (cycle) of a subscription; the money is on its Purchase Completed.",
        "`<provider>:subscription-renewal:<invoice or transaction id>`",
        MONEY
        + ((SUBSCRIPTION_ID, "The subscription renewed."), (PLAN, "Plan."), (ORDER_ID, "The renewal's invoice."))
        + MRR_STATE[:3],
    ),
    CatalogEvent(
        SUBSCRIPTION_CHANGED,
        "Plan, quantity, price, discount or billing status changed (whatever moved the subscription's MRR).",
        "`<provider>:subscription-change:<subscription id>:<provider event id>`",
        (
            (SUBSCRIPTION_ID, "The subscription."),
            (FROM_PLAN, "Plan before."),
            (TO_PLAN, "Plan after."),
            (FROM_QUANTITY, "Quantity before."),
            (TO_QUANTITY, "Quantity after."),
            (STATUS, "The billing status after, when it changed."),
        )
        + MRR_STATE,
    ),
    CatalogEvent(
        SUBSCRIPTION_CANCELLATION_SCHEDULED,
        "The customer asked to cancel at period end (or at a date); access continues until then.",
        "`<provider>:subscription-cancel-scheduled:<subscription id>:<provider event id>`",
        (
            (SUBSCRIPTION_ID, "The subscription."),
            (CANCEL_AT, "ISO 8601 time the subscription will end."),
            (REASON, "Why, when the provider says (RevenueCat's cancel_reason)."),
        )
        + MRR_STATE,
    ),
    CatalogEvent(
        SUBSCRIPTION_REACTIVATED,
        "A scheduled cancellation was withdrawn.",
        "`<provider>:subscription-reactivated:<subscription id>:<provider event id>`",
        ((SUBSCRIPTION_ID, "The subscription."),) + MRR_STATE,
    ),
    CatalogEvent(
        SUBSCRIPTION_CANCELLED,
        "The subscription has ended.",
        "`<provider>:subscription-end:<subscription id>`",
        ((SUBSCRIPTION_ID, "The subscription."), (REASON, "Cancellation reason when given."), (PLAN, "Plan."))
        + MRR_STATE,
    ),
    CatalogEvent(
        TRIAL_ENDING,
        "A trial ends soon (Stripe: three days before).",
        "`<provider>:trial-ending:<subscription id>:<trial end>`",
        ((SUBSCRIPTION_ID, "The subscription."), (TRIAL_END, "ISO 8601 end of the trial.")) + MRR_STATE,
    ),
    CatalogEvent(
        PAYMENT_FAILED,
        "One per failed payment attempt.",
        "`<provider>:payment-failed:<invoice or payment id>:<attempt>`",
        MONEY
        + (
            (ORDER_ID, "The invoice or payment that failed."),
            (SUBSCRIPTION_ID, "For subscription invoices."),
            (ATTEMPT, "Attempt number when the provider counts them."),
            (REASON, "Decline or failure reason."),
        ),
    ),
)

PROFILE_PROPERTIES = (
    (LIFETIME_REVENUE, "Deprecated: net revenue in PROFILE_CURRENCY only, while PROFILE_CURRENCY is set (README)."),
    (f"{LIFETIME_REVENUE} <CUR>", "Net revenue per currency, e.g. `Lifetime Revenue USD`."),
    (PURCHASE_COUNT, "Number of Purchase Completed facts."),
    (REFUND_COUNT, "Number of Refund Issued facts."),
    (SUBSCRIPTION_STATUS, "Latest subscription status (newest event wins)."),
    (PROFILE_PLAN, "Latest plan (newest event wins)."),
    (LAST_PURCHASE_DATE, "ISO 8601 time of the newest purchase."),
    (f"{PROFILE_MRR} <CUR>", "MRR per currency: the latest state of each subscription, summed (e.g. `MRR USD`)."),
    (
        f"{LIFETIME_REVENUE} (<REPORTING_CURRENCY>)",
        "Net revenue converted into REPORTING_CURRENCY, each fact at its own rate; absent while one could not be.",
    ),
    (
        f"{PROFILE_MRR} (<REPORTING_CURRENCY>)",
        "MRR converted into REPORTING_CURRENCY (each subscription at the rate of its latest event); absent while one "
        "could not be.",
    ),
    ("$email", "Only when SEND_EMAIL=true (PII)."),
)

# Events of a payment that names a company carry it under the deployment's group key (GroupKey parameter).
GROUP_KEY_PROPERTY = (
    "<GROUP_KEY>",
    "With Group Analytics on (GROUP_KEY, e.g. `company_id`): the company id, from a company metadata key, else the "
    "customer or the Stripe Connect account when COMPANY_FALLBACK says so (docs/identity.md). Also set on user profiles.",
)

# Sent to /groups as $set: `$group_key` is GROUP_KEY, `$group_id` the company id.
GROUP_PROPERTIES = (
    (LIFETIME_REVENUE, "Deprecated: net revenue in PROFILE_CURRENCY only, while PROFILE_CURRENCY is set."),
    (f"{LIFETIME_REVENUE} <CUR>", "Net revenue per currency, e.g. `Lifetime Revenue USD`."),
    (PURCHASE_COUNT, "Number of Purchase Completed facts of the company."),
    (REFUND_COUNT, "Number of Refund Issued facts of the company."),
    (SUBSCRIPTION_STATUS, "Latest subscription status (newest event wins; same second: the larger fact key)."),
    (PROFILE_PLAN, "Latest plan (as above)."),
    (SEATS, "Latest subscription quantity, seats or units (as above; Stripe subscriptions carry it)."),
    (FIRST_PURCHASE_DATE, "ISO 8601 time of the company's first purchase."),
    (LAST_PURCHASE_DATE, "ISO 8601 time of the company's newest purchase."),
    (f"{PROFILE_MRR} <CUR>", "MRR per currency of the company's subscriptions (each one's latest state, summed)."),
    (
        f"{LIFETIME_REVENUE} (<REPORTING_CURRENCY>)",
        "Net revenue converted into REPORTING_CURRENCY, as on user profiles.",
    ),
    (f"{PROFILE_MRR} (<REPORTING_CURRENCY>)", "MRR converted into REPORTING_CURRENCY, as on user profiles."),
)

BY_NAME = {event.name: event for event in EVENTS}


def properties_of(event_name: str, reporting_currency: str = "", reporting_format: str = "") -> set[str]:
    """Every property an event may carry: its own and the common ones (and the converted ones, with a currency)."""
    own = {name for name, _ in BY_NAME[event_name].properties if not name.startswith("<")}
    if reporting_currency:
        fmt = reporting_format or DEFAULT_REPORTING_FORMAT
        own |= {reporting_name(name, reporting_currency, fmt) for name in CONVERTED if name in own}
        own |= {EXCHANGE_RATE, EXCHANGE_RATE_DATE, EXCHANGE_RATE_SOURCE}
    return own | set(COMMON_PROPERTIES)


def reporting_name(name: str, currency: str, reporting_format: str = DEFAULT_REPORTING_FORMAT) -> str:
    """A money property's name in the reporting currency: `Revenue (USD)` with the default format."""
    return reporting_format.format(property=name, currency=currency)
