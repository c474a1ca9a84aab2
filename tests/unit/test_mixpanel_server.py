"""The local Mixpanel answers like Mixpanel: auth, limits, strict validation, dedup, profiles, faults, spec checks.

Every test talks to a real server over HTTP with `requests`, as the forwarder will.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.mixpanel_server import (
    DEMO_CREDENTIALS,
    MAX_REQUEST_BYTES,
    SPEC_PATH,
    Credentials,
    Fault,
    MixpanelServer,
)

SA = (DEMO_CREDENTIALS.username, DEMO_CREDENTIALS.secret)
TOKEN = (DEMO_CREDENTIALS.project_token, "")
STRICT = {"strict": "1", "project_id": DEMO_CREDENTIALS.project_id}
NOW = int(time.time())
ABSENT = object()  # marks a property to leave out of an event


@pytest.fixture
def server() -> Iterator[MixpanelServer]:
    with MixpanelServer() as mixpanel:
        yield mixpanel


def event(insert_id: str = "a1", name: str = "Purchase Completed", **properties: Any) -> dict[str, Any]:
    props = {"time": NOW, "distinct_id": "user-1", "$insert_id": insert_id, "Revenue": 12.5, "Currency": "USD"}
    props.update(properties)
    return {"event": name, "properties": props}


def post_import(
    server: MixpanelServer,
    events: Any,
    *,
    auth: tuple[str, str] | None = SA,
    params: dict[str, str] | None = None,
    compress: bool = False,
    ndjson: bool = False,
    timeout: float = 10,
) -> requests.Response:
    if ndjson:
        body = "\n".join(json.dumps(e) for e in events).encode()
    else:
        body = events if isinstance(events, bytes) else json.dumps(events).encode()
    headers = {"Content-Type": "application/x-ndjson" if ndjson else "application/json"}
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return requests.post(
        f"{server.url}/import",
        params=STRICT if params is None else params,
        data=body,
        headers=headers,
        auth=auth,
        timeout=timeout,
    )


def post_engage(
    server: MixpanelServer, updates: Any, *, params: dict[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    return requests.post(f"{server.url}/engage", params=params or {"verbose": "1"}, json=updates, timeout=10, **kwargs)


def update(distinct_id: str = "user-1", **operation: Any) -> dict[str, Any]:
    return {"$token": DEMO_CREDENTIALS.project_token, "$distinct_id": distinct_id, **operation}


def only_failure(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    (failure,) = response.json()["failed_records"]
    return failure


# ---------------------------------------------------------------------------------------------- auth


def test_service_account_with_its_project_id_imports(server: MixpanelServer) -> None:
    response = post_import(server, [event()])
    assert response.status_code == 200
    assert response.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}
    assert server.events() == [event()]


def test_project_token_as_username_with_empty_password_needs_no_project_id(server: MixpanelServer) -> None:
    response = post_import(server, [event()], auth=TOKEN, params={"strict": "1"})
    assert response.status_code == 200
    assert server.requests_log()[0]["auth"] == "project_token"


@pytest.mark.parametrize(
    ("auth", "params"),
    [
        pytest.param((DEMO_CREDENTIALS.username, "wrong"), STRICT, id="wrong-secret"),
        pytest.param(SA, {"strict": "1"}, id="service-account-without-project-id"),
        pytest.param(SA, {"strict": "1", "project_id": "2"}, id="service-account-other-project"),
        pytest.param(("not-the-token", ""), {"strict": "1"}, id="wrong-token"),
        pytest.param(TOKEN, {"strict": "1", "project_id": "2"}, id="token-with-other-project-id"),
        pytest.param(None, STRICT, id="no-auth"),
    ],
)
def test_bad_credentials_are_401_and_store_nothing(
    server: MixpanelServer, auth: tuple[str, str] | None, params: dict[str, str]
) -> None:
    response = post_import(server, [event()], auth=auth, params=params)
    assert response.status_code == 401
    assert response.json() == {"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}
    assert server.raw_events() == []


def test_credentials_are_configurable() -> None:
    credentials = Credentials(project_id="42", username="ci.42.mp-service-account", secret="s3cret")
    with MixpanelServer(credentials=credentials) as mixpanel:
        ok = post_import(
            mixpanel, [event()], auth=("ci.42.mp-service-account", "s3cret"), params={"strict": "1", "project_id": "42"}
        )
        demo = post_import(mixpanel, [event()], auth=TOKEN, params={"strict": "1"})
    assert (ok.status_code, demo.status_code) == (200, 401)


def test_credentials_must_be_complete() -> None:
    with pytest.raises(ValueError, match="both a username and a secret"):
        Credentials(project_id="1", username="only-a-name")
    with pytest.raises(ValueError, match="project_id"):
        Credentials(username="u", secret="s")
    with pytest.raises(ValueError, match="project_token"):
        Credentials()


def test_binds_loopback_only() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        MixpanelServer(host="0.0.0.0")  # noqa: S104 - the point is that it is refused


# --------------------------------------------------------------------------------------- body formats


def test_gzip_body_is_accepted_and_logged(server: MixpanelServer) -> None:
    response = post_import(server, [event("a1"), event("a2")], compress=True)
    assert response.json()["num_records_imported"] == 2
    (logged,) = server.requests_log()
    assert logged["headers"]["content-encoding"] == "gzip"
    assert logged["records"] == 2
    assert logged["body_bytes"] < logged["uncompressed_bytes"]
    assert logged["status"] == 200


def test_ndjson_body_is_accepted(server: MixpanelServer) -> None:
    response = post_import(server, [event("a1"), event("a2")], ndjson=True)
    assert response.json()["num_records_imported"] == 2


def test_gzip_ndjson_body_is_accepted(server: MixpanelServer) -> None:
    response = post_import(server, [event("a1"), event("a2")], ndjson=True, compress=True)
    assert response.json()["num_records_imported"] == 2


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        pytest.param(b"not json", {}, "not valid JSON", id="not-json"),
        pytest.param(b'{"event": "x"}', {}, "JSON array", id="not-an-array"),
        pytest.param(b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}, "gzip", id="bad-gzip"),
        pytest.param(gzip.compress(b"[1, 2]")[:-6], {"Content-Encoding": "gzip"}, "gzip", id="truncated-gzip"),
    ],
)
def test_malformed_body_is_400_with_an_error(
    server: MixpanelServer, body: bytes, headers: dict[str, str], error: str
) -> None:
    response = requests.post(
        f"{server.url}/import",
        params=STRICT,
        data=body,
        auth=SA,
        timeout=10,
        headers={"Content-Type": "application/json", **headers},
    )
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert response.json()["status"] == "Bad Request"


# --------------------------------------------------------------------------------------------- limits


def test_2000_events_are_accepted(server: MixpanelServer) -> None:
    response = post_import(server, [event(f"id-{i}") for i in range(2000)], compress=True)
    assert response.json() == {"code": 200, "num_records_imported": 2000, "status": "OK"}


def test_2001_events_are_400_and_store_nothing(server: MixpanelServer) -> None:
    response = post_import(server, [event(f"id-{i}") for i in range(2001)], compress=True)
    assert response.status_code == 400
    assert "2000" in response.json()["error"]
    assert server.raw_events() == []


def _padded_events(total_bytes: int) -> list[dict[str, Any]]:
    """Events whose JSON array is just over `total_bytes` (each well under 1MB and 255 chars per string)."""
    events, size, i = [], 2, 0
    while size <= total_bytes:
        e = event(f"id-{i}", **{f"p{k}": "x" * 250 for k in range(20)})
        events.append(e)
        size += len(json.dumps(e)) + 2
        i += 1
    return events


def test_body_over_2_mib_uncompressed_is_413(server: MixpanelServer) -> None:
    events = _padded_events(MAX_REQUEST_BYTES)
    assert len(events) <= 2000
    for compress in (False, True):
        response = post_import(server, events, compress=compress)
        assert response.status_code == 413
        assert response.json() == {
            "code": 413,
            "error": "request exceeds max limit of 2097152 bytes",
            "status": "Request Entity Too Large",
        }
    assert server.raw_events() == []


def test_event_of_1_mb_is_rejected(server: MixpanelServer) -> None:
    failure = only_failure(post_import(server, [event("big", blob="x" * (1024 * 1024))]))
    assert failure["field"] == "properties"
    assert "smaller than 1MB" in failure["message"]


# ----------------------------------------------------------------------------------------- validation

REJECTED = [
    pytest.param(
        {"time": "1700000000"}, "properties.time", "must be specified as seconds since epoch", id="time-string"
    ),
    pytest.param({"time": ABSENT}, "properties.time", "must be specified as seconds since epoch", id="time-missing"),
    pytest.param({"time": True}, "properties.time", "must be specified as seconds since epoch", id="time-bool"),
    pytest.param({"time": 31_535_999}, "properties.time", "must not be before 1971-01-01", id="time-1970"),
    pytest.param(
        {"time": (NOW + 3700) * 1000},
        "properties.time",
        "must not be more than 1 hour in the future",
        id="time-future-ms",
    ),
    pytest.param(
        {"time": NOW + 3700}, "properties.time", "must not be more than 1 hour in the future", id="time-future"
    ),
    pytest.param({"distinct_id": None}, "properties.distinct_id", "must be a string", id="distinct-id-null"),
    pytest.param({"distinct_id": 42}, "properties.distinct_id", "must be a string", id="distinct-id-number"),
    pytest.param({"$insert_id": ""}, "$insert_id", "must be specified", id="insert-id-empty"),
    pytest.param({"$insert_id": 7}, "$insert_id", "must be a string", id="insert-id-number"),
    pytest.param({"$insert_id": "a" * 37}, "$insert_id", "must be at most 36 bytes", id="insert-id-37-bytes"),
    pytest.param(
        {"$insert_id": "purchase_ORD-98765"},
        "$insert_id",
        "must only contain alphanumeric or hyphen '-' characters",
        id="insert-id-underscore",
    ),
    pytest.param(
        {"$insert_id": "evt:1"},
        "$insert_id",
        "must only contain alphanumeric or hyphen '-' characters",
        id="insert-id-colon",
    ),
    pytest.param({"$insert_id": "0"}, "$insert_id", "'0' is a placeholder value", id="insert-id-blocked"),
    pytest.param(
        {"nested": {"a": {"b": {"c": {}}}}},
        "properties.nested",
        "nested objects must have a max nesting depth of 3",
        id="depth-4",
    ),
    pytest.param(
        {"list": list(range(255))}, "properties.list", "lists must have fewer than 255 elements", id="list-255"
    ),
    pytest.param(
        {"obj": {str(k): k for k in range(255)}},
        "properties.obj",
        "nested objects must have fewer than 255 keys",
        id="object-255-keys",
    ),
]


@pytest.mark.parametrize(("change", "field", "reason"), REJECTED)
def test_invalid_event_fails_with_mixpanels_field_and_message(
    server: MixpanelServer, change: dict[str, Any], field: str, reason: str
) -> None:
    bad = event("bad1", **change)
    bad["properties"] = {k: v for k, v in bad["properties"].items() if v is not ABSENT}
    failure = only_failure(post_import(server, [bad]))
    insert_id = bad["properties"].get("$insert_id")
    assert failure == {
        "index": 0,
        "insert_id": insert_id if isinstance(insert_id, str) else "",
        "field": field,
        "message": f"'{field}' is invalid: {reason}",
    }


@pytest.mark.parametrize(
    "placeholder",
    ["anonymous", "NULL", "None", "undefined", "00000000-0000-0000-0000-000000000000", "-1", "[]", "n/a", "<nil>"],
)
def test_placeholder_distinct_ids_are_rejected(server: MixpanelServer, placeholder: str) -> None:
    failure = only_failure(post_import(server, [event(distinct_id=placeholder)]))
    assert failure["field"] == "properties.distinct_id"
    assert failure["message"] == f"'properties.distinct_id' is invalid: {placeholder!r} is a placeholder value"


def test_missing_distinct_id_or_insert_id_fails(server: MixpanelServer) -> None:
    no_user, no_insert_id = event("a1"), event("a2")
    del no_user["properties"]["distinct_id"], no_insert_id["properties"]["$insert_id"]
    response = post_import(server, [no_user, no_insert_id])
    assert [(f["index"], f["field"], f["message"]) for f in response.json()["failed_records"]] == [
        (0, "properties.distinct_id", "'properties.distinct_id' is invalid: must be specified"),
        (1, "$insert_id", "'$insert_id' is invalid: must be specified"),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"event": "", "properties": event()["properties"]}, id="empty-name"),
        pytest.param({"event": 5, "properties": event()["properties"]}, id="name-not-string"),
        pytest.param({"properties": event()["properties"]}, id="no-name"),
        pytest.param({"event": "X", "properties": [1]}, id="properties-not-object"),
        pytest.param("just a string", id="not-an-object"),
    ],
)
def test_event_needs_a_name_and_properties(server: MixpanelServer, bad: Any) -> None:
    failure = only_failure(post_import(server, [bad]))
    assert failure["field"] in ("event", "properties")
    assert failure["message"].startswith(f"'{failure['field']}' is invalid: ")


def test_accepted_edge_values(server: MixpanelServer) -> None:
    accepted = [
        event("e1", distinct_id=""),  # documented: an event without a user
        event("e2", time=NOW * 1000 + 123),  # milliseconds
        event("e3", time=NOW + 3500),  # under an hour ahead
        event("e4", time=31_536_000),  # 1971-01-01 exactly
        event("e5", nested={"a": {"b": {"c": 1}}}),  # depth 3
        event("e6", list=list(range(254))),
        event("e7", **{f"p{i}": i for i in range(254 - 5)}),  # 254 properties in all
        event("0123456789abcdef0123456789abcdef0123"),  # 36 bytes
    ]
    response = post_import(server, accepted)
    assert response.json() == {"code": 200, "num_records_imported": len(accepted), "status": "OK"}


def test_255_properties_are_rejected(server: MixpanelServer) -> None:
    failure = only_failure(post_import(server, [event("many", **{f"p{i}": i for i in range(255 - 5)})]))
    assert failure["message"] == "'properties' is invalid: must have fewer than 255 properties"


def test_strings_are_stored_truncated_to_255_characters(server: MixpanelServer) -> None:
    post_import(server, [event(note="é" * 300)])
    assert server.events()[0]["properties"]["note"] == "é" * 255


def test_partial_400_still_stores_the_valid_events(server: MixpanelServer) -> None:
    response = post_import(server, [event("ok1"), event("bad1", time="soon"), event("ok2"), event("bad_2")])
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "some data points in the request failed validation"
    assert body["num_records_imported"] == 2
    assert body["status"] == "Bad Request"
    assert [(f["index"], f["insert_id"], f["field"]) for f in body["failed_records"]] == [
        (1, "bad1", "properties.time"),
        (3, "bad_2", "$insert_id"),
    ]
    assert [e["properties"]["$insert_id"] for e in server.events()] == ["ok1", "ok2"]


def test_non_strict_mode_answers_status_1_or_0(server: MixpanelServer) -> None:
    lenient = {"strict": "0", "project_id": "1"}
    some_valid = post_import(server, [event("ok1"), event("bad_1")], params=lenient)
    none_valid = post_import(server, [event("bad_2")], params=lenient)
    unauthorized = post_import(server, [event("ok2")], params=lenient, auth=("x", "y"))
    assert (some_valid.status_code, some_valid.json()) == (200, {"status": 1})
    assert none_valid.status_code == 200
    assert none_valid.json()["status"] == 0
    assert "alphanumeric" in none_valid.json()["error"]
    assert (unauthorized.status_code, unauthorized.json()) == (401, {"error": "Invalid credentials", "status": 0})
    assert [e["properties"]["$insert_id"] for e in server.events()] == ["ok1"]


# ---------------------------------------------------------------------------------------------- dedup


def test_same_event_distinct_id_time_and_insert_id_is_one_event_the_latest(server: MixpanelServer) -> None:
    post_import(server, [event("dup", attempt=1)])
    post_import(server, [event("dup", attempt=2)])
    assert len(server.raw_events()) == 2
    assert [e["properties"]["attempt"] for e in server.events()] == [2]


def test_a_different_time_makes_two_events(server: MixpanelServer) -> None:
    post_import(server, [event("dup"), event("dup", time=NOW - 1)])
    assert len(server.events()) == 2


@pytest.mark.parametrize("change", [{"name": "Refund Issued"}, {"distinct_id": "user-2"}, {"insert_id": "other"}])
def test_any_other_part_of_the_key_makes_two_events(server: MixpanelServer, change: dict[str, str]) -> None:
    post_import(server, [event("dup"), event(**{"insert_id": "dup", **change})])
    assert len(server.events()) == 2


def test_seconds_and_milliseconds_of_the_same_instant_are_duplicates(server: MixpanelServer) -> None:
    post_import(server, [event("dup", time=NOW), event("dup", time=NOW * 1000)])
    assert len(server.events()) == 1


def test_concurrent_senders_are_all_stored(server: MixpanelServer) -> None:
    def send(worker: int) -> list[int]:
        with requests.Session() as session:
            return [
                session.post(
                    f"{server.url}/import",
                    params=STRICT,
                    auth=SA,
                    timeout=10,
                    json=[event(f"w{worker}-{i}-{j}") for j in range(10)],
                ).status_code
                for i in range(10)
            ]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for batch in pool.map(send, range(8)) for status in batch]
    assert statuses == [200] * 80
    assert len(server.events()) == 800


def test_wait_for_events_returns_once_enough_arrived(server: MixpanelServer) -> None:
    post_import(server, [event("a1")])
    assert len(server.wait_for_events(1, timeout_s=1)) == 1
    with pytest.raises(TimeoutError, match="expected 2 events"):
        server.wait_for_events(2, timeout_s=0.2)


# -------------------------------------------------------------------------------------------- profiles


def test_set_creates_and_overwrites(server: MixpanelServer) -> None:
    post_engage(server, [update(**{"$set": {"Plan": "basic", "Seats": 1}})])
    post_engage(server, [update(**{"$set": {"Plan": "pro"}})])
    assert server.profiles() == {"user-1": {"Plan": "pro", "Seats": 1}}


def test_set_once_keeps_the_first_value(server: MixpanelServer) -> None:
    post_engage(
        server,
        [
            update(**{"$set_once": {"First Purchase": "2024-01-01"}}),
            update(**{"$set_once": {"First Purchase": "2024-02-02", "Source": "stripe"}}),
        ],
    )
    assert server.profiles()["user-1"] == {"First Purchase": "2024-01-01", "Source": "stripe"}


def test_add_is_not_idempotent_twice_counts_twice(server: MixpanelServer) -> None:
    add = update(**{"$add": {"Lifetime Revenue": 12.5, "Purchase Count": 1}})
    post_engage(server, [add])
    post_engage(server, [add])  # a retry of the same update
    assert server.profiles()["user-1"] == {"Lifetime Revenue": 25.0, "Purchase Count": 2}
    assert len(server.profile_updates()) == 2


def test_list_operations(server: MixpanelServer) -> None:
    post_engage(
        server,
        [
            update(**{"$union": {"Plans": ["basic", "pro", "basic"]}}),
            update(**{"$union": {"Plans": ["pro", "team"]}}),
            update(**{"$append": {"Events": "a"}}),
            update(**{"$append": {"Events": "a"}}),
            update(**{"$remove": {"Plans": "basic"}}),
        ],
    )
    assert server.profiles()["user-1"] == {"Plans": ["pro", "team"], "Events": ["a", "a"]}


def test_unset_and_delete(server: MixpanelServer) -> None:
    post_engage(
        server,
        [
            update(**{"$set": {"Plan": "pro", "Seats": 3}}),
            update(**{"$unset": ["Seats"]}),
            update("user-2", **{"$set": {"Plan": "basic"}}),
            update("user-2", **{"$delete": None}),
        ],
    )
    assert server.profiles() == {"user-1": {"Plan": "pro"}}


def test_unset_on_a_missing_profile_creates_nothing(server: MixpanelServer) -> None:
    post_engage(server, [update(**{"$unset": ["Plan"]}), update(**{"$remove": {"Plans": "x"}})])
    assert server.profiles() == {}


def test_engage_answers_1_or_0_as_text_by_default(server: MixpanelServer) -> None:
    ok = post_engage(server, [update(**{"$set": {"a": 1}})], params={"ip": "0"})
    bad = post_engage(server, [update(**{"$set": {"a": 1}, "$add": {"b": 1}})], params={"ip": "0"})
    assert (ok.status_code, ok.text, bad.status_code, bad.text) == (200, "1", 200, "0")


def test_engage_verbose_1_answers_200_with_status(server: MixpanelServer) -> None:
    ok = post_engage(server, [update(**{"$set": {"a": 1}})])
    bad = post_engage(server, [{"$token": DEMO_CREDENTIALS.project_token, "$set": {"a": 1}}])
    assert (ok.status_code, ok.json()) == (200, {"error": None, "status": 1})
    assert (bad.status_code, bad.json()) == (
        200,
        {"error": "Engage API error: $distinct_id, missing or empty", "status": 0},
    )


def test_engage_verbose_2_answers_a_real_400_on_invalid_input(server: MixpanelServer) -> None:
    response = post_engage(
        server,
        [{"$token": DEMO_CREDENTIALS.project_token, "$distinct_id": "", "$set": {"a": 1}}],
        params={"verbose": "2"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Engage API error: $distinct_id, missing or empty", "status": 0}


@pytest.mark.parametrize(
    ("record", "error"),
    [
        pytest.param({"$distinct_id": "u", "$set": {}}, "$token, missing or empty", id="no-token"),
        pytest.param(
            {"$token": "other", "$distinct_id": "u", "$set": {}}, "$token, not this project's token", id="wrong-token"
        ),
        pytest.param(update(), "no operation", id="no-operation"),
        pytest.param(update(**{"$set": {"a": 1}, "$unset": ["b"]}), "more than one operation", id="two-operations"),
        pytest.param(update(**{"$add": {"n": "1"}}), "$add values must be numbers", id="add-not-number"),
        pytest.param(update(**{"$unset": "Plan"}), "$unset must be a list", id="unset-not-list"),
        pytest.param(update(**{"$union": {"Plans": "pro"}}), "$union values must be lists", id="union-not-list"),
    ],
)
def test_invalid_profile_updates_are_refused(server: MixpanelServer, record: dict[str, Any], error: str) -> None:
    response = post_engage(server, [record], params={"verbose": "2"})
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert server.profiles() == {}


def test_valid_updates_of_a_mixed_batch_are_applied(server: MixpanelServer) -> None:
    response = post_engage(
        server, [update(**{"$set": {"a": 1}}), update("", **{"$set": {"a": 1}})], params={"verbose": "1", "strict": "1"}
    )
    assert response.json()["status"] == 0
    assert response.json()["failed_records"] == [
        {"index": 1, "message": "Engage API error: $distinct_id, missing or empty"}
    ]
    assert server.profiles() == {"user-1": {"a": 1}}


def test_service_account_auth_replaces_the_token(server: MixpanelServer) -> None:
    response = post_engage(server, [{"$distinct_id": "u", "$set": {"a": 1}}], params={"verbose": "2"}, auth=SA)
    assert response.status_code == 200
    assert server.profiles() == {"u": {"a": 1}}
    wrong = post_engage(server, [update(**{"$set": {"a": 1}})], auth=("who", "knows"))
    assert (wrong.status_code, wrong.json()) == (401, {"error": "Invalid credentials", "status": "error"})


def test_engage_refuses_gzip(server: MixpanelServer) -> None:
    body = gzip.compress(json.dumps([update(**{"$set": {"a": 1}})]).encode())
    response = requests.post(
        f"{server.url}/engage",
        params={"verbose": "1"},
        data=body,
        timeout=10,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400
    assert "gzip" in response.json()["error"]
    assert server.profiles() == {}


def test_engage_accepts_form_encoded_data(server: MixpanelServer) -> None:
    response = requests.post(
        f"{server.url}/engage", timeout=10, data={"data": json.dumps([update(**{"$set": {"a": 1}})]), "verbose": "1"}
    )
    assert response.json() == {"error": None, "status": 1}
    assert server.profiles() == {"user-1": {"a": 1}}


def test_engage_refuses_more_than_2000_updates(server: MixpanelServer) -> None:
    response = post_engage(
        server, [update(f"u{i}", **{"$set": {"a": 1}}) for i in range(2001)], params={"verbose": "2"}
    )
    assert response.status_code == 400
    assert "2000" in response.json()["error"]
    assert server.profiles() == {}


# ---------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("status", [500, 502, 503, 429, 413, 401])
def test_http_fault_answers_its_status_and_stores_nothing(server: MixpanelServer, status: int) -> None:
    server.faults.push(Fault.http(status))
    faulted = post_import(server, [event("a1")])
    after = post_import(server, [event("a2")])
    assert faulted.status_code == status
    assert after.status_code == 200
    assert [e["properties"]["$insert_id"] for e in server.raw_events()] == ["a2"]
    assert server.faults.served == {str(status): 1}
    assert server.requests_log()[0]["fault"] == str(status)


def test_rate_limit_fault_has_mixpanels_body(server: MixpanelServer) -> None:
    server.faults.push(Fault.rate_limited())
    response = post_import(server, [event()])
    assert response.json() == {
        "code": 429,
        "error": "Project exceeded rate limits. Please retry the request with exponential backoff.",
        "status": "Too Many Requests",
    }


def test_gateway_faults_answer_html_not_json(server: MixpanelServer) -> None:
    server.faults.push(Fault.http(502), Fault.http(503))
    for status in (502, 503):
        response = post_import(server, [event()])
        assert response.status_code == status
        assert response.headers["Content-Type"].startswith("text/html")


def test_reject_fault_fails_chosen_events_and_stores_the_rest(server: MixpanelServer) -> None:
    server.faults.push(Fault.reject(insert_ids={"a2"}))
    response = post_import(server, [event("a1"), event("a2"), event("a3")])
    assert response.status_code == 400
    assert response.json()["num_records_imported"] == 2
    assert [(f["index"], f["insert_id"]) for f in response.json()["failed_records"]] == [(1, "a2")]
    assert [e["properties"]["$insert_id"] for e in server.events()] == ["a1", "a3"]
    assert server.faults.served == {"reject": 1}


def test_reject_fault_by_predicate(server: MixpanelServer) -> None:
    server.faults.push(
        Fault.reject(
            predicate=lambda e: e["event"] == "Refund Issued",
            field="properties.Revenue",
            message="'properties.Revenue' is invalid: test",
        )
    )
    response = post_import(server, [event("a1"), event("a2", name="Refund Issued")])
    assert response.json()["failed_records"] == [
        {
            "index": 1,
            "insert_id": "a2",
            "field": "properties.Revenue",
            "message": "'properties.Revenue' is invalid: test",
        }
    ]


def test_slow_fault_outlasts_the_client_timeout_and_stores_nothing(server: MixpanelServer) -> None:
    server.faults.push(Fault.slow(0.6))
    with pytest.raises(requests.Timeout):
        post_import(server, [event("a1")], timeout=0.2)
    time.sleep(0.6)
    assert server.raw_events() == []
    assert server.faults.served == {"slow": 1}


def test_slow_fault_that_stores_is_deduplicated_on_retry(server: MixpanelServer) -> None:
    server.faults.push(Fault.slow(0.4, store=True))
    with pytest.raises(requests.Timeout):
        post_import(server, [event("a1")], timeout=0.1)
    assert post_import(server, [event("a1")]).status_code == 200  # the client's retry
    server.wait_for_events(1)
    time.sleep(0.4)
    assert (len(server.raw_events()), len(server.events())) == (2, 1)


def test_slow_fault_answers_503_to_a_patient_client(server: MixpanelServer) -> None:
    server.faults.push(Fault.slow(0.2))
    started = time.monotonic()
    response = post_import(server, [event()])
    assert (response.status_code, server.raw_events()) == (503, [])
    assert time.monotonic() - started >= 0.2


def test_stop_is_fast_while_a_slow_fault_sleeps() -> None:
    mixpanel = MixpanelServer().start()
    mixpanel.faults.push(Fault.slow(30))
    session = requests.Session()
    with pytest.raises(requests.Timeout):
        session.post(f"{mixpanel.url}/import", params=STRICT, json=[event()], auth=SA, timeout=0.2)
    started = time.monotonic()
    mixpanel.stop()
    assert time.monotonic() - started < 2


def test_disconnect_fault_closes_without_answer(server: MixpanelServer) -> None:
    server.faults.push(Fault.disconnect())
    with pytest.raises(requests.ConnectionError):
        post_import(server, [event()])
    assert server.raw_events() == []
    assert server.requests_log()[0]["status"] is None


def test_faults_can_be_scoped_to_a_path(server: MixpanelServer) -> None:
    server.faults.push(Fault.http(503, path="/engage"))
    assert post_import(server, [event()]).status_code == 200
    assert post_engage(server, [update(**{"$set": {"a": 1}})]).status_code == 503
    assert server.faults.pending == []


def test_faults_apply_to_engage_and_store_nothing(server: MixpanelServer) -> None:
    server.faults.push(Fault.rate_limited())
    response = post_engage(server, [update(**{"$add": {"n": 1}})])
    assert (response.status_code, response.json()["status"]) == (429, 0)
    assert server.profiles() == {}


def test_random_faults_are_reproducible_from_the_seed(server: MixpanelServer) -> None:
    def statuses(seed: int) -> list[int]:
        server.reset()
        server.faults.random(seed, rates={"503": 0.3, "429": 0.2})
        return [post_import(server, [event(f"r{i}")]).status_code for i in range(30)]

    first = statuses(7)
    assert first == statuses(7)
    assert {200, 503, 429} <= set(first)
    assert server.faults.served == {"503": first.count(503), "429": first.count(429)}
    assert len(server.events()) == first.count(200)


def test_random_fault_rates_are_checked(server: MixpanelServer) -> None:
    with pytest.raises(ValueError, match="unknown fault names"):
        server.faults.random(1, rates={"504": 0.1})
    with pytest.raises(ValueError, match="at most 1"):
        server.faults.random(1, rates={"503": 0.7, "429": 0.7})


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="status 404"):
        Fault.http(404)
    with pytest.raises(ValueError, match="insert_ids or a predicate"):
        Fault.reject()


def test_latency_is_added_to_every_request() -> None:
    with MixpanelServer(latency_s=0.2) as mixpanel:
        started = time.monotonic()
        post_import(mixpanel, [event()])
        post_engage(mixpanel, [update(**{"$set": {"a": 1}})])
        assert time.monotonic() - started >= 0.4


# ---------------------------------------------------------------------------------------- persistence


def test_sqlite_keeps_events_and_profiles_across_restarts(tmp_path: Path) -> None:
    db = str(tmp_path / "mixpanel.sqlite3")
    with MixpanelServer(db_path=db) as first:
        post_import(first, [event("a1"), event("a2")])
        post_engage(first, [update(**{"$add": {"n": 1}})])
    with MixpanelServer(db_path=db) as second:
        post_engage(second, [update(**{"$add": {"n": 1}})])
        assert [e["properties"]["$insert_id"] for e in second.events()] == ["a1", "a2"]
        assert second.profiles() == {"user-1": {"n": 2}}
        assert len(second.requests_log()) == 3


def test_runs_standalone_from_the_command_line(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "standalone.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.mixpanel_server", "--port", str(port), "--db", str(db)],
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(f"{url}/api/summary", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the standalone server did not start"
                time.sleep(0.1)
        response = requests.post(f"{url}/import", params=STRICT, json=[event()], auth=SA, timeout=10)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    with MixpanelServer(db_path=str(db)) as again:
        assert again.events() == [event()]


def test_restarting_the_same_server_keeps_its_url() -> None:
    mixpanel = MixpanelServer().start()
    url = mixpanel.url
    mixpanel.stop()
    with mixpanel:
        assert mixpanel.url == url
        assert post_import(mixpanel, [event()]).status_code == 200


def test_reset_forgets_everything(server: MixpanelServer) -> None:
    server.faults.push(Fault.http(500), Fault.http(500))
    post_import(server, [event()])
    post_engage(server, [update(**{"$set": {"a": 1}})])
    server.reset()
    assert (server.raw_events(), server.profiles(), server.requests_log(), server.spec_violations()) == ([], {}, [], [])
    assert (server.faults.pending, server.faults.served) == ([], {})


# ----------------------------------------------------------------------------------------- spec checks


def test_the_spec_is_the_verbatim_copy_of_mixpanels() -> None:
    reference = Path(__file__).parents[1] / "fixtures" / "mixpanel" / "ingestion.openapi.yaml"
    digest = hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(reference.read_bytes()).hexdigest()
    assert digest == "0d1193e7fa0b1af4b5e70af8cacaf555ebbf3edd4051088d8db0f67aa5c0a95c"


def test_well_formed_requests_have_no_spec_violations(server: MixpanelServer) -> None:
    post_import(server, [event("a1")], compress=True)
    post_import(server, [event("a2")], ndjson=True)
    post_import(server, [event("a3")], auth=TOKEN, params={"strict": "1"})  # documented: no project_id with a token
    post_engage(
        server,
        [
            update(**{op: value})
            for op, value in [
                ("$set", {"a": 1}),
                ("$set_once", {"b": 1}),
                ("$add", {"n": 1}),
                ("$union", {"l": ["x"]}),
                ("$append", {"m": "y"}),
                ("$remove", {"l": "x"}),
                ("$unset", ["b"]),
                ("$delete", None),
            ]
        ],
        params={"verbose": "2", "ip": "0"},
    )
    assert server.spec_violations() == []


def test_spec_check_catches_a_request_mixpanels_spec_does_not_allow(server: MixpanelServer) -> None:
    bad = event(time=NOW + 0.5)  # the spec says integer
    bad["extra"] = True  # the spec allows only event and properties
    post_import(server, [bad], params={"project_id": "1"})  # and strict is required
    post_engage(server, [update(**{"$add": {"n": "1"}})], params={"verbose": "1", "ip": "2"})
    found = {(v["path"], v["operation"], v["where"]) for v in server.spec_violations()}
    assert found == {
        ("/import", "import-events", "query.strict"),
        ("/import", "import-events", "body[0].properties.time"),
        ("/import", "import-events", "body[0]"),
        ("/engage", "profile-batch-update", "query.ip"),
        ("/engage", "profile-numerical-add", "body[0].$add.n"),
    }


def test_spec_check_can_be_turned_off_for_benchmarks() -> None:
    with MixpanelServer(validate_spec=False) as mixpanel:
        post_import(mixpanel, [event()], params={"project_id": "1"})
        assert mixpanel.spec_violations() == []


# ------------------------------------------------------------------------------------------ page APIs


def test_events_api_filters_by_name_and_user_newest_first(server: MixpanelServer) -> None:
    post_import(server, [event("a1"), event("a2", name="Refund Issued"), event("a3", distinct_id="someone-else")])
    everything = requests.get(f"{server.url}/api/events", timeout=10).json()
    assert [e["properties"]["$insert_id"] for e in everything["events"]] == ["a3", "a2", "a1"]
    assert everything["names"] == ["Purchase Completed", "Refund Issued"]
    by_name = requests.get(f"{server.url}/api/events", params={"name": "Refund Issued"}, timeout=10).json()
    by_user = requests.get(f"{server.url}/api/events", params={"user": "ELSE"}, timeout=10).json()
    assert [e["properties"]["$insert_id"] for e in by_name["events"]] == ["a2"]
    assert [e["properties"]["$insert_id"] for e in by_user["events"]] == ["a3"]


def test_revenue_api_nets_refunds_per_day_and_currency(server: MixpanelServer) -> None:
    day = 1_718_000_000  # 2024-06-10 UTC
    post_import(
        server,
        [
            event("a1", time=day),
            event("a2", time=day + 60, Revenue=7.5),
            event("a3", time=day, name="Refund Issued", Revenue=5),
            event("a4", time=day + 86_400, Revenue=1000, Currency="jpy"),
            event("a5", Revenue=None),
        ],
    )
    rows = requests.get(f"{server.url}/api/revenue", timeout=10).json()["rows"]
    assert rows == [
        {"day": "2024-06-10", "currency": "USD", "gross": 20.0, "refunds": 5.0, "net": 15.0, "events": 3},
        {"day": "2024-06-11", "currency": "JPY", "gross": 1000.0, "refunds": 0.0, "net": 1000.0, "events": 1},
    ]


def test_dead_letters_api(server: MixpanelServer) -> None:
    assert requests.get(f"{server.url}/api/dead-letters", timeout=10).json() == {"connected": False, "items": []}
    with MixpanelServer(dead_letters=lambda: [{"id": "m1", "reason": "400 from Mixpanel"}]) as connected:
        answer = requests.get(f"{connected.url}/api/dead-letters", timeout=10).json()
    assert answer == {"connected": True, "items": [{"id": "m1", "reason": "400 from Mixpanel"}]}


def test_page_is_served_without_external_resources(server: MixpanelServer) -> None:
    page = requests.get(server.url, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "https://" not in page.text and "http://" not in page.text.replace("http://www.w3.org/2000/svg", "")
