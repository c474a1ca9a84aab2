"""Local AWS: moto's server mode on 127.0.0.1, with the template's queues, table and secrets.

Every resource is created from template.yaml (its properties, not a copy of them), so a
queue setting changed in the template changes the local stack with no other edit.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import boto3

from .template import Resolver, Template

REGION = "us-east-1"
ACCOUNT = "123456789012"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}

# SQS queue properties that are queue attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "MaximumMessageSize",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """moto in server mode, reached over HTTP by boto3 exactly as AWS would be."""

    def __init__(self, port: int = 0) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request drowns the stack's own
        _serialize_dynamodb()
        _partner_event_buses()
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._more: list[tuple[Any, threading.Thread]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self._server.start()
        return self

    def stop(self) -> None:
        for server, thread in self._more:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._more.clear()
        self._server.stop()

    def listen_also(self, sock: socket.socket) -> None:
        """Serve the same moto (its state is per process) on another listening socket: docker's bridge, devstack.bridge."""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import ThreadedWSGIServer

        host, port = sock.getsockname()[:2]
        try:  # werkzeug serves a duplicate of the descriptor
            server = ThreadedWSGIServer(
                host, port, DomainDispatcherApplication(create_backend_app), MotoRequestHandler, fd=sock.fileno()
            )
        finally:
            sock.close()
        thread = threading.Thread(target=server.serve_forever, name=f"moto:{host}:{port}", daemon=True)
        thread.start()
        self._more.append((server, thread))

    def environment(self) -> dict[str, str]:
        """What a process needs to reach this server with boto3."""
        return {"AWS_ENDPOINT_URL": self.endpoint, **LOCAL_CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"}

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_DYNAMODB_LOCK = threading.Lock()


def _serialize_dynamodb() -> None:
    """Make moto's DynamoDB isolate concurrent requests as DynamoDB does.

    moto's TransactWriteItems snapshots the whole table and restores the snapshot when a
    transaction is cancelled, which erases writes that other threads made in between; real
    DynamoDB never loses a committed write. Serving one DynamoDB request at a time makes the
    emulator faithful for the concurrent forwarders the tests and the local stack run.
    """
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "serialized", False):
        return

    def call_action(self: DynamoHandler) -> Any:
        with _DYNAMODB_LOCK:
            return original(self)

    call_action.serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def _partner_event_buses() -> None:
    """Make moto address partner event buses by name as EventBridge does.

    moto reads a bus name from the last `/`-separated part of `EventBusName`, which breaks every rule, target
    and PutEvents call on a partner bus (`aws.partner/stripe.com/ed_...`); EventBridge accepts the bus's
    full name or ARN. Resolved by name first, then by ARN, then moto's own way.
    """
    from moto.events.models import EventsBackend

    original = EventsBackend._normalize_event_bus_arn
    if getattr(original, "partner_buses", False):
        return

    def normalize(self: EventsBackend, event_bus_arn: str | None) -> str:
        if event_bus_arn and "event-bus/" in event_bus_arn:
            return event_bus_arn.split("event-bus/", 1)[1]
        if event_bus_arn and event_bus_arn in self.event_buses:
            return event_bus_arn
        return original(self, event_bus_arn)

    normalize.partner_buses = True  # type: ignore[attr-defined]
    EventsBackend._normalize_event_bus_arn = normalize  # type: ignore[method-assign]


@dataclass
class Resources:
    """Physical ids of the provisioned resources, and a resolver for the template's intrinsics."""

    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    secret_values: dict[str, str] = field(default_factory=dict)
    resolver: Resolver | None = None  # set by `provision`

    @property
    def resolve(self) -> Resolver:
        """The template's intrinsics resolved against these resources."""
        if self.resolver is None:
            raise RuntimeError("resources not provisioned yet")
        return self.resolver

    def queue_url(self, logical_id: str) -> str:
        return self.refs[logical_id]


def provision(
    template: Template,
    endpoint: str,
    *,
    stack: str = "local",
    secret_values: Mapping[str, str] | None = None,
    queue_overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> Resources:
    """Create the template's SQS queues, DynamoDB tables and secrets on `endpoint`."""
    session = boto3.session.Session(
        aws_access_key_id="local",
        aws_secret_access_key="local",
        region_name=REGION,
    )
    sqs = session.client("sqs", endpoint_url=endpoint)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint)
    resources = Resources()
    pseudo = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": stack,
        "AWS::URLSuffix": "amazonaws.com",
    }
    resources.resolver = Resolver(template, resources.refs, resources.attributes, pseudo)
    resolve = resources.resolver

    queues = {
        name: queue for name, queue in template.of_type("AWS::SQS::Queue").items() if template.condition_holds(name)
    }
    for logical_id in queues:  # create first: a redrive policy names another queue's ARN
        name = f"{stack}-{logical_id}"
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        resources.refs[logical_id] = url
        resources.attributes[(logical_id, "QueueName")] = name
        resources.attributes[(logical_id, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        resources.attributes[(logical_id, "QueueUrl")] = url
    for logical_id in queues:
        props = template.properties(logical_id)
        attributes = {
            key: str(resolve(props[key])).lower() if isinstance(props[key], bool) else str(resolve(props[key]))
            for key in _QUEUE_ATTRIBUTES
            if key in props
        }
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(resolve(props["RedrivePolicy"]))
        attributes.update((queue_overrides or {}).get(logical_id, {}))
        if attributes:
            sqs.set_queue_attributes(QueueUrl=resources.refs[logical_id], Attributes=cast(Any, attributes))

    for logical_id in template.of_type("AWS::DynamoDB::Table"):
        props = template.properties(logical_id)
        name = f"{stack}-{logical_id}"
        arguments: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("SSESpecification", {}).get("SSEEnabled"):
            arguments["SSESpecification"] = {"Enabled": True}
        dynamodb.create_table(**arguments)
        if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        resources.refs[logical_id] = name
        resources.attributes[(logical_id, "Arn")] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"

    for logical_id in template.of_type("AWS::SecretsManager::Secret"):
        props = template.properties(logical_id)
        value = (secret_values or {}).get(logical_id)
        if value is None:
            value = _initial_secret(props)
        arn = secretsmanager.create_secret(Name=f"{stack}-{logical_id}", SecretString=value)["ARN"]
        resources.refs[logical_id] = arn  # Ref of a secret is its ARN, as in CloudFormation
        resources.secret_values[logical_id] = value
    return resources


def _initial_secret(props: Mapping[str, Any]) -> str:
    """What CloudFormation would store: SecretString, or a generated value like GenerateSecretString's."""
    if "SecretString" in props:
        return str(props["SecretString"])
    generate = props.get("GenerateSecretString") or {}
    value = secrets.token_urlsafe(int(generate.get("PasswordLength", 32)))[: int(generate.get("PasswordLength", 32))]
    if "SecretStringTemplate" in generate:
        data = json.loads(generate["SecretStringTemplate"])
        data[generate["GenerateStringKey"]] = value
        return json.dumps(data)
    return value


def apply_environment(values: Mapping[str, str]) -> None:
    """Set variables for in-process handlers (they read the environment at cold start)."""
    os.environ.update(values)
