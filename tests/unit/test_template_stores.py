"""template.yaml for the app stores and Stripe's EventBridge destination: what cfn-lint cannot know."""

from __future__ import annotations

from typing import Any

import pytest
from revenue_webhooks.providers.stripe import PRODUCES as STRIPE_TYPES

from devstack.template import Resolver, Template

EVENTBRIDGE = (
    "StripeEventBus",
    "StripeEventsRule",
    "StripeEventsDeadLetterQueue",
    "StripeEventsQueuePolicy",
    "StripeEventsDeadLetterAlarm",
)


def resolved(mode: str, logical_id: str, test_events_to: str = "test-project") -> Any:
    template = Template(
        parameters={
            "Mode": mode,
            "StripeEventSourceName": "aws.partner/stripe.com/ed_1",
            "TestEventsTo": test_events_to,
        }
    )
    attributes = {
        (name, attribute): f"{name}.{attribute}" for name in template.resources for attribute in ("Arn", "QueueName")
    }
    resolve = Resolver(template, {name: f"ref:{name}" for name in template.resources}, attributes, {})
    return resolve(template.properties(logical_id))


def test_the_eventbridge_resources_exist_only_when_stripes_event_source_is_named() -> None:
    template = Template()
    assert template.parameters["StripeEventSourceName"] == ""
    for logical_id in EVENTBRIDGE:
        assert template.resources[logical_id]["Condition"] == "HasStripeEventSource", logical_id
    resolve = Resolver(template, {}, {}, {})
    assert resolve(template.doc["Conditions"]["HasStripeEventSource"]) is False


def test_the_bus_is_the_partner_source_and_the_rule_routes_the_mapped_snapshot_events() -> None:
    bus = resolved("live", "StripeEventBus")
    assert bus == {"Name": "aws.partner/stripe.com/ed_1", "EventSourceName": "aws.partner/stripe.com/ed_1"}
    pattern = resolved("live", "StripeEventsRule")["EventPattern"]
    assert sorted(pattern["detail-type"]) == sorted(STRIPE_TYPES)
    assert pattern["source"] == [{"prefix": "aws.partner/stripe.com/"}]
    assert pattern["detail"]["object"] == ["event"]  # thin events are not routed


@pytest.mark.parametrize(
    ("mode", "test_events_to", "livemode"),
    [("live", "test-project", [True]), ("test", "test-project", [False]), ("any", "production", [True, False])],
)
def test_the_rule_forwards_only_the_deployments_mode(mode: str, test_events_to: str, livemode: list[bool]) -> None:
    assert resolved(mode, "StripeEventsRule", test_events_to)["EventPattern"]["detail"]["livemode"] == livemode


def test_with_a_test_lane_test_mode_events_go_to_the_test_queue_as_the_receivers_do() -> None:
    assert resolved("any", "StripeEventsRule")["EventPattern"]["detail"]["livemode"] == [True]
    test_rule = resolved("any", "StripeTestEventsRule")
    assert test_rule["EventPattern"]["detail"]["livemode"] == [False]
    assert sorted(test_rule["EventPattern"]["detail-type"]) == sorted(STRIPE_TYPES)
    (target,) = test_rule["Targets"]
    assert target["Arn"] == "EventsTestQueue.Arn" and target["DeadLetterConfig"] == {
        "Arn": "StripeEventsDeadLetterQueue.Arn"
    }
    (statement,) = resolved("any", "StripeEventsQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == ["StripeEventsRule.Arn", "StripeTestEventsRule.Arn"]
    template = Template(parameters={"Mode": "live", "StripeEventSourceName": "aws.partner/stripe.com/ed_1"})
    assert not template.condition_holds("StripeTestEventsRule")


def test_what_eventbridge_cannot_deliver_goes_to_a_dead_letter_queue_not_nowhere() -> None:
    (target,) = resolved("live", "StripeEventsRule")["Targets"]
    assert target["Arn"] == "EventsQueue.Arn"
    assert target["DeadLetterConfig"] == {"Arn": "StripeEventsDeadLetterQueue.Arn"}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}


def test_only_the_rule_may_send_to_the_queues() -> None:
    (statement,) = resolved("live", "StripeEventsQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": ["StripeEventsRule.Arn"]}}
    assert set(statement["Resource"]) == {"EventsQueue.Arn", "EventsTestQueue.Arn", "StripeEventsDeadLetterQueue.Arn"}


def test_the_forwarder_reads_the_play_developer_api_key_and_nothing_else_of_google() -> None:
    template = Template()
    forwarder = template.properties("ForwarderFunction")
    assert forwarder["Environment"]["Variables"]["GOOGLEPLAY_CREDENTIALS_ID"] == {"Ref": "GooglePlayCredentials"}
    readable = [
        p["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]
        for p in forwarder["Policies"]
        if "AWSSecretsManagerGetSecretValuePolicy" in p
    ]
    assert {"Ref": "GooglePlayCredentials"} in readable
    receiver = template.properties("ReceiverFunction")
    assert "GOOGLEPLAY_CREDENTIALS_ID" not in receiver["Environment"]["Variables"]  # the receiver never holds the key
