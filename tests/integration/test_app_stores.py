"""App Store, Google Play and Stripe-through-EventBridge, end to end: the real handlers, moto over HTTP (SQS,
DynamoDB, Secrets Manager, EventBridge), the local Mixpanel, and the stores' stand-ins (devstack/stores).

Each mapped type reaches Mixpanel as its catalog event with exact revenue (JPY and KWD included), the user
joined from appAccountToken or obfuscatedExternalAccountId; redeliveries and reordering count once; forged
deliveries are refused before anything is queued; a Stripe event sent both by webhook and through
EventBridge is one event.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Pipeline

from devstack.eventbridge import LOCAL_SOURCE, StripeEventDestination
from devstack.stores import Stores
from devstack.stores.apple import Chain, local_config

ROOT = Path(__file__).parents[2]
AUDIENCE = "https://abcdef1234.execute-api.us-east-1.amazonaws.com/webhooks/googleplay"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, Stores, StripeEventDestination]]:
    stores = Stores(tmp_path_factory.mktemp("stores")).start(AUDIENCE)
    pipeline = Pipeline(
        parameters={"StripeEventSourceName": f"{LOCAL_SOURCE}{secrets.token_hex(3)}"},
        extra_env=stores.environment(),
        secret_values={
            "AppStoreConfig": local_config(),
            "GooglePlayPushConfig": stores.google.push_config(AUDIENCE),
            "GooglePlayCredentials": stores.google.credentials(),
        },
    )
    try:
        destination = StripeEventDestination(pipeline.template, pipeline.moto.endpoint, pipeline.resources).provision()
        yield pipeline, stores, destination
    finally:
        pipeline.close()
        stores.stop()


@pytest.fixture
def fresh(rig: tuple[Pipeline, Stores, StripeEventDestination]) -> tuple[Pipeline, Stores, StripeEventDestination]:
    pipeline, _, _ = rig
    pipeline.activate()
    pipeline.reset()
    return rig


def deliver(pipeline: Pipeline, stores: Stores, route: str, name: str) -> dict[str, Any]:
    body, headers = stores.deliver(route, (ROOT / "events" / route / f"{name}.json").read_bytes())
    response = pipeline.post(route, body, headers)
    assert response["statusCode"] == 200, response["body"]
    return json.loads(response["body"])


def revenue(pipeline: Pipeline, provider: str) -> Counter[tuple[str, str, str, Any]]:
    return Counter(
        (
            e["event"],
            e["properties"]["distinct_id"],
            e["properties"].get("Currency", ""),
            e["properties"].get("Revenue"),
        )
        for e in pipeline.mixpanel.events()
        if e["properties"]["Provider"] == provider and "Revenue" in e["properties"]
    )


APP_STORE = (
    "SUBSCRIBED.INITIAL_BUY",
    "DID_RENEW",
    "ONE_TIME_CHARGE.jpy",
    "ONE_TIME_CHARGE.kwd",
    "DID_CHANGE_RENEWAL_STATUS.AUTO_RENEW_DISABLED",
    "EXPIRED.VOLUNTARY",
    "REFUND",
)


def test_app_store_notifications_reach_mixpanel_as_catalog_events_with_exact_revenue(fresh: Any) -> None:
    pipeline, stores, _ = fresh
    for name in APP_STORE:
        assert deliver(pipeline, stores, "appstore", name)["status"] == "accepted", name
    assert deliver(pipeline, stores, "appstore", "TEST")["status"] == "ignored"
    assert pipeline.drain()
    subscriber, jpy_buyer, kwd_buyer = (
        "7e3fb20b-4cdb-47cc-936d-99d65f608138",
        "c1d2e3f4-0000-4000-8000-00000000a001",
        "c1d2e3f4-0000-4000-8000-00000000a002",
    )
    assert revenue(pipeline, "appstore") == Counter(
        {
            ("Purchase Completed", subscriber, "USD", 9.99): 2,
            ("Subscription Renewed", subscriber, "USD", 9.99): 1,
            ("Purchase Completed", jpy_buyer, "JPY", 1200): 1,
            ("Refund Issued", jpy_buyer, "JPY", 1200): 1,
            ("Purchase Completed", kwd_buyer, "KWD", 4.99): 1,
        }
    )
    names = Counter(e["event"] for e in pipeline.mixpanel.events() if e["properties"]["Provider"] == "appstore")
    assert names["Subscription Started"] == 1 and names["Subscription Cancellation Scheduled"] == 1
    assert names["Subscription Cancelled"] == 1
    profile = pipeline.mixpanel.profiles()[subscriber]
    assert profile["Purchase Count"] == 2 and profile["Lifetime Revenue USD"] == 19.98
    assert profile["Subscription Status"] == "canceled"
    assert pipeline.mixpanel.profiles()[jpy_buyer]["Lifetime Revenue JPY"] == 0
    assert pipeline.dead_letters() == [] and pipeline.limit_breaches() == []


def test_app_store_renewals_and_refunds_count_once_under_redelivery_and_reordering(fresh: Any) -> None:
    pipeline, stores, _ = fresh
    deliver(pipeline, stores, "appstore", "REFUND")  # the refund first: it names its own user
    assert pipeline.drain()
    for name in ("ONE_TIME_CHARGE.jpy", "DID_RENEW", "REFUND", "DID_RENEW", "ONE_TIME_CHARGE.jpy"):
        deliver(pipeline, stores, "appstore", name)  # Apple's retries carry the same notification
    assert pipeline.drain()
    counted = Counter(e["event"] for e in pipeline.mixpanel.events())
    assert counted == Counter({"Purchase Completed": 2, "Subscription Renewed": 1, "Refund Issued": 1})
    totals = pipeline.mixpanel.profiles()["c1d2e3f4-0000-4000-8000-00000000a001"]
    assert (totals["Purchase Count"], totals["Refund Count"], totals["Lifetime Revenue JPY"]) == (1, 1, 0)


def test_a_forged_app_store_notification_is_refused_and_nothing_queued(fresh: Any) -> None:
    pipeline, _, _ = fresh
    stranger = Chain.generate(name="Not Apple")
    notification = json.loads((ROOT / "events" / "appstore" / "DID_RENEW.json").read_bytes())
    response = pipeline.post("appstore", stranger.notification_body(notification), {"content-type": "application/json"})
    assert response["statusCode"] == 400 and pipeline.queue_depth() == 0


GOOGLE_PLAY = (
    "SUBSCRIPTION_PURCHASED",
    "ONE_TIME_PRODUCT_PURCHASED.jpy",
    "ONE_TIME_PRODUCT_PURCHASED.kwd",
    "SUBSCRIPTION_CANCELED",
)


def test_google_play_notifications_are_priced_by_the_api_and_reach_mixpanel(fresh: Any) -> None:
    pipeline, stores, _ = fresh
    for name in GOOGLE_PLAY:
        assert deliver(pipeline, stores, "googleplay", name)["status"] == "accepted", name
    assert deliver(pipeline, stores, "googleplay", "TEST_NOTIFICATION")["status"] == "ignored"
    assert pipeline.drain()
    deliver(pipeline, stores, "googleplay", "VOIDED_PURCHASE")
    deliver(pipeline, stores, "googleplay", "VOIDED_PURCHASE")  # Pub/Sub redelivers: same messageId
    assert pipeline.drain()
    assert revenue(pipeline, "googleplay") == Counter(
        {
            ("Purchase Completed", "user-7f3a", "USD", 10.69): 1,
            ("Purchase Completed", "user-jp-01", "JPY", 1200): 1,
            ("Refund Issued", "user-jp-01", "JPY", 1200): 1,
            ("Purchase Completed", "user-kw-01", "KWD", 1.25): 1,
        }
    )
    names = Counter(e["event"] for e in pipeline.mixpanel.events() if e["properties"]["Provider"] == "googleplay")
    assert names["Subscription Started"] == 1 and names["Subscription Cancellation Scheduled"] == 1
    assert pipeline.dead_letters() == [] and stores.google.spec_violations() == []


def test_a_play_api_outage_is_retried_and_counted_once(fresh: Any) -> None:
    pipeline, stores, _ = fresh
    stores.google.fail_next(3, 503)
    deliver(pipeline, stores, "googleplay", "ONE_TIME_PRODUCT_PURCHASED.kwd")
    assert pipeline.drain()
    assert revenue(pipeline, "googleplay") == Counter({("Purchase Completed", "user-kw-01", "KWD", 1.25): 1})
    assert pipeline.dead_letters() == []


def test_a_push_for_another_audience_is_refused_and_nothing_queued(fresh: Any) -> None:
    pipeline, stores, _ = fresh
    body = (ROOT / "events" / "googleplay" / "SUBSCRIPTION_PURCHASED.json").read_bytes()
    token = stores.google.push_token("https://someone-else.example/push")
    response = pipeline.post(
        "googleplay", body, {"content-type": "application/json", "authorization": f"Bearer {token}"}
    )
    assert response["statusCode"] == 400 and pipeline.queue_depth() == 0


def test_a_stripe_event_by_webhook_and_through_eventbridge_counts_once(fresh: Any) -> None:
    pipeline, _, destination = fresh
    body = (ROOT / "events" / "stripe" / "checkout.session.completed.json").read_bytes()
    assert pipeline.post_stripe(body)["statusCode"] == 200
    destination.send(json.loads(body))  # Stripe's EventBridge destination, through moto's rule and target
    assert pipeline.drain()
    destination.send(json.loads(body))  # EventBridge's own retry
    assert pipeline.drain()
    events = pipeline.mixpanel.events()
    assert [e["event"] for e in events] == ["Purchase Completed"]
    raw = pipeline.mixpanel.raw_events()
    assert len({e["properties"]["$insert_id"] for e in raw}) == 1  # every copy sent the same $insert_id
    customer = json.loads(body)["data"]["object"]["customer"]
    assert pipeline.customer_totals(f"stripe:{customer}")["purchases"] == 1
    assert pipeline.dead_letters() == []


def test_a_stripe_event_only_through_eventbridge_is_delivered_and_unmapped_types_never_leave_the_bus(
    fresh: Any,
) -> None:
    pipeline, _, destination = fresh
    invoice = json.loads((ROOT / "events" / "stripe" / "invoice.paid.json").read_bytes())
    destination.send(invoice)
    destination.send(json.loads((ROOT / "events" / "stripe" / "customer.created.json").read_bytes()))
    assert pipeline.drain()
    assert [e["event"] for e in pipeline.mixpanel.events()] == ["Purchase Completed"]
    assert pipeline.queue_depth() == 0 and pipeline.dead_letters() == []


def test_what_eventbridge_dead_lettered_is_redriven_into_the_pipeline(fresh: Any) -> None:
    """StripeEventsDeadLetterQueue holds EventBridge events; ops' redrive moves them to EventsQueue as they are."""
    from ops import redrive

    pipeline, _, _ = fresh
    invoice = json.loads((ROOT / "events" / "stripe" / "invoice.paid.json").read_bytes())
    event = {
        "version": "0",
        "id": "8f2c1e55-5b7a-4c77-9d7e-0c5d3f1a2b44",
        "detail-type": invoice["type"],
        "source": LOCAL_SOURCE,
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": invoice,
    }
    dead_letters = pipeline.resources.queue_url("StripeEventsDeadLetterQueue")
    pipeline.sqs.send_message(QueueUrl=dead_letters, MessageBody=json.dumps(event))
    tool = redrive.Redrive(pipeline.sqs, dead_letters, pipeline.queue_url, wait_seconds=0, empty_receives=2)
    assert tool.move(method="copy").moved == 1
    assert pipeline.drain()
    assert [e["event"] for e in pipeline.mixpanel.events()] == ["Purchase Completed"]


