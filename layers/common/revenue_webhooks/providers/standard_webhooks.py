"""Standard Webhooks senders (Svix, Resend, Clerk, OpenAI, ...): verification and a configured mapping.

Verification follows the spec: `webhook-id`, `webhook-timestamp`, `webhook-signature` (space-separated
`v1,<base64>` entries, several during rotation); `v1` is HMAC-SHA256 of `id.timestamp.body` keyed
with the base64 after `whsec_`. Svix-branded senders send the same scheme as `svix-*` headers, which
are accepted too. The `standardwebhooks` library (1.1.0) signs; it is not asked to verify because its
`Webhook.verify` checks the timestamp against the clock with a fixed 5-minute window and takes one
secret at a time, while the receiver must check against API Gateway's request time
(SIGNATURE_TOLERANCE_SECONDS, default 300 = the spec's 5 minutes, both ways) and try every secret.

What a sender's events mean is configuration, not code: STANDARD_WEBHOOKS_MAPPING (see
docs/providers.md for the schema and a worked example) names, per event type, the catalog event and
the JSON paths of its ids, amount, currency and time. It is validated by `validate_mapping`, which
raises `ConfigError` naming the exact field at fault.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from ..config import ConfigError, Settings
from ..domain import catalog as c
from ..domain.amounts import Amounts
from ..domain.facts import Deferred, Fact, ProfileEffect, payment_ref
from ..domain.identity import buyer_ip, resolve
from ..domain.money import Money
from ..domain.mrr import Charge, MrrChange, billing_interval, monthly_recurring
from ..domain.webhook import QueuedEvent
from ._common import as_id, check_window, iso_utc, major_money, minor_money, unix_time
from .base import (
    ParsedWebhook,
    PayloadInvalid,
    Provider,
    SignatureInvalid,
    WebhookRequest,
    matches_any,
    parse_json_object,
)

SETTING = "STANDARD_WEBHOOKS_MAPPING"
SENDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

# Operator-defined per sender (`SenderMapping.produces`); nothing is built in.
PRODUCES: dict[str, tuple[str, ...]] = {}

# Catalog event -> (fact kind, the field naming its object, whether each webhook is its own occurrence).
KINDS: dict[str, tuple[str, str, bool]] = {
    c.PURCHASE_COMPLETED: ("payment", "order_id", False),
    c.REFUND_ISSUED: ("refund", "refund_id", False),
    c.SUBSCRIPTION_STARTED: ("subscription-start", "subscription_id", False),
    c.SUBSCRIPTION_RENEWED: ("subscription-renewal", "order_id", False),
    c.SUBSCRIPTION_CHANGED: ("subscription-change", "subscription_id", True),
    c.SUBSCRIPTION_CANCELLATION_SCHEDULED: ("subscription-cancel-scheduled", "subscription_id", True),
    c.SUBSCRIPTION_REACTIVATED: ("subscription-reactivated", "subscription_id", True),
    c.SUBSCRIPTION_CANCELLED: ("subscription-end", "subscription_id", False),
    c.TRIAL_ENDING: ("trial-ending", "subscription_id", True),
    c.PAYMENT_FAILED: ("payment-failed", "order_id", True),
    c.TRIAL_CONVERTED: ("trial-converted", "subscription_id", False),
}
MONEY_REQUIRED = (c.PURCHASE_COMPLETED, c.REFUND_ISSUED)
SUBSCRIPTION_REQUIRED = (c.SUBSCRIPTION_RENEWED,)
PURCHASE_TYPES = (c.ONE_TIME, c.SUBSCRIPTION_INITIAL, c.SUBSCRIPTION_RENEWAL, c.SUBSCRIPTION_UPDATE, c.INVOICE)
AMOUNT_UNITS = ("minor", "major")

# Rule fields that read the payload: a dotted JSON path ("data.customer.id", "data.items.0.price"),
# or {"value": <constant>} for senders that leave it out of the body.
VALUE_FIELDS = (
    "time",
    "order_id",
    "refund_id",
    "subscription_id",
    "user_id",
    "customer_id",
    "device_id",
    "ip",
    "amount",
    "currency",
    "plan",
    "from_plan",
    "reason",
    "attempt",
    "cancel_at",
    "trial_end",
    # Subscription economics: amounts in `amount_unit` of `currency`; MRR from a recurring amount per interval.
    "tax",
    "discount",
    "fee",
    "recurring_amount",
    "previous_recurring_amount",
    "interval",
    "interval_count",
)
MONEY_FIELDS = ("amount", "tax", "discount", "fee", "recurring_amount", "previous_recurring_amount")
# Which catalog events read a recurring amount, and what it is: (before the event, after it).
MRR_EVENTS = (
    c.SUBSCRIPTION_STARTED,
    c.SUBSCRIPTION_CHANGED,
    c.SUBSCRIPTION_RENEWED,
    c.SUBSCRIPTION_CANCELLED,
    c.TRIAL_CONVERTED,
)
RULE_FIELDS = frozenset(("event", "amount_unit", "purchase_type", "livemode", "when", *VALUE_FIELDS))
SENDER_FIELDS = frozenset(("events", "type_path"))


# --- the mapping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """Where a rule reads one value: a path into the payload, or a constant."""

    path: tuple[str, ...] = ()
    constant: Any = None

    def read(self, payload: Any) -> Any:
        if not self.path:
            return self.constant
        for step in self.path:
            if isinstance(payload, dict):
                payload = payload.get(step)
            elif isinstance(payload, list) and step.isdigit() and int(step) < len(payload):
                payload = payload[int(step)]
            else:
                return None
            if payload is None:
                return None
        return payload

    def describe(self) -> str:
        return ".".join(self.path) if self.path else f"constant {self.constant!r}"


@dataclass(frozen=True)
class Rule:
    """One catalog event produced by one sender event type."""

    event: str
    values: Mapping[str, Value]
    amount_unit: str | None = None
    purchase_type: str | None = None
    livemode: tuple[Value, tuple[Any, ...] | None] | None = None  # (where, live values; None: a boolean)
    when: tuple[tuple[Value, tuple[Any, ...]], ...] = ()

    def applies(self, payload: Any) -> bool:
        return all(value.read(payload) in accepted for value, accepted in self.when)

    def read_livemode(self, payload: Any) -> bool | None:
        if self.livemode is None:
            return None
        where, live_values = self.livemode
        found = where.read(payload)
        if live_values is None:
            return found if isinstance(found, bool) else None
        return None if found is None else found in live_values


@dataclass(frozen=True)
class SenderMapping:
    """A validated sender: where its event type is, and the rules for each type."""

    name: str
    type_path: Value
    events: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)

    def produces(self) -> dict[str, tuple[str, ...]]:
        return {event_type: tuple(rule.event for rule in rules) for event_type, rules in self.events.items()}


def validate_mapping(mapping: Mapping[str, Any], *, reserved: Collection[str] = ()) -> dict[str, SenderMapping]:
    """Every sender of STANDARD_WEBHOOKS_MAPPING, validated (call at cold start to fail early).

    `reserved`: the built-in providers' routes, which no sender may take.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{SETTING}: expected a JSON object of sender name -> sender mapping")
    return {name: compile_sender(name, raw, reserved=reserved) for name, raw in mapping.items()}


