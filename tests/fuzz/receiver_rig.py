"""The receiver under attack: its real handler, moto's SQS and Secrets Manager, and the properties it must keep.

Shared by the hypothesis suite (`test_receiver_fuzz.py`) and the atheris harness (`atheris_receiver.py`):
both build requests, call `ReceiverRig.invoke`, and let `ReceiverRig.check` judge the outcome against
the four promises of docs/reliability.md:

1. no input raises out of the handler;
2. no 5xx unless the queue is down;
3. nothing reaches the queue without a valid signature (judged by `oracle_valid`, an independent
   check written from the providers' documentation, not from our provider modules);
4. no secret, signature or whole body in a response or a log line, and every response is one of
   the receiver's fixed texts.

The only seam replaced is the receiver's queue (its `MessageQueue` port), by a queue that forwards to moto with the real
sender and records what was really enqueued (or, with `queue_down`, a sender to a closed port, so the
failure is a real one).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import logging
import re
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
for entry in (str(TESTS), str(ROOT), str(ROOT / "layers" / "common")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import boto3  # noqa: E402
from harness import SECRET_LOGICAL_IDS, SECRETS, documented_standard_webhooks_mapping, http_api_event  # noqa: E402
from revenue_webhooks import providers  # noqa: E402
from revenue_webhooks.adapters import aws as aws_clients  # noqa: E402
from revenue_webhooks.adapters.sqs import QueueSender  # noqa: E402

from devstack.aws import MotoServer, free_port, provision  # noqa: E402
from devstack.lambda_runtime import LambdaContext, load_handler  # noqa: E402
from devstack.template import Template  # noqa: E402

FIXTURES = TESTS / "fixtures"

STANDARD_SENDER = "acme"  # the Standard Webhooks sender of docs/providers.md's worked example
# Where each provider puts its signature: these values must never appear in a log line.
SIGNATURE_HEADERS = (
    "stripe-signature",
    "x-shopify-hmac-sha256",
    "paddle-signature",
    "x-signature",
    "authorization",
    "webhook-signature",
    "svix-signature",
)
ROUTES = ("stripe", "shopify", "paddle", "lemonsqueezy", "revenuecat", STANDARD_SENDER)
SHOPIFY_TOPICS = {
    "rest_fixture_order.json": "orders/paid",
    "rest_fixture_refund.json": "refunds/create",
    "docs_subscription_contracts_create.json": "subscription_contracts/create",
    "docs_subscription_billing_attempts_failure.json": "subscription_billing_attempts/failure",
}
# Every text the receiver may answer with; anything else would be reflected input.
ALLOWED_BODIES = frozenset(
    json.dumps(body)
    for body in (
        {"status": "accepted"},
        {"status": "ignored", "reason": "event type not mapped"},
        {"status": "ignored", "reason": "live event in a any deployment"},
        {"status": "ignored", "reason": "test event in a any deployment"},
        {"error": "unknown provider"},
        {"error": "temporarily unavailable"},
        {"error": "body too large"},
        {"error": "body is not valid base64"},
        {"error": "bad request"},
        {"error": "signature verification failed"},
        {"error": "webhook timestamp outside the accepted window"},
        {"error": "body is not a JSON webhook event"},
    )
)
PROVIDER_BUG = "provider code failed on a request"
TOLERANCE_S = 300
FUTURE_SKEW_S = 60
SHOPIFY_MAX_AGE_S = 86_400


def seed_bodies() -> dict[str, list[tuple[bytes, dict[str, str]]]]:
    """Real provider payloads from tests/fixtures (with the signing options each needs), per route."""
    seeds: dict[str, list[tuple[bytes, dict[str, str]]]] = {route: [] for route in ROUTES}
    for route in ("stripe", "paddle", "lemonsqueezy", "revenuecat"):
        for path in sorted((FIXTURES / route).glob("*.json")):
            seeds[route].append((path.read_bytes(), {}))
    for name, topic in SHOPIFY_TOPICS.items():
        seeds["shopify"].append(((FIXTURES / "shopify" / name).read_bytes(), {"topic": topic}))
    payment = {
        "type": "payment.succeeded",
        "timestamp": "2022-11-03T20:26:10.344522Z",
        "data": {"id": "pay_fuzz", "amount": 1999, "currency": "usd", "customer": {"id": "cus_1", "external_id": "u1"}},
    }
    seeds[STANDARD_SENDER].append((json.dumps(payment).encode(), {}))
    return seeds


def sign(route: str, body: bytes, timestamp: int | None = None, secret: str | None = None, **options: str) -> dict:
    return providers.sign(route, body, secret or SECRETS[route], timestamp, **options)


def api_event(route: str, body: bytes, headers: dict[str, str], *, base64_body: bool = False) -> dict:
    """A payload-2.0 event as API Gateway's HTTP API builds it (base64 for a body that is not UTF-8)."""
    return http_api_event(f"/webhooks/{route}", body, headers, base64_body=base64_body or not _is_utf8(body))


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---- the oracle -------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d{1,20}")
_SIGNATURE_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


