"""`/import` as Mixpanel documents it: body formats, limits, strict validation with its field and message."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import requests
from local_mixpanel_calls import ABSENT, NOW, SA, STRICT, event, only_failure, post_import

from devstack.mixpanel import MAX_REQUEST_BYTES, MixpanelServer

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