def compile_sender(name: str, raw: Any, *, reserved: Collection[str] = ()) -> SenderMapping:
    """One sender's mapping, validated; ConfigError names the field at fault and what it accepts."""
    where = f"{SETTING}.{name}"
    if not isinstance(name, str) or not SENDER_NAME.fullmatch(name):
        raise ConfigError(f"{where}: a sender name is 1-64 letters, digits, '-' or '_' (it is the URL path segment)")
    if name in reserved:
        raise ConfigError(f"{where}: '{name}' is a built-in provider route; choose another sender name")
    if not isinstance(raw, Mapping):
        raise ConfigError(f'{where}: expected an object with "events"')
    _no_unknown(where, raw, SENDER_FIELDS)
    type_path = _value(f"{where}.type_path", raw.get("type_path", "type"), constant_allowed=False)
    events = raw.get("events")
    if not isinstance(events, Mapping) or not events:
        raise ConfigError(
            f"{where}.events: expected a non-empty object of sender event type -> rule (or list of rules)"
        )
    compiled: dict[str, tuple[Rule, ...]] = {}
    for event_type, rules in events.items():
        rule_list = rules if isinstance(rules, list) else [rules]
        if not rule_list:
            raise ConfigError(f"{where}.events.{event_type}: expected a rule or a non-empty list of rules")
        compiled[event_type] = tuple(
            _rule(f"{where}.events.{event_type}" + (f"[{i}]" if isinstance(rules, list) else ""), rule)
            for i, rule in enumerate(rule_list)
        )
    return SenderMapping(name, type_path, compiled)