def apple_notification(kind: str, subtype: str | None, uuid: str) -> dict[str, Any]:
    """Apple's published sample notification, transaction and renewal info (tests/fixtures/appstore) as `kind`,
    for the local app and environment."""
    fixtures = ROOT / "tests" / "fixtures" / "appstore"
    payload = json.loads((fixtures / "signedNotification.json").read_text())
    app = {"bundleId": "com.example.revenuewebhooks", "environment": "Production"}
    payload.update(notificationType=kind, notificationUUID=uuid)
    payload.pop("subtype", None)
    if subtype:
        payload["subtype"] = subtype
    payload["data"].update(app, appAppleId=1234567890)
    payload["data"]["signedTransactionInfo"] = {**json.loads((fixtures / "signedTransaction.json").read_text()), **app}
    payload["data"]["signedRenewalInfo"] = {**json.loads((fixtures / "signedRenewalInfo.json").read_text()), **app}
    return payload


APPLE_TYPES = {
    ("SUBSCRIBED", "INITIAL_BUY"): {"Purchase Completed", "Subscription Started"},
    ("SUBSCRIBED", "RESUBSCRIBE"): {"Purchase Completed", "Subscription Started"},
    ("DID_RENEW", None): {"Purchase Completed", "Subscription Renewed"},
    ("DID_CHANGE_RENEWAL_PREF", "UPGRADE"): {"Purchase Completed", "Subscription Changed"},
    ("DID_CHANGE_RENEWAL_PREF", "DOWNGRADE"): {"Subscription Changed"},
    ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED"): {"Subscription Cancellation Scheduled"},
    ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED"): {"Subscription Reactivated"},
    ("EXPIRED", "VOLUNTARY"): {"Subscription Cancelled"},
    ("DID_FAIL_TO_RENEW", "GRACE_PERIOD"): {"Payment Failed"},
    ("GRACE_PERIOD_EXPIRED", None): {"Payment Failed"},
    ("REFUND", None): {"Refund Issued"},
    ("REVOKE", None): {"Subscription Cancelled"},
    ("ONE_TIME_CHARGE", None): {"Purchase Completed"},
    ("OFFER_REDEEMED", "INITIAL_BUY"): {"Purchase Completed", "Subscription Started"},
    ("PRICE_INCREASE", "ACCEPTED"): {"Subscription Changed"},
}


