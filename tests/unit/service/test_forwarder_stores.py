"""The forwarder with the app stores and Stripe's EventBridge destination, on in-memory fakes of its ports.

Google Play's mapping needs the Play Developer API first: the forwarder fetches what a batch needs in one
call of its `PurchaseLookups` port, retries a message through an outage, and dead-letters one whose purchase
the API does not know. A Stripe event that arrives from EventBridge is the same fact as its webhook.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fakes import ScriptedLookups
from revenue_webhooks.domain.lookups import Lookup, LookupFailed
from test_forwarder import Rig, checkout, record

ROOT = Path(__file__).resolve().parents[3]
PLAY = ROOT / "events" / "googleplay"
PACKAGE = "com.example.revenuewebhooks"


def play_documents() -> dict[Lookup, Any]:
    """What the Play Developer API answers for the samples, as the adapter returns it."""
    api = {
        kind: json.loads((PLAY / "play-api" / f"{kind}.json").read_text())
        for kind in ("subscriptions", "products", "orders")
    }
    found: dict[Lookup, Any] = {}
    for token, purchase in api["subscriptions"].items():
        order = api["orders"][purchase["lineItems"][0]["latestSuccessfulOrderId"]]
        found[Lookup("googleplay", "subscription", (PACKAGE, token))] = {"purchase": purchase, "order": order}
    for token, purchase in api["products"].items():
        order = api["orders"][purchase["orderId"]]
        found[Lookup("googleplay", "product", (PACKAGE, token))] = {"purchase": purchase, "order": order}
        found[Lookup("googleplay", "product", (PACKAGE, token, purchase["orderId"]))] = {
            "purchase": purchase,
            "order": order,
        }
    return found


def play_record(name: str, *, attempts: int = 1) -> dict[str, Any]:
    body = (PLAY / f"{name}.json").read_bytes()
    message = json.loads(body)["message"]
    queued = record(
        json.dumps({"id": message["messageId"], "type": name.split(".")[0]}).encode(),
        provider="googleplay",
        attempts=attempts,
    )
    queued["body"] = body.decode()  # the push body as queued; the attributes name its provider, id and type
    queued["messageId"] = f"msg-{name}-{attempts}"
    return queued


def test_a_batch_fetches_what_its_notifications_need_in_one_call_then_delivers() -> None:
    rig = Rig(lookups=ScriptedLookups(play_documents()))
    names = ("SUBSCRIPTION_PURCHASED", "ONE_TIME_PRODUCT_PURCHASED.jpy", "ONE_TIME_PRODUCT_PURCHASED.kwd")
    assert rig.run(*(play_record(name) for name in names)) == []
    assert rig.lookups is not None and len(rig.lookups.calls) == 1 and len(rig.lookups.calls[0]) == 3
    revenue = sorted(
        (e["properties"]["Currency"], e["properties"]["Revenue"])
        for e in rig.sink.imported
        if e["event"] == "Purchase Completed"
    )
    assert revenue == [("JPY", 1200), ("KWD", 1.25), ("USD", 10.69)]
    assert {e["properties"]["distinct_id"] for e in rig.sink.imported} == {"user-7f3a", "user-jp-01", "user-kw-01"}


def test_an_api_outage_retries_the_message_and_dead_letters_it_only_when_retries_run_out() -> None:
    lookups = ScriptedLookups(play_documents(), failure=LookupFailed("play_api_unavailable", "503 UNAVAILABLE"))
    rig = Rig(lookups=lookups)
    assert rig.run(play_record("SUBSCRIPTION_PURCHASED")) == ["msg-SUBSCRIPTION_PURCHASED-1"]
    assert rig.dead_letters.sent == [] and rig.sink.imported == []
    assert rig.run(play_record("SUBSCRIPTION_PURCHASED", attempts=5)) == []
    assert rig.dead_letters.reasons() == ["retries_exhausted:play_api_unavailable"]


def test_the_api_back_the_retry_is_delivered_once() -> None:
    lookups = ScriptedLookups(play_documents(), failure=LookupFailed("play_api_unavailable"))
    rig = Rig(lookups=lookups)
    rig.run(play_record("SUBSCRIPTION_PURCHASED"))
    lookups.failure = None
    assert rig.run(play_record("SUBSCRIPTION_PURCHASED", attempts=2)) == []
    assert rig.run(play_record("SUBSCRIPTION_PURCHASED", attempts=3)) == []  # a Pub/Sub redelivery
    assert len(rig.sink.delivered()) == 2 and rig.ledger.totals["googleplay:user-7f3a"]["purchases"] == 1


def test_a_purchase_the_api_does_not_know_is_dead_lettered_at_once() -> None:
    rig = Rig(
        lookups=ScriptedLookups(
            failure=LookupFailed("play_api_not_found", "404 The purchase token was not found.", transient=False)
        )
    )
    assert rig.run(play_record("SUBSCRIPTION_PURCHASED")) == []
    assert rig.dead_letters.reasons() == ["play_api_not_found"]


def test_without_the_api_configured_google_play_waits_and_others_flow() -> None:
    rig = Rig()
    stripe = record(checkout("s1", user_id="user-s1"))
    assert rig.run(play_record("SUBSCRIPTION_PURCHASED"), stripe) == ["msg-SUBSCRIPTION_PURCHASED-1"]
    assert [e["event"] for e in rig.sink.imported] == ["Purchase Completed"]


# ---- Stripe through EventBridge ------------------------------------------------------------------------


def eventbridge_record(stripe_event: bytes, message_id: str = "eb-1") -> dict[str, Any]:
    """What an SQS target of an EventBridge rule receives: the event itself as the body, no attributes."""
    detail = json.loads(stripe_event)
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail["type"],
        "source": "aws.partner/stripe.com/ed_61TestDestination",
        "account": "123456789012",
        "time": "2023-11-14T22:13:20Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    return {
        "messageId": message_id,
        "body": json.dumps(event),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
    }


def test_a_stripe_event_from_eventbridge_is_the_same_event_as_its_webhook() -> None:
    webhook, bridged = Rig(), Rig()
    body = checkout("eb", user_id="user-eb")
    webhook.run(record(body))
    bridged.run(eventbridge_record(body))
    assert webhook.sink.imported == bridged.sink.imported and len(bridged.sink.imported) == 1


def test_a_stripe_event_delivered_by_webhook_and_by_eventbridge_counts_once() -> None:
    rig = Rig()
    body = checkout("both", user_id="user-both")
    assert rig.run(record(body), eventbridge_record(body)) == []  # in one batch
    assert rig.run(eventbridge_record(body, "eb-2")) == []  # and again later
    assert len(rig.sink.delivered()) == 1
    assert rig.ledger.totals["stripe:cus_both"]["purchases"] == 1 and rig.ledger.writes == 1


def test_a_refund_before_its_purchase_and_redeliveries_count_each_once() -> None:
    rig = Rig(lookups=ScriptedLookups(play_documents()))
    assert rig.run(play_record("VOIDED_PURCHASE")) == []  # the refund first: the API names its buyer
    assert rig.run(play_record("ONE_TIME_PRODUCT_PURCHASED.jpy"), play_record("VOIDED_PURCHASE", attempts=2)) == []
    assert rig.run(play_record("ONE_TIME_PRODUCT_PURCHASED.jpy", attempts=2)) == []
    assert sorted(e["event"] for e in rig.sink.delivered().values()) == ["Purchase Completed", "Refund Issued"]
    totals = rig.ledger.totals["googleplay:user-jp-01"]
    assert (totals["purchases"], totals["refunds"], totals["revenue"]) == (1, 1, {"JPY": 0})