def _rule(where: str, raw: Any) -> Rule:
    if not isinstance(raw, Mapping):
        raise ConfigError(f'{where}: expected an object with at least "event" and "time"')
    _no_unknown(where, raw, RULE_FIELDS)
    event = raw.get("event")
    if event not in KINDS:
        raise ConfigError(f"{where}.event: {event!r} is not a catalog event; expected one of {sorted(KINDS)}")
    values = {name: _value(f"{where}.{name}", raw[name]) for name in VALUE_FIELDS if name in raw}
    required = ["time", KINDS[event][1]]
    required += ["amount", "currency"] if event in MONEY_REQUIRED else []
    required += ["subscription_id"] if event in SUBSCRIPTION_REQUIRED else []
    for name in required:
        if name not in values:
            raise ConfigError(f"{where}.{name}: required for {event!r} (a JSON path into the payload)")
    amount_unit = raw.get("amount_unit")
    money_fields = [name for name in MONEY_FIELDS if name in values]
    if bool(money_fields) != ("currency" in values):
        raise ConfigError(f'{where}: "{(money_fields or ["amount"])[0]}" and "currency" go together')
    if money_fields and amount_unit not in AMOUNT_UNITS:
        raise ConfigError(f'{where}.amount_unit: expected "minor" (cents) or "major" (dollars), got {amount_unit!r}')
    if not money_fields and amount_unit is not None:
        raise ConfigError(f'{where}.amount_unit: only meaningful with "amount" or another money field')
    if ("recurring_amount" in values) != ("interval" in values):
        raise ConfigError(f'{where}: "recurring_amount" and "interval" go together (an amount per billing interval)')
    if "recurring_amount" in values and event not in MRR_EVENTS:
        raise ConfigError(f"{where}.recurring_amount: only for subscription events {list(MRR_EVENTS)}")
    if "previous_recurring_amount" in values and event != c.SUBSCRIPTION_CHANGED:
        raise ConfigError(f"{where}.previous_recurring_amount: only for {c.SUBSCRIPTION_CHANGED!r}")
    purchase_type = raw.get("purchase_type")
    if purchase_type is not None and (event != c.PURCHASE_COMPLETED or purchase_type not in PURCHASE_TYPES):
        raise ConfigError(f"{where}.purchase_type: only for {c.PURCHASE_COMPLETED!r}, one of {list(PURCHASE_TYPES)}")
    if "from_plan" in values and event != c.SUBSCRIPTION_CHANGED:
        raise ConfigError(f'{where}.from_plan: only for {c.SUBSCRIPTION_CHANGED!r} ("plan" is the new plan)')
    return Rule(
        event=event,
        values=values,
        amount_unit=amount_unit,
        purchase_type=purchase_type,
        livemode=_livemode(f"{where}.livemode", raw["livemode"]) if "livemode" in raw else None,
        when=_when(f"{where}.when", raw["when"]) if "when" in raw else (),
    )


