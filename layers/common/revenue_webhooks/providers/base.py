"""The provider interface: what every payment provider module implements.

A provider is one module in this package with one `Provider` subclass. The receiver
calls `verify` and `parse` on the raw request; the forwarder calls `map` on the queued
body. Nothing here knows about SQS, DynamoDB, HTTP or Lambda.
"""

from __future__ import annotations

import hmac
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..domain.facts import Deferred, Fact
from ..domain.lookups import Found, Lookup
from ..domain.webhook import QueuedEvent

# JSON nested deeper than this is refused before the parser could recurse on it.
MAX_JSON_DEPTH = 64


class WebhookRejected(Exception):
    """A request this endpoint refuses; `public` is the whole response text, never echoing input."""

    status = 400
    public = "bad request"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.public)
        self.detail = detail or self.public


class SignatureInvalid(WebhookRejected):
    public = "signature verification failed"


class TimestampOutOfTolerance(WebhookRejected):
    public = "webhook timestamp outside the accepted window"


class PayloadInvalid(WebhookRejected):
    public = "body is not a JSON webhook event"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """The raw request as API Gateway delivered it: the body is bytes, exactly as signed."""

    body: bytes
    headers: Mapping[str, str]  # lower-case names
    received_at_ms: int
    route: str  # the `{provider}` path segment

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    """What the receiver learns from a verified webhook: enough to filter and enqueue it."""

    event_id: str
    event_type: str
    livemode: bool | None  # None when the provider has no test/live flag
    payload: Any


class Provider(ABC):
    """One payment provider: its signature scheme, its event names and its mapping."""

    #: The route segment, `/webhooks/<name>`, and the prefix of every fact key.
    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings  # tolerances, identity keys, mode

    def prepare(self) -> None:  # noqa: B027 (optional: most providers need nothing loaded ahead)
        """Load at init what `verify` will need (a library), when init is not paid for by a waiting webhook."""

    @abstractmethod
    def verify(self, request: WebhookRequest, secrets: Sequence[str]) -> None:
        """Raise `SignatureInvalid` or `TimestampOutOfTolerance` unless one of `secrets` signed `request`.

        Must run on the raw body before any parsing and compare in constant time.
        """

    @abstractmethod
    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        """Identify a verified webhook (event id for dedup and logs, type, live or test)."""

    @abstractmethod
    def is_relevant(self, event_type: str) -> bool:
        """Whether anything maps this event type; irrelevant ones never reach the queue."""

    @abstractmethod
    def map(self, event: QueuedEvent) -> list[Fact | Deferred]:
        """Turn a queued webhook into the catalog's facts (empty when it means nothing for revenue)."""

    def lookups(self, event: QueuedEvent) -> tuple[Lookup, ...]:
        """What `map_with` needs fetched from the provider's API first; most providers' webhooks say it all."""
        return ()

    def map_with(self, event: QueuedEvent, found: Found) -> list[Fact | Deferred]:
        """`map`, given the documents `lookups` asked for (the forwarder fetched them; none failed)."""
        return self.map(event)


Signer = Callable[..., dict[str, str]]


@dataclass(frozen=True)
class SigningSecret:
    """Where a provider's signing secret is: the template's secret and the receiver's variable naming its id."""

    variable: str  # e.g. STRIPE_WEBHOOK_SECRET_ID: the Secrets Manager id or ARN, set by the template
    resource: str  # e.g. StripeWebhookSecret: the AWS::SecretsManager::Secret in template.yaml
    prefix: str = "local_"  # how the provider's secrets begin (whsec_...), for the local stack's made-up ones
    # One JSON document (the app stores' configuration), not comma-separated values to try in turn.
    whole: bool = False


def _no_options(sample_name: str) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class ProviderSpec:
    """A built-in provider, declared once in its module as `SPEC`: everything about it outside its mapping.

    The registry (providers/__init__.py) finds it; the receiver, the local stack, `make event`, `make replay`,
    the demo and the tests all read it from there.
    """

    route: str  # `/webhooks/<route>`, the prefix of its fact keys, and its samples' folder `events/<route>/`
    title: str  # how people name it: "Stripe", "Lemon Squeezy"
    signing: SigningSecret
    create: Callable[[Settings], Provider]
    produces: Mapping[str, tuple[str, ...]]  # provider event type -> catalog events (docs/events.md)
    sign: Signer  # (body, secret, timestamp=None, **options) -> the headers a real delivery carries
    user_agent: str = ""  # what its deliveries say they are (cosmetic: nothing reads it)
    # Signing options a sample's file name implies (Shopify's topic travels in a header, not in the body).
    sample_options: Callable[[str], dict[str, str]] = _no_options


def parse_json_object(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse a body that must be one JSON object, refusing deep nesting before the parser sees it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PayloadInvalid("body is not UTF-8") from error
    if _nesting_depth(text) > max_depth:
        raise PayloadInvalid("JSON nested too deeply")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise PayloadInvalid("body is not JSON") from error
    if not isinstance(value, dict):
        raise PayloadInvalid("body is not a JSON object")
    return value


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside strings, found by C-speed regexes and a loop over brackets only."""
    opening = text.count("{") + text.count("[")
    if opening <= MAX_JSON_DEPTH:
        return opening
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


# Possessive, and an unterminated string runs to the end: a body of `\"` repeats is scanned once, not
# once per quote (the earlier pattern took quadratic time, 14 s for 40 KB).
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def matches_any(expected: Sequence[bytes | str], given: Sequence[bytes | str]) -> bool:
    """Constant-time check that any `given` signature equals any `expected` one."""
    found = False
    for want in expected:
        for got in given:
            a = want.encode() if isinstance(want, str) else want
            b = got.encode() if isinstance(got, str) else got
            found |= hmac.compare_digest(a, b)
    return found


def dig(data: Any, *path: str | int) -> Any:
    """Nested lookup that returns None instead of raising on a missing key or wrong type."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(data, list) or not -len(data) <= step < len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[step] if isinstance(step, int) else data.get(step)
        if data is None:
            return None
    return data
