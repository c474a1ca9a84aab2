"""Mixpanel event rendering, $insert_id validity, and the queue message format."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain.facts import Fact, Identity
from revenue_webhooks.domain.money import Money
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.mixpanel.rendering import insert_id, mixpanel_event, profile_update
from revenue_webhooks.service.envelope import _SQS_UNSAFE, dead_letter_attributes, from_record, sqs_accepts, to_sqs

INSERT_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")


def fact(key: str = "stripe:payment:pi_3Mtw_long_id", **changes: object) -> Fact:
    base = {
        "key": key,
        "event": "Purchase Completed",
        "time": 1_700_000_000,
        "identity": Identity(user_id="u-1", customer="cus_1"),
        "money": Money(1999, "usd"),
        "order_id": "pi_3Mtw",
    }
    return Fact(**{**base, **changes})  # type: ignore[arg-type]


@given(st.text(min_size=1, max_size=300))
def test_insert_id_is_always_valid_for_mixpanel(object_id: str) -> None:
    assert INSERT_ID.match(insert_id(fact(key=f"stripe:payment:{object_id}")))


def test_insert_id_differs_per_event_name_and_object() -> None:
    assert insert_id(fact()) != insert_id(fact(event="Refund Issued"))
    assert insert_id(fact()) != insert_id(fact(key="stripe:payment:other"))


def test_event_shape_in_simplified_id_merge() -> None:
    event = mixpanel_event(fact(), from_environ({}))
    props = event["properties"]
    assert event["event"] == "Purchase Completed"
    assert props["distinct_id"] == props["$user_id"] == "u-1"
    assert props["$device_id"] == "cus_1"
    assert props["Revenue"] == 19.99 and props["Currency"] == "USD"
    assert props["ip"] == "0" and props["time"] == 1_700_000_000


def test_customer_only_events_use_the_device_form_of_distinct_id() -> None:
    props = mixpanel_event(fact(identity=Identity(customer="cus_9")), from_environ({}))["properties"]
    assert props["distinct_id"] == "$device:cus_9" and "$user_id" not in props


def test_original_id_merge_sets_distinct_id_only() -> None:
    props = mixpanel_event(fact(identity=Identity(customer="cus_9")), from_environ({"MIXPANEL_ID_MERGE": "original"}))[
        "properties"
    ]
    assert props["distinct_id"] == "cus_9" and "$device_id" not in props


def test_buyer_ip_is_passed_through() -> None:
    assert mixpanel_event(fact(ip="203.0.113.7"), from_environ({}))["properties"]["ip"] == "203.0.113.7"


def test_names_are_configurable() -> None:
    settings = from_environ(
        {"EVENT_NAMES": '{"Purchase Completed": "Order Paid"}', "PROPERTY_NAMES": '{"Purchase Type": "kind"}'}
    )
    event = mixpanel_event(fact(properties={"Purchase Type": "one_time"}), settings)
    assert event["event"] == "Order Paid" and event["properties"]["kind"] == "one_time"


def test_rendering_is_byte_identical() -> None:
    settings = from_environ({})
    assert json.dumps(mixpanel_event(fact(), settings)) == json.dumps(mixpanel_event(fact(), settings))


def test_profile_update_sets_absolute_totals() -> None:
    totals = {
        "user_id": "u-1",
        "purchases": 3,
        "refunds": 1,
        "revenue": {"USD": 6999, "JPY": 1200},
        "status": "active",
        "plan": "Pro",
        "last_purchase_at": 1_700_000_000,
    }
    update = profile_update(totals, from_environ({"PROFILE_CURRENCY": "USD"}), "tok")
    assert update is not None
    assert update["$ip"] == "0" and update["$ignore_time"] is True and update["$token"] == "tok"
    assert update["$set"]["Lifetime Revenue USD"] == 69.99 and update["$set"]["Lifetime Revenue JPY"] == 1200
    assert update["$set"]["Lifetime Revenue"] == 69.99
    assert update["$set"]["Purchase Count"] == 3 and update["$set"]["Refund Count"] == 1
    assert "$email" not in update["$set"]


def test_no_profile_until_a_user_is_known() -> None:
    assert profile_update({"customer": "cus_1", "purchases": 1}, from_environ({}), "tok") is None


@pytest.mark.parametrize(
    "body", [b'{"a": "plain"}', b'{"a": "\\u0000 escaped"}', '{"a": "\uffff"}'.encode(), b"\xff\xfe not utf8"]
)
def test_envelope_round_trips_any_body(body: bytes) -> None:
    queued = QueuedEvent("stripe", "evt_1", "checkout.session.completed", 1_700_000_000_000, body)
    message = to_sqs(queued)
    record = {
        "body": message["MessageBody"],
        "messageAttributes": {
            k: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
            for k, v in message["MessageAttributes"].items()
        },
    }
    assert from_record(record) == queued


@given(st.one_of(st.text(alphabet=st.characters(max_codepoint=0x7F)), st.text()))
def test_the_ascii_shortcut_of_what_sqs_accepts_agrees_with_the_rule(text: str) -> None:
    assert sqs_accepts(text.encode(), text) is (_SQS_UNSAFE.search(text) is None)


def test_message_without_attributes_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks attributes"):
        from_record({"body": "{}", "messageAttributes": {}})


def test_dead_letter_attributes_fit_beside_the_receivers() -> None:
    queued = to_sqs(QueuedEvent("stripe", "e", "t", 1, b"\xff"))["MessageAttributes"]
    reason = dead_letter_attributes("mixpanel_rejected_event", "x" * 5000, "properties.time", 1, 5)
    assert len(queued) + len(reason) <= 10
    assert len(reason["dead_letter_detail"]["StringValue"]) <= 1000