def _value(where: str, raw: Any, *, constant_allowed: bool = True) -> Value:
    if isinstance(raw, str):
        path = tuple(raw.split("."))
        if not raw or not all(path):
            raise ConfigError(f'{where}: {raw!r} is not a dotted JSON path such as "data.customer.id"')
        return Value(path=path)
    if constant_allowed and isinstance(raw, Mapping) and set(raw) == {"value"}:
        if not isinstance(raw["value"], (str, int, float, bool)):
            raise ConfigError(f"{where}.value: expected a string, number or boolean")
        return Value(constant=raw["value"])
    accepted = "a dotted JSON path" + (' or {"value": <constant>}' if constant_allowed else "")
    raise ConfigError(f"{where}: expected {accepted}, got {raw!r}")


def _livemode(where: str, raw: Any) -> tuple[Value, tuple[Any, ...] | None]:
    if isinstance(raw, str):
        return _value(where, raw, constant_allowed=False), None
    if isinstance(raw, Mapping) and set(raw) == {"path", "live"}:
        return _value(f"{where}.path", raw["path"], constant_allowed=False), _scalars(f"{where}.live", raw["live"])
    raise ConfigError(f'{where}: expected a path to a boolean, or {{"path": "...", "live": [values meaning live]}}')


def _when(where: str, raw: Any) -> tuple[tuple[Value, tuple[Any, ...]], ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}: expected an object of JSON path -> required value (or list of values)")
    return tuple(
        (_value(f"{where}.{path}", path, constant_allowed=False), _scalars(f"{where}.{path}", expected))
        for path, expected in raw.items()
    )


def _scalars(where: str, raw: Any) -> tuple[Any, ...]:
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(value is None or isinstance(value, (str, int, float, bool)) for value in values):
        raise ConfigError(f"{where}: expected a JSON scalar or a non-empty list of scalars")
    return tuple(values)


def _no_unknown(where: str, raw: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(allowed)}")


# --- the provider -----------------------------------------------------------------------------


def create(settings: Settings, sender_name: str) -> StandardWebhooksProvider:
    mapping = settings.standard_webhooks_mapping or {}
    if sender_name not in mapping:
        raise ConfigError(f"{SETTING}: no sender named {sender_name!r}")
    return StandardWebhooksProvider(settings, compile_sender(sender_name, mapping[sender_name]))


class StandardWebhooksProvider(Provider):
    def __init__(self, settings: Settings, sender: SenderMapping) -> None:
        super().__init__(settings)
        self.sender = sender
        self.name = sender.name

    def verify(self, request: WebhookRequest, secrets: Sequence[str]) -> None:
        msg_id, timestamp, signature = (_header(request, name) for name in ("id", "timestamp", "signature"))
        if not (msg_id and timestamp and signature):
            raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature header")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 11):
            raise SignatureInvalid("webhook-timestamp is not a Unix time in seconds")
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureInvalid("body is not UTF-8") from None
        given = _signatures(signature)
        signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
        expected = []
        for secret in secrets:
            try:
                signed = Webhook(secret).sign(msg_id=msg_id, timestamp=signed_at, data=body)
            except (binascii.Error, EmptyWebhookSecretError, RuntimeError, ValueError):
                continue  # a malformed secret: rotation may still have a good one
            expected.append(base64.b64decode(signed.split(",", 1)[1]))
        if not expected:
            raise SignatureInvalid(f"no usable whsec_ secret configured for sender {self.name!r}")
        if not matches_any(expected, given):
            raise SignatureInvalid("no webhook-signature v1 entry matches a configured secret")
        tolerance = self.settings.signature_tolerance_s
        check_window(int(timestamp), request, past_s=tolerance, future_s=tolerance, what="webhook-timestamp")

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        payload = parse_json_object(request.body)
        msg_id = _header(request, "id")
        event_type = self.sender.type_path.read(payload)
        if not msg_id:
            raise PayloadInvalid("missing webhook-id header")
        if not isinstance(event_type, str) or not event_type:
            raise PayloadInvalid(f"no event type at {self.sender.type_path.describe()}")
        livemode = next(
            (rule.read_livemode(payload) for rule in self.sender.events.get(event_type, ()) if rule.livemode), None
        )
        return ParsedWebhook(msg_id, event_type, livemode, payload)

    def is_relevant(self, event_type: str) -> bool:
        return event_type in self.sender.events

    def map(self, event: QueuedEvent) -> list[Fact | Deferred]:
        payload = parse_json_object(event.body)
        facts: list[Fact | Deferred] = []
        for rule in self.sender.events.get(event.event_type, ()):
            if rule.applies(payload):
                facts += _Reading(self, rule, payload, event).facts()
        return facts