@pytest.mark.parametrize(("kind", "subtype"), list(APPLE_TYPES))
def test_each_mapped_app_store_type_reaches_mixpanel_as_its_catalog_events(
    fresh: Any, kind: str, subtype: str | None
) -> None:
    pipeline, stores, _ = fresh
    body = stores.apple.notification_body(
        apple_notification(kind, subtype, f"0a0b0c0d-0000-4000-8000-{len(kind):012d}")
    )
    assert (
        json.loads(pipeline.post("appstore", body, {"content-type": "application/json"})["body"])["status"]
        == "accepted"
    )
    assert pipeline.drain()
    assert {e["event"] for e in pipeline.mixpanel.events()} == APPLE_TYPES[(kind, subtype)]
    money = {
        (e["properties"].get("Currency"), e["properties"].get("Revenue"))
        for e in pipeline.mixpanel.events()
        if "Revenue" in e["properties"]
    }
    assert money <= {("USD", 10.99), ("USD", 9.99)}  # Apple's sample price 10990 and renewal price 9990 milli-USD
    assert {e["properties"]["distinct_id"] for e in pipeline.mixpanel.events()} == {
        "7e3fb20b-4cdb-47cc-936d-99d65f608138"
    }
    assert pipeline.dead_letters() == [] and pipeline.limit_breaches() == []


