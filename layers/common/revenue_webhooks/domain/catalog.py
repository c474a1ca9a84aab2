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

EVENTS: tuple[CatalogEvent, ...] = (
    CatalogEvent(
        PURCHASE_COMPLETED,
        "Money collected: one per paid one-time order and one per paid invoice above zero.",
        "`<provider>:payment:<order, session or invoice id>`",
        MONEY
        + (
            (ORDER_ID, "The provider's order, Checkout session or invoice id."),
            (PURCHASE_TYPE, "one_time, subscription_initial, subscription_renewal, subscription_update or invoice."),
            (SUBSCRIPTION_ID, "For subscription payments."),
            (PLAN, "For subscription payments: the plan or product name or id."),
            (PRICE, "For subscription payments: the price id."),
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
        ),
    ),
    CatalogEvent(
        SUBSCRIPTION_RENEWED,
        "A paid renewal (cycle) of a subscription; the money is on its Purchase Completed.",
        "`<provider>:subscription-renewal:<invoice or transaction id>`",
        MONEY + ((SUBSCRIPTION_ID, "The subscription renewed."), (PLAN, "Plan."), (ORDER_ID, "The renewal's invoice.")),
    ),
    CatalogEvent(
        SUBSCRIPTION_CHANGED,
        "Plan or quantity changed.",
        "`<provider>:subscription-change:<subscription id>:<provider event id>`",
        (
            (SUBSCRIPTION_ID, "The subscription."),
            (FROM_PLAN, "Plan before."),
            (TO_PLAN, "Plan after."),
            (FROM_QUANTITY, "Quantity before."),
            (TO_QUANTITY, "Quantity after."),
        ),
    ),
    CatalogEvent(
        SUBSCRIPTION_CANCELLATION_SCHEDULED,
        "The customer asked to cancel at period end (or at a date); access continues until then.",
        "`<provider>:subscription-cancel-scheduled:<subscription id>:<provider event id>`",
        (
            (SUBSCRIPTION_ID, "The subscription."),
            (CANCEL_AT, "ISO 8601 time the subscription will end."),
            (REASON, "Why, when the provider says (RevenueCat's cancel_reason)."),
        ),
    ),
    CatalogEvent(
        SUBSCRIPTION_REACTIVATED,
        "A scheduled cancellation was withdrawn.",
        "`<provider>:subscription-reactivated:<subscription id>:<provider event id>`",
        ((SUBSCRIPTION_ID, "The subscription."),),
    ),
    CatalogEvent(
        SUBSCRIPTION_CANCELLED,
        "The subscription has ended.",
        "`<provider>:subscription-end:<subscription id>`",
        ((SUBSCRIPTION_ID, "The subscription."), (REASON, "Cancellation reason when given."), (PLAN, "Plan.")),
    ),
    CatalogEvent(
        TRIAL_ENDING,
        "A trial ends soon (Stripe: three days before).",
        "`<provider>:trial-ending:<subscription id>:<trial end>`",
        ((SUBSCRIPTION_ID, "The subscription."), (TRIAL_END, "ISO 8601 end of the trial.")),
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
    (LIFETIME_REVENUE, "Net revenue (purchases minus refunds) in PROFILE_CURRENCY, when set."),
    (f"{LIFETIME_REVENUE} <CUR>", "Net revenue per currency, e.g. `Lifetime Revenue USD`."),
    (PURCHASE_COUNT, "Number of Purchase Completed facts."),
    (REFUND_COUNT, "Number of Refund Issued facts."),
    (SUBSCRIPTION_STATUS, "Latest subscription status (newest event wins)."),
    (PROFILE_PLAN, "Latest plan (newest event wins)."),
    (LAST_PURCHASE_DATE, "ISO 8601 time of the newest purchase."),
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
    (LIFETIME_REVENUE, "Net revenue of every member's payments in PROFILE_CURRENCY, when set."),
    (f"{LIFETIME_REVENUE} <CUR>", "Net revenue per currency, e.g. `Lifetime Revenue USD`."),
    (PURCHASE_COUNT, "Number of Purchase Completed facts of the company."),
    (REFUND_COUNT, "Number of Refund Issued facts of the company."),
    (SUBSCRIPTION_STATUS, "Latest subscription status (newest event wins; same second: the larger fact key)."),
    (PROFILE_PLAN, "Latest plan (as above)."),
    (SEATS, "Latest subscription quantity, seats or units (as above; Stripe subscriptions carry it)."),
    (FIRST_PURCHASE_DATE, "ISO 8601 time of the company's first purchase."),
    (LAST_PURCHASE_DATE, "ISO 8601 time of the company's newest purchase."),
)

BY_NAME = {event.name: event for event in EVENTS}


def properties_of(event_name: str) -> set[str]:
    """Every property an event may carry: its own and the common ones."""
    return {name for name, _ in BY_NAME[event_name].properties} | set(COMMON_PROPERTIES)
