"""Stripe's Amazon EventBridge destination, locally: the template's partner bus, rule and target on moto.

When StripeEventSourceName is set, template.yaml associates Stripe's partner event source with a bus and
routes the mapped events into EventsQueue. Here moto plays both sides: `StripeEventDestination` creates the
partner event source as Stripe does when a destination is added in its dashboard, the template's bus, rule
(its event pattern resolved from the template) and target are created on moto's EventBridge, and
`send(event)` is Stripe putting one event on the bus. moto's own rule matching and SQS delivery carry it to
EventsQueue; nothing here writes to the queue.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from .aws import ACCOUNT, REGION, Resources
from .template import Template

LOCAL_SOURCE = "aws.partner/stripe.com/ed_61LocalDemoDestination"


class StripeEventDestination:
    """The template's Stripe EventBridge resources on moto, and Stripe's side of the partner event source."""

    def __init__(self, template: Template, endpoint: str, resources: Resources) -> None:
        session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)
        self.events = session.client("events", endpoint_url=endpoint)
        self.template = template
        self.resources = resources
        self.bus_arn = ""
        self.source = ""

    def provision(self) -> StripeEventDestination:
        """Create the partner source, then the template's buses, rules and targets, resolved like CloudFormation."""
        resolve = self.resources.resolve
        for logical_id in self.template.of_type("AWS::Events::EventBus"):
            if not self.template.condition_holds(logical_id):
                continue
            props = resolve(self.template.properties(logical_id))
            self.source = str(props["EventSourceName"])
            # What Stripe does when the destination is created: the source appears in this account.
            self.events.create_partner_event_source(Name=self.source, Account=ACCOUNT)
            self.bus_arn = self.events.create_event_bus(Name=props["Name"], EventSourceName=self.source)["EventBusArn"]
            self.resources.refs[logical_id] = str(props["Name"])
            self.resources.attributes[(logical_id, "Arn")] = self.bus_arn
        for logical_id in self.template.of_type("AWS::Events::Rule"):
            if not self.template.condition_holds(logical_id):
                continue
            props = resolve(self.template.properties(logical_id))
            arn = self.events.put_rule(
                Name=logical_id,
                EventBusName=props["EventBusName"],
                EventPattern=json.dumps(props["EventPattern"]),
                Description=props.get("Description", ""),
            )["RuleArn"]
            self.resources.attributes[(logical_id, "Arn")] = arn
            self.events.put_targets(Rule=logical_id, EventBusName=props["EventBusName"], Targets=props["Targets"])
        return self

    @property
    def configured(self) -> bool:
        return bool(self.bus_arn)

    def send(self, stripe_event: dict[str, Any]) -> str:
        """Stripe puts one event on the partner bus (its type as `detail-type`); returns EventBridge's event id."""
        answer = self.events.put_events(
            Entries=[
                {
                    "Source": self.source,
                    "DetailType": str(stripe_event.get("type", "")),
                    "Detail": json.dumps(stripe_event),
                    "EventBusName": self.bus_arn,
                }
            ]
        )
        entry = answer["Entries"][0]
        if answer.get("FailedEntryCount") or "EventId" not in entry:
            raise RuntimeError(f"PutEvents refused the Stripe event: {entry}")
        return str(entry["EventId"])