class _Reading:
    """One rule applied to one payload: reads its values, raises PayloadInvalid naming a missing one."""

    def __init__(self, provider: StandardWebhooksProvider, rule: Rule, payload: Any, event: QueuedEvent) -> None:
        self.sender = provider.name
        self.settings = provider.settings
        self.rule = rule
        self.payload = payload
        self.event = event

    def raw(self, name: str) -> Any:
        value = self.rule.values.get(name)
        return value.read(self.payload) if value else None

    def text(self, name: str) -> str | None:
        return as_id(self.raw(name))  # strings and integers; objects, floats and booleans are not ids

    def required(self, name: str, found: Any) -> Any:
        if found is None:
            where = self.rule.values[name].describe()
            raise PayloadInvalid(f"{self.sender} {self.event.event_type}: {name} ({where}) is missing or unreadable")
        return found

    def money(self, name: str = "amount") -> Money | None:
        """An amount (refused when unreadable); absent is fine only where the event needs no money."""
        amount = self.raw(name)
        if amount is None and (name != "amount" or self.rule.event not in MONEY_REQUIRED):
            return None
        read = minor_money if self.rule.amount_unit == "minor" else major_money  # minor refuses floats
        found = self.required(name, read(amount, self.raw("currency")) if amount is not None else None)
        refund_part = self.rule.event == c.REFUND_ISSUED and name in ("amount", "tax", "discount", "fee")
        return -found if refund_part and found.minor < 0 else found  # senders that report refunds as negatives

    def amounts(self) -> Amounts | None:
        tax, discount, fee = self.money("tax"), self.money("discount"), self.money("fee")
        return Amounts(tax=tax, discount=discount, fee=fee) if tax or discount or fee else None

    def mrr(self, subscription: str | None) -> MrrChange | None:
        """The subscription's MRR from `recurring_amount` per `interval`: New on Started (0 before), Churn on
        Cancelled (0 after), a change on Changed when `previous_recurring_amount` is mapped, else no change."""
        per_period = self.money("recurring_amount")
        if per_period is None or subscription is None:
            return None
        interval = billing_interval(self.raw("interval"), self.raw("interval_count") or 1)
        interval = self.required("interval", interval)

        def monthly(money: Money) -> Money:
            return monthly_recurring([Charge(Decimal(money.minor), *interval)], money.currency)

        recurring = monthly(per_period)
        event = self.rule.event
        if event in (c.SUBSCRIPTION_STARTED, c.TRIAL_CONVERTED):
            return MrrChange.started(subscription, recurring)
        if event == c.SUBSCRIPTION_CANCELLED:
            return MrrChange.ended(subscription, recurring)
        previous = self.money("previous_recurring_amount")
        return MrrChange(subscription, recurring, monthly(previous) if previous is not None else None)

    def facts(self) -> list[Fact | Deferred]:
        event = self.rule.event
        kind, id_field, per_webhook = KINDS[event]
        object_id = self.required(id_field, self.text(id_field))
        time = self.required("time", unix_time(self.raw("time")))
        money = self.money()
        if event in MONEY_REQUIRED and (money is None or money.minor <= 0):
            return []  # a free order or an empty refund moved no money
        key = f"{self.sender}:{kind}:{object_id}"
        if per_webhook:
            suffix = {c.TRIAL_ENDING: unix_time(self.raw("trial_end")), c.PAYMENT_FAILED: self.text("attempt")}
            key += f":{suffix.get(event) or self.event.event_id}"
        user, device, customer = self.text("user_id"), self.text("device_id"), self.text("customer_id")
        metadata = [{self.settings.device_id_keys[0]: device}] if device and self.settings.device_id_keys else []
        identity = resolve(self.settings, metadata, reference_ids=[user], customer=customer)
        ip = self.text("ip")
        order_id = self.text("order_id")
        return [
            Fact(
                key=key,
                event=event,
                time=time,
                identity=identity,
                money=money,
                order_id=order_id,
                properties=self.properties(),
                profile=self.profile(money),
                ip=buyer_ip(self.settings, [{self.settings.ip_keys[0]: ip}]) if ip and self.settings.ip_keys else None,
                links=(payment_ref(self.sender, order_id),) if event == c.PURCHASE_COMPLETED and order_id else (),
                identity_from=(payment_ref(self.sender, order_id),)
                if event == c.REFUND_ISSUED and order_id and not identity.user_id
                else (),
                mrr=self.mrr(self.text("subscription_id")),
                amounts=self.amounts() if event in MONEY_REQUIRED else None,
            )
        ]

    def properties(self) -> dict[str, Any]:
        event = self.rule.event
        properties: dict[str, Any] = {}
        if event == c.PURCHASE_COMPLETED:
            properties[c.PURCHASE_TYPE] = self.rule.purchase_type or c.ONE_TIME
        if event == c.SUBSCRIPTION_STARTED:
            properties[c.STATUS] = "active"
        names = {
            "refund_id": c.REFUND_ID,
            "subscription_id": c.SUBSCRIPTION_ID,
            "plan": c.TO_PLAN if event == c.SUBSCRIPTION_CHANGED else c.PLAN,
            "from_plan": c.FROM_PLAN,
            "reason": c.REASON,
            "attempt": c.ATTEMPT,
        }
        for name, prop in names.items():
            value = self.raw(name)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                properties[prop] = value
        for name, prop in (("cancel_at", c.CANCEL_AT), ("trial_end", c.TRIAL_END)):
            seconds = unix_time(self.raw(name))
            if seconds is not None:
                properties[prop] = iso_utc(seconds)
        return properties

    def profile(self, money: Money | None) -> ProfileEffect | None:
        event, plan = self.rule.event, self.text("plan")
        if event == c.PURCHASE_COMPLETED:
            return ProfileEffect(
                purchases=1, revenue=money, plan=plan if "subscription_id" in self.rule.values else None
            )
        if event == c.REFUND_ISSUED and money is not None:
            return ProfileEffect(refunds=1, revenue=-money)
        if event == c.SUBSCRIPTION_STARTED:
            return ProfileEffect(status="active", plan=plan)
        if event == c.SUBSCRIPTION_CANCELLED:
            return ProfileEffect(status="canceled")
        if event == c.SUBSCRIPTION_CHANGED and plan:
            return ProfileEffect(plan=plan)
        return None


def _header(request: WebhookRequest, name: str) -> str:
    """`webhook-<name>`, or Svix's `svix-<name>` (same scheme, older header names)."""
    return (request.header(f"webhook-{name}") or request.header(f"svix-{name}") or "").strip()


def _signatures(header: str) -> list[bytes]:
    """The decoded `v1` signatures of a `webhook-signature` header; other versions (v1a) are ignored."""
    found = []
    for entry in header.split():
        version, _, signature = entry.partition(",")
        if version != "v1" or not signature:
            continue
        try:
            found.append(base64.b64decode(signature, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


# --- signing, for the tools and tests ------------------------------------------------------------


def sign(body: bytes, secret: str, timestamp: int | None = None, *, message_id: str | None = None) -> dict[str, str]:
    """A delivery's headers as a Standard Webhooks sender signs it (for the tools and tests).

    The spec's HMAC over the raw bytes: the `standardwebhooks` library signs text only, and the fuzz
    suite signs bodies that are not UTF-8 to check the receiver refuses them after verifying.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    msg_id = message_id or "msg_" + hashlib.sha256(body).hexdigest()[:24]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