def oracle_valid(route: str, body: bytes, headers: dict[str, str], received_ms: int) -> bool:
    """Whether someone holding the route's secret signed exactly `body` at a time inside the window.

    Existential on purpose: for every timestamp-looking token in the request's headers, compute what the
    provider's documented scheme signs with the real secret, and look for it in the headers. A request the
    receiver accepts must pass this; no one without the secret can make it pass.
    """
    h = {str(k).lower(): str(v) for k, v in headers.items()}
    secret = SECRETS.get(route)
    if secret is None:
        return False
    received_s = received_ms / 1000
    now_s = time.time()

    def in_window(ts: int, past_s: int, future_s: int) -> bool:
        return min(received_s, now_s) - past_s - 2 <= ts <= received_s + future_s + 1

    def tokens(value: str) -> set[str]:
        return set(_NUMBER.findall(value))

    if route == "stripe":
        header = h.get("stripe-signature", "")
        for token in tokens(header):
            ts = int(token)
            expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
            if expected in header and in_window(ts, TOLERANCE_S, FUTURE_SKEW_S):
                return True
        return False
    if route == "shopify":
        expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        if expected not in h.get("x-shopify-hmac-sha256", ""):
            return False
        triggered = h.get("x-shopify-triggered-at", "")
        try:
            from datetime import UTC, datetime

            moment = datetime.fromisoformat(triggered.strip())
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            return in_window(int(moment.timestamp()), SHOPIFY_MAX_AGE_S, FUTURE_SKEW_S)
        except ValueError:
            return False
    if route == "paddle":
        header = h.get("paddle-signature", "")
        for token in tokens(header):
            expected = hmac.new(secret.encode(), token.encode() + b":" + body, hashlib.sha256).hexdigest()
            if expected in header.lower() and in_window(int(token), TOLERANCE_S, FUTURE_SKEW_S):
                return True
        return False
    if route == "lemonsqueezy":
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return expected in h.get("x-signature", "").lower()
    if route == "revenuecat":
        return h.get("authorization", "").strip() == secret
    if route == STANDARD_SENDER:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        for prefix in ("webhook-", "svix-"):
            signature_header = h.get(prefix + "signature", "")
            msg_id = h.get(prefix + "id", "").strip()
            for token in tokens(h.get(prefix + "timestamp", "")):
                for stamp in {token, str(int(token))}:
                    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
                    if base64.b64encode(digest).decode() in signature_header and in_window(
                        int(token), TOLERANCE_S, TOLERANCE_S
                    ):
                        return True
        return False
    return False


# ---- the rig ----------------------------------------------------------------------------------


class RecordingQueue:
    """Stands in for the receiver's queue: sends to moto (or to a closed port while `down`) and keeps what arrived."""

    def __init__(self, client: Any, dead_client: Any) -> None:
        self.client = client
        self.dead_client = dead_client
        self.down = False
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **arguments: Any) -> dict[str, Any]:
        response = (self.dead_client if self.down else self.client).send_message(**arguments)
        self.sent.append(arguments)
        return response


@dataclass
class Outcome:
    route: str
    body: bytes
    headers: dict[str, str]
    received_ms: int
    queue_down: bool
    response: dict[str, Any] | None = None
    error: BaseException | None = None
    enqueued: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""


