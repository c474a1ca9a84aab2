"""`make event PROVIDER=stripe NAME=checkout.session.completed`: a freshly signed event for `sam local invoke`.

A stored signature goes stale after five minutes (the receiver's tolerance), so API Gateway events
are made on demand from the provider payloads in `events/<provider>/`, signed now with the secret
the deployed (or `sam local`) receiver reads: STRIPE_WEBHOOK_SECRET, SHOPIFY_WEBHOOK_SECRET, ...
`--sqs` writes the Lambda SQS event the forwarder receives for the same webhook instead (the files
in `events/sqs/` are made this way).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from revenue_webhooks.service.envelope import to_sqs

from ops.arguments import secret_variable

from .apigw import Route, http_api_event
from .aws import ACCOUNT, REGION
from .esm import sqs_record
from .samples import Sample, describe, find
from .template import Resolver, Template

RECEIVER = "ReceiverFunction"
FORWARDER = "ForwarderFunction"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", default="stripe", help="the route: stripe, shopify, paddle, ... (default stripe)")
    parser.add_argument(
        "--name", default="checkout.session.completed", help="a file in events/<provider>/ without .json, or a path"
    )
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.add_argument("--secret", help="the signing secret (default: $<PROVIDER>_WEBHOOK_SECRET)")
    parser.add_argument("--timestamp", type=int, help="sign as of this Unix time (default: now)")
    parser.add_argument("--sqs", action="store_true", help="the forwarder's SQS event for this webhook instead")
    parser.add_argument("--stack", default="sam-app", help="stack name used in the SQS event's queue ARN")


def run(args: argparse.Namespace) -> int:
    try:
        sample = find(args.provider, args.name)
    except LookupError as error:
        print(f"make event: {error}", file=sys.stderr)
        return 2
    if args.sqs:
        document = sqs_event(sample, stack=args.stack)
    else:
        secret = args.secret or os.environ.get(secret_variable(sample.route), "").strip()
        if not secret:
            print(
                f"make event: set {secret_variable(sample.route)} to the signing secret the receiver verifies with "
                f"(the value stored in its Secrets Manager secret), or pass --secret",
                file=sys.stderr,
            )
            return 2
        document = api_event(sample, secret, timestamp=args.timestamp)
    text = json.dumps(document, indent=2) + "\n"
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def api_event(sample: Sample, secret: str, *, timestamp: int | None = None, template: Template | None = None) -> dict:
    """The HTTP API (payload 2.0) event API Gateway would send for this delivery, signed now."""
    template = template or Template()
    method, path = template.http_routes(RECEIVER)[0]
    route = Route(method, path)
    raw_path = path.replace("{provider}", sample.route)
    headers = {"content-type": "application/json", **sample.headers(secret, timestamp)}
    return http_api_event(
        route,
        method=method,
        raw_path=raw_path,
        raw_query="",
        headers=list(headers.items()),
        body=sample.body,
        path_parameters={"provider": sample.route},
        source_ip="3.18.12.63",
        domain_name=f"abcdef1234.execute-api.{REGION}.amazonaws.com",
        now_ms=None if timestamp is None else timestamp * 1000,
    )


def sqs_event(sample: Sample, *, stack: str = "sam-app", received_at_ms: int | None = None) -> dict[str, Any]:
    """The Lambda SQS event (one record) the forwarder receives once the receiver has queued this webhook."""
    from revenue_webhooks.config import from_environ
    from revenue_webhooks.domain.webhook import QueuedEvent

    template = Template()
    settings = from_environ({"STANDARD_WEBHOOKS_MAPPING": _sender_mapping(sample.route)})
    event_type, event_id = describe(sample.route, sample.body, sample.unverified_headers(), settings)
    if not event_type:
        raise SystemExit(f"make event: {sample.path} is not a {sample.route} webhook its provider can read")
    received = int(time.time() * 1000) if received_at_ms is None else received_at_ms
    queued = to_sqs(QueuedEvent(sample.route, event_id, event_type, received, sample.body))
    queue = template.sqs_event_source(FORWARDER, Resolver(template, {}, {}, {})).queue
    body = queued["MessageBody"]
    return {
        "Records": [
            sqs_record(
                message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sample.route}/{event_id}")),
                receipt_handle="AQEB" + hashlib.sha256(body.encode()).hexdigest(),
                body=body,
                message_attributes=queued["MessageAttributes"],
                attributes={
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(received),
                    "SenderId": f"AROAEXAMPLEID:{stack}-{RECEIVER}",
                    "ApproximateFirstReceiveTimestamp": str(received + 5),
                },
                queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{stack}-{queue}",
                region=REGION,
            )
        ]
    }


def _sender_mapping(route: str) -> str:
    """A Standard Webhooks sender's route only parses when the mapping names it."""
    from .demo_sender import demo_sender_mapping

    mapping = demo_sender_mapping()
    return json.dumps(mapping) if route in mapping else "{}"
