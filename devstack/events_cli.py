"""`make event PROVIDER=stripe NAME=checkout.session.completed`: a freshly signed event for `sam local invoke`.

A stored signature goes stale after five minutes (the receiver's tolerance), so API Gateway events
are made on demand from the provider payloads in `events/<provider>/`, signed now with the secret
the receiver verifies with: `--secret`, else a deployed stack's (`--stack NAME`, from Secrets
Manager), else STRIPE_WEBHOOK_SECRET, SHOPIFY_WEBHOOK_SECRET, ..., else the running local stack's
(`make dev`, found through .devstack/stack.json). `--sqs` writes the Lambda SQS event the forwarder
receives for the same webhook instead (the files in `events/sqs/` are made this way).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from revenue_webhooks.service.envelope import to_sqs

from ops import local_stack
from ops.arguments import secret_variable
from ops.deployed_stack import DeployedStack, StackLookupError
from ops.targets import UsageError

from .apigw import Route, http_api_event
from .aws import ACCOUNT, REGION
from .esm import sqs_record
from .samples import Sample, describe, find
from .stores import ROUTES as STORE_ROUTES
from .stores import Stores
from .template import ROOT, Resolver, Template

RECEIVER = "ReceiverFunction"
FORWARDER = "ForwarderFunction"
DEFAULT_STACK_NAME = "sam-app"  # `sam deploy`'s default: the name in an SQS event's queue ARN without --stack
DEFAULT_PORT = 3000  # make dev's (devstack/stack.py): the push audience a local Google Play token is for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", default="stripe", help="the route: stripe, shopify, paddle, ... (default stripe)")
    parser.add_argument(
        "--name", default="checkout.session.completed", help="a file in events/<provider>/ without .json, or a path"
    )
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.add_argument(
        "--secret",
        help="the signing secret (default: --stack's, else $<PROVIDER>_WEBHOOK_SECRET, else the running local stack's)",
    )
    parser.add_argument("--timestamp", type=int, help="sign as of this Unix time (default: now)")
    parser.add_argument("--sqs", action="store_true", help="the forwarder's SQS event for this webhook instead")
    parser.add_argument(
        "--stack",
        help="a deployed stack: sign with its secret (Secrets Manager); with --sqs only its name is used, "
        f"in the queue ARN (default {DEFAULT_STACK_NAME})",
    )


def run(args: argparse.Namespace) -> int:
    try:
        sample = find(args.provider, args.name)
        if args.sqs:
            document = sqs_event(sample, stack=args.stack or DEFAULT_STACK_NAME)
        elif sample.route in STORE_ROUTES:
            document = api_event(sample, "", timestamp=args.timestamp)
            print(_store_note(sample.route), file=sys.stderr)
        else:
            document = api_event(sample, signing_secret(args, sample.route, os.environ), timestamp=args.timestamp)
    except (LookupError, UsageError) as error:
        print(f"make event: {error}", file=sys.stderr)
        return 2
    text = json.dumps(document, indent=2) + "\n"
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def signing_secret(args: argparse.Namespace, route: str, environ: Mapping[str, str]) -> str:
    """--secret, else the deployed stack's (--stack), else $<ROUTE>_WEBHOOK_SECRET, else the running local stack's."""
    if args.secret:
        return str(args.secret)
    if args.stack:
        try:
            secret = DeployedStack(args.stack).signing_secret(route)
        except StackLookupError as error:
            raise UsageError(str(error)) from None
        print(f"make event: signed with stack {args.stack}'s {route} secret", file=sys.stderr)
        return secret
    given = environ.get(secret_variable(route), "").strip()
    if given:
        return given
    local, why_not = local_stack.find(environ)
    if local is not None and local.secrets.get(route):
        print(f"make event: signed with {local.describe()}'s {route} secret", file=sys.stderr)
        return local.secrets[route]
    if local is not None:
        why_not = f"the local stack serves {', '.join(local.routes)}, not {route}"
    raise UsageError(
        f"no signing secret for {route}: start the local stack with `make dev` (its secrets are then found), "
        f"set {secret_variable(route)}, or pass --secret or --stack NAME (make event ARGS='--stack NAME') ({why_not})"
    )


def api_event(sample: Sample, secret: str, *, timestamp: int | None = None, template: Template | None = None) -> dict:
    """The HTTP API (payload 2.0) event API Gateway would send for this delivery, signed now."""
    template = template or Template()
    method, path = template.http_routes(RECEIVER)[0]
    route = Route(method, path)
    raw_path = path.replace("{provider}", sample.route)
    body, signed = _delivered(sample, secret, timestamp)
    headers = {"content-type": "application/json", **signed}
    return http_api_event(
        route,
        method=method,
        raw_path=raw_path,
        raw_query="",
        headers=list(headers.items()),
        body=body,
        path_parameters={"provider": sample.route},
        source_ip="3.18.12.63",
        domain_name=f"abcdef1234.execute-api.{REGION}.amazonaws.com",
        now_ms=None if timestamp is None else timestamp * 1000,
    )


def sqs_event(sample: Sample, *, stack: str = DEFAULT_STACK_NAME, received_at_ms: int | None = None) -> dict[str, Any]:
    """The Lambda SQS event (one record) the forwarder receives once the receiver has queued this webhook."""
    from revenue_webhooks.config import from_environ
    from revenue_webhooks.domain.webhook import QueuedEvent

    template = Template()
    settings = from_environ({"STANDARD_WEBHOOKS_MAPPING": _sender_mapping(sample.route)})
    delivered, headers = _delivered(sample, None, None)
    event_type, event_id = describe(sample.route, delivered, headers, settings)
    if not event_type:
        raise SystemExit(f"make event: {sample.path} is not a {sample.route} webhook its provider can read")
    received = int(time.time() * 1000) if received_at_ms is None else received_at_ms
    queued = to_sqs(QueuedEvent(sample.route, event_id, event_type, received, delivered))
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


def _delivered(sample: Sample, secret: str | None, timestamp: int | None) -> tuple[bytes, dict[str, str]]:
    """The delivery's body and headers: signed with `secret` (None: a placeholder that verifies nothing), or,
    for the app stores, by the local stand-ins `make dev` keeps in .devstack/stores."""
    if sample.route in STORE_ROUTES:
        stores = Stores(_state_dir() / "stores")
        stores.audience = f"http://127.0.0.1:{os.environ.get('PORT') or DEFAULT_PORT}/webhooks/googleplay"
        body, headers = stores.deliver(sample.route, sample.body)
        return body, {"user-agent": sample.unverified_headers().get("user-agent", ""), **headers}
    return sample.body, sample.headers(secret, timestamp) if secret is not None else sample.unverified_headers()


def _state_dir() -> Path:
    state = os.environ.get("DEVSTACK_DIR", "").strip()
    return Path(state) if state else ROOT / ".devstack"


def _store_note(route: str) -> str:
    """What must trust a locally signed store delivery: the stand-ins `make dev` runs, not Apple or Google."""
    if route == "appstore":
        return (
            "make event: signed by the local App Store test chain (.devstack/stores/apple); a receiver verifies it only "
            "when APPSTORE_ROOT_CERTIFICATES names .devstack/stores/apple/root.der and AppStoreConfig names its app "
            "(as make dev sets them)"
        )
    return (
        "make event: a token of the local Google issuer (.devstack/stores/google), for audience "
        f"http://127.0.0.1:{os.environ.get('PORT') or DEFAULT_PORT}/webhooks/googleplay; it verifies against a receiver "
        "whose GOOGLE_OIDC_CERTS_URL is make dev's local issuer"
    )


def _sender_mapping(route: str) -> str:
    """A Standard Webhooks sender's route only parses when the mapping names it."""
    from .demo_sender import demo_sender_mapping

    mapping = demo_sender_mapping()
    return json.dumps(mapping) if route in mapping else "{}"
