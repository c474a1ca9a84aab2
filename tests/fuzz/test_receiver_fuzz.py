"""Property-based fuzzing of ReceiverFunction: hostile events, and signed deliveries tampered with.

Every example goes through the real handler (moto behind it) and `ReceiverRig.check`: no exception,
no 5xx unless the queue is down, nothing enqueued without a valid signature, no secret, signature or
body in a response or a log. CI runs a short form; `RUN_SLOW=1` runs the long one whose figures are
in docs/reliability.md (`make fuzz-long` prints them).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from receiver_rig import ROUTES, SIGNATURE_HEADERS, STANDARD_SENDER, ReceiverRig, api_event, seed_bodies, sign

LONG = os.environ.get("RUN_SLOW") == "1"
# Short in CI; long with RUN_SLOW=1 (FUZZ_EXAMPLES overrides either).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or (5_000 if LONG else 150))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
    derandomize=not LONG,  # CI is reproducible; the long run explores
)
SEEDS = seed_bodies()
HEADER_NAMES = st.sampled_from(
    (
        *SIGNATURE_HEADERS,
        "content-type",
        "x-shopify-topic",
        "x-shopify-event-id",
        "x-shopify-triggered-at",
        "x-event-name",
        "webhook-id",
        "webhook-timestamp",
        "svix-id",
        "svix-timestamp",
    )
) | st.text(min_size=1, max_size=20)


@pytest.fixture(scope="module")
def rig() -> Iterator[ReceiverRig]:
    with ReceiverRig() as running:
        yield running
        print(f"\nreceiver fuzz ({'long' if LONG else 'short'}): {running.stats.line()}")


# ---- strategies -----------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
routes = st.sampled_from(ROUTES) | st.text(max_size=30)


@st.composite
def hostile_events(draw: st.DrawFn) -> Any:
    """Anything API Gateway could hand over, and much it never would: wrong types in every field."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)  # not even a dict
    route = draw(routes)
    event: dict[str, Any] = {}
    if draw(st.booleans()):
        event["pathParameters"] = draw(st.fixed_dictionaries({"provider": routes | json_values}) | json_values)
    else:
        event["rawPath"] = draw(st.just(f"/webhooks/{route}") | st.text(max_size=40) | json_values)
    event["body"] = draw(
        st.text(max_size=3000) | st.binary(max_size=3000).map(lambda raw: base64.b64encode(raw).decode()) | json_values
    )
    event["headers"] = draw(st.dictionaries(HEADER_NAMES, st.text(max_size=200), max_size=8) | json_values)
    event["isBase64Encoded"] = draw(st.booleans() | json_values)
    event["requestContext"] = draw(
        st.fixed_dictionaries(
            {"timeEpoch": st.integers() | st.floats() | st.booleans() | st.text(max_size=20) | st.none()}
        )
        | json_values
    )
    return event


TAMPERINGS = (
    "none",
    "body_byte",
    "body_append",
    "signature_char",
    "signature_truncate",
    "signature_extra_entry",
    "signature_non_ascii",
    "signature_case",
    "wrong_secret",
    "drop_signature",
    "duplicate_timestamp",
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """A delivery signed with the real secret at some time, then (maybe) tampered with."""
    route = draw(st.sampled_from(ROUTES))
    kind = draw(st.sampled_from(("seed", "seed_mutated", "json_object", "bytes")))
    options: dict[str, str] = {}
    if kind in ("seed", "seed_mutated"):
        body, options = draw(st.sampled_from(SEEDS[route]))
        if kind == "seed_mutated":
            data = json.loads(body)
            data[draw(st.text(max_size=10))] = draw(json_values)
            body = json.dumps(data).encode()
    elif kind == "json_object":
        body = json.dumps(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=6))).encode()
    else:
        body = draw(st.binary(max_size=2000))
    now = int(time.time())
    offset = draw(
        st.sampled_from((0, -5, -299, -301, -3600, -90_000, 30, 59, 61, 301, 3600)) | st.integers(-(10**8), 10**8)
    )
    headers = sign(route, body, now + offset, **options)
    tamper = draw(st.sampled_from(TAMPERINGS))
    signature_names = [name for name in SIGNATURE_HEADERS if name in headers]
    name = signature_names[0] if signature_names else "content-type"
    value = headers.get(name, "")
    if tamper == "body_byte" and body:
        index = draw(st.integers(0, len(body) - 1))
        body = body[:index] + bytes([body[index] ^ draw(st.integers(1, 255))]) + body[index + 1 :]
    elif tamper == "body_append":
        body += draw(st.binary(min_size=1, max_size=10))
    elif tamper == "signature_char" and value:
        index = draw(st.integers(0, len(value) - 1))
        headers[name] = value[:index] + draw(st.characters(codec="ascii")) + value[index + 1 :]
    elif tamper == "signature_truncate" and value:
        headers[name] = value[: draw(st.integers(0, len(value) - 1))]
    elif tamper == "signature_extra_entry":
        extra = draw(st.sampled_from((",v1=", ";h1=", " v1,", ",t=", ",")))
        headers[name] = value + extra + draw(st.text(max_size=70))
    elif tamper == "signature_non_ascii" and value:
        index = draw(st.integers(0, len(value)))
        headers[name] = (
            value[:index] + draw(st.characters(min_codepoint=128, exclude_categories=["Cs"])) + value[index:]
        )
    elif tamper == "signature_case":
        headers[name] = value.swapcase()
    elif tamper == "wrong_secret":
        if route == STANDARD_SENDER:  # a Standard Webhooks secret is base64 after `whsec_`
            wrong = "whsec_" + base64.b64encode(draw(st.binary(min_size=1, max_size=40))).decode()
        else:
            wrong = draw(st.text(min_size=1, max_size=40))
        headers = sign(route, body, now + offset, secret=wrong, **options)
    elif tamper == "drop_signature":
        headers.pop(name, None)
    elif tamper == "duplicate_timestamp":
        # A second, fresh timestamp in front of the signed one: only the signed one may be judged.
        if route == "stripe":
            headers[name] = draw(st.sampled_from(("t", " t", "t "))) + f"={now}," + value
        elif route == "paddle":
            headers[name] = f"ts={now};" + value
    event = api_event(route, body, headers, base64_body=draw(st.booleans()))
    queue_down = draw(st.integers(0, 19)) == 0
    return event, queue_down


# ---- properties -------------------------------------------------------------------------------


@FUZZ
@given(event=hostile_events())
def test_hostile_events_never_crash_leak_or_enqueue(rig: ReceiverRig, event: Any) -> None:
    rig.check(rig.invoke(event))


@FUZZ
@given(delivery=deliveries())
def test_signed_and_tampered_deliveries_keep_every_promise(rig: ReceiverRig, delivery: tuple[dict, bool]) -> None:
    event, queue_down = delivery
    rig.check(rig.invoke(event, queue_down=queue_down))


@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    headers=st.dictionaries(HEADER_NAMES, st.text(max_size=300), max_size=10),
    body=st.binary(max_size=4000),
)
def test_unsigned_arbitrary_requests_are_never_enqueued(
    rig: ReceiverRig, route: str, headers: dict[str, str], body: bytes
) -> None:
    outcome = rig.invoke(api_event(route, body, headers, base64_body=True))
    rig.check(outcome)
    assert not outcome.enqueued