GOOGLE_TYPES = {
    1: {"Purchase Completed", "Subscription Renewed"},  # RECOVERED
    2: {"Purchase Completed", "Subscription Renewed"},  # RENEWED
    3: {"Subscription Cancellation Scheduled"},
    4: {"Purchase Completed", "Subscription Started"},
    5: {"Payment Failed"},  # ON_HOLD
    6: {"Payment Failed"},  # IN_GRACE_PERIOD
    7: {"Subscription Reactivated"},  # RESTARTED
    12: {"Subscription Cancelled"},  # REVOKED
    13: {"Subscription Cancelled"},  # EXPIRED
}


@pytest.mark.parametrize("code", list(GOOGLE_TYPES))
def test_each_mapped_google_play_type_reaches_mixpanel_as_its_catalog_events(fresh: Any, code: int) -> None:
    from revenue_webhooks.providers.googleplay import push_body

    pipeline, stores, _ = fresh
    token = "kelgmnbpfhlpkkfjcbacgcgo.AO-J1OxUjMZPfYEXAMPLEsubscriptiontoken01"
    notification = {
        "version": "1.0",
        "packageName": "com.example.revenuewebhooks",
        "eventTimeMillis": "1767225605000",
        "subscriptionNotification": {
            "version": "1.0",
            "notificationType": code,
            "purchaseToken": token,
            "subscriptionId": "pro_monthly",
        },
    }
    body = push_body(notification, f"1654321{code:07d}", "2026-01-01T00:00:06Z", "projects/p/subscriptions/s")
    body, headers = stores.deliver("googleplay", body)
    assert json.loads(pipeline.post("googleplay", body, headers)["body"])["status"] == "accepted"
    assert pipeline.drain()
    assert {e["event"] for e in pipeline.mixpanel.events()} == GOOGLE_TYPES[code]
    assert {e["properties"]["distinct_id"] for e in pipeline.mixpanel.events()} == {"user-7f3a"}
    assert pipeline.dead_letters() == [] and pipeline.limit_breaches() == []