@dataclass
class Stats:
    """What a run tried and what the receiver answered, for docs/reliability.md."""

    inputs: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    enqueued: int = 0
    signed_valid: int = 0
    queue_down: int = 0

    def line(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        return (
            f"inputs {self.inputs}; statuses {{{statuses}}}; enqueued {self.enqueued} "
            f"(all with a valid signature); validly signed inputs {self.signed_valid}; "
            f"inputs with the queue down {self.queue_down}"
        )


class ReceiverRig:
    def __init__(self, *, debug_payloads: bool = False) -> None:
        self.template = Template(
            parameters={"Mode": "any", "StandardWebhooksMapping": documented_standard_webhooks_mapping()}
        )
        self.moto = MotoServer().start()
        try:
            values = {SECRET_LOGICAL_IDS[route]: SECRETS[route] for route in SECRET_LOGICAL_IDS}
            values["StandardWebhooksSecrets"] = json.dumps({STANDARD_SENDER: SECRETS[STANDARD_SENDER]})
            values["MixpanelCredentials"] = json.dumps({"project_token": "fuzz-token"})
            resources = provision(self.template, self.moto.endpoint, stack="fuzz", secret_values=values)
            environment = {
                **self.template.function_environment("ReceiverFunction", resources.resolver),
                **self.moto.environment(),
                "DEBUG_PAYLOADS": "true" if debug_payloads else "false",
            }
            self.handler = load_handler(self.template, "ReceiverFunction", environment)
            from revenue_webhooks import bootstrap

            session = boto3.session.Session("local", "local", region_name="us-east-1")
            client = QueueSender(
                session.client("sqs", endpoint_url=self.moto.endpoint, config=aws_clients.config("sqs"))
            )
            # A closed port and one attempt: the fuzz loop sees the queue's outage without waiting for retries.
            dead = QueueSender(
                session.client(
                    "sqs",
                    endpoint_url=f"http://127.0.0.1:{free_port()}",
                    config=aws_clients.config("sqs", {"max_attempts": 1}),
                )
            )
            self.queue = RecordingQueue(client, dead)
            bootstrap.receiver().queue = self.queue  # the loaded handler's receiver, built at its init
            self.stats = Stats()
            self.secret_texts = [s for s in SECRETS.values()] + [SECRETS[STANDARD_SENDER].removeprefix("whsec_")]
        except BaseException:
            self.moto.stop()
            raise

    def close(self) -> None:
        self.moto.stop()

    def __enter__(self) -> ReceiverRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one input ----------------------------------------------------------------------

    def invoke(self, event: Any, *, queue_down: bool = False) -> Outcome:
        """Call the handler with any event; never raises (a raised error is part of the outcome)."""
        headers = event.get("headers") if isinstance(event, dict) else None
        headers = {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}
        route = _route_of(event)
        body = _body_of(event)
        context = event.get("requestContext") if isinstance(event, dict) else None
        epoch = context.get("timeEpoch") if isinstance(context, dict) else None
        received_ms = (
            epoch
            if isinstance(epoch, int) and not isinstance(epoch, bool) and 10**12 <= epoch < 10**13
            else int(time.time() * 1000)
        )
        outcome = Outcome(route, body, headers, received_ms, queue_down)
        self.queue.down = queue_down
        before = len(self.queue.sent)
        with _captured_output() as buffer:
            try:
                outcome.response = self.handler(event, LambdaContext("ReceiverFunction", 10))
            except Exception as error:  # the property under test: recorded, then failed in `check`
                outcome.error = error
        self.queue.down = False
        outcome.enqueued = self.queue.sent[before:]
        outcome.log = buffer.getvalue()
        return outcome

    def check(self, outcome: Outcome) -> None:
        """Assert the four properties; raise AssertionError naming the one broken."""
        self.stats.inputs += 1
        self.stats.queue_down += outcome.queue_down
        assert outcome.error is None, f"handler raised {type(outcome.error).__name__}: {outcome.error!r}"
        response = outcome.response
        assert isinstance(response, dict), f"handler returned {type(response).__name__}"
        status = response["statusCode"]
        self.stats.statuses[status] += 1
        assert status < 500 or outcome.queue_down, f"{status} with the queue up: {response['body']}"
        assert response["body"] in ALLOWED_BODIES, f"unexpected response text {response['body']!r}"
        valid = oracle_valid(outcome.route, outcome.body, outcome.headers, outcome.received_ms)
        self.stats.signed_valid += valid
        if outcome.enqueued:
            assert len(outcome.enqueued) == 1, "one webhook, one message"
            assert valid, f"enqueued a {outcome.route} webhook without a valid signature: {outcome.headers}"
            assert status == 200 and json.loads(response["body"]) == {"status": "accepted"}
            self.stats.enqueued += 1
        else:
            assert json.loads(response["body"]) != {"status": "accepted"}, "accepted but nothing enqueued"
        for text in (response["body"], *response["headers"].values(), outcome.log):
            _assert_no_secret(text, self.secret_texts, outcome)
        assert PROVIDER_BUG not in outcome.log, f"a provider raised on this input: {outcome.log[-2000:]}"


def _assert_no_secret(text: str, secrets: list[str], outcome: Outcome) -> None:
    for secret in secrets:
        assert secret not in text, "a signing secret leaked"
    for name in SIGNATURE_HEADERS:
        # The signature-like runs of the header (hex, base64), not words a log line may share with it.
        for token in _SIGNATURE_TOKEN.findall(outcome.headers.get(name, "")):
            assert token not in text, f"the {name} header leaked"
    if len(outcome.body) >= 32:
        raw = outcome.body.decode("utf-8", errors="replace")
        for form in (raw, json.dumps(raw)[1:-1], base64.b64encode(outcome.body).decode()):
            assert form not in text, "the whole body leaked"


def _route_of(event: Any) -> str:
    """The route as the receiver reads it (routing is not what the oracle judges; the signature is)."""
    from revenue_webhooks.service.receiver import _route

    return _route(event) if isinstance(event, dict) else ""


def _body_of(event: Any) -> bytes:
    if not isinstance(event, dict) or not isinstance(event.get("body"), str):
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(event["body"], validate=True)
        except ValueError:
            return b""
    return event["body"].encode("utf-8", errors="surrogateescape")


@contextlib.contextmanager
def _captured_output() -> Any:
    """Everything the handler writes: the Powertools log stream, EMF metrics on stdout, library warnings."""
    from revenue_webhooks import observability

    buffer = io.StringIO()
    handler = observability.logger.registered_handler
    previous = handler.setStream(buffer)
    library = logging.StreamHandler(buffer)
    library.setLevel(logging.WARNING)
    logging.getLogger().addHandler(library)
    try:
        with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield buffer
    finally:
        logging.getLogger().removeHandler(library)
        handler.setStream(previous)
