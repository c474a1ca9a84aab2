"""Mixpanel's ingestion rules: the limits of `/import` and `/engage`, why a record is refused, what is stored.

Every rule comes from Mixpanel's docs and OpenAPI spec, as collected with sources in the team's Mixpanel facts
file; where the docs contradict each other the strictest reading wins, so code that passes here does not fail
against the real service. Pure functions: no HTTP, no storage.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard

from .auth import same_secret

# Limits and rules of POST /import (docs.mixpanel.com/reference/import-events).
MAX_EVENTS_PER_REQUEST = 2000
# The spec's 413 example says 2,097,152 bytes; the prose now says 10MB. The stricter one is enforced.
MAX_REQUEST_BYTES = 2_097_152
MAX_EVENT_BYTES = 1024 * 1024  # "Each event must be smaller than 1MB of uncompressed JSON"
MAX_PROPERTIES = 255  # "fewer than 255 properties" (and keys per nested object)
MAX_ARRAY_ITEMS = 255  # "fewer than 255 elements"
MAX_NESTING_DEPTH = 3
MAX_STRING_CHARS = 255  # "We truncate all strings down to 255 characters"
MAX_INSERT_ID_BYTES = 36
EARLIEST_TIME_S = 31_536_000  # 1971-01-01T00:00:00Z
MAX_FUTURE_S = 3600
# A time at or above this is milliseconds (it is year 5138 in seconds, 1973 in milliseconds).
MILLISECONDS_FROM = 100_000_000_000
# Placeholder ids Mixpanel rejects as distinct_id and as $insert_id (compared case-insensitively here).
BLOCKED_IDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "anon",
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "na",
        "undefined",
        "unknown",
        "<nil>",
        "0",
        "-1",
        "true",
        "false",
        "[]",
        "{}",
    }
)
INSERT_ID_PATTERN = re.compile(r"[A-Za-z0-9-]+")

# POST /engage (docs.mixpanel.com/docs/data-structure/user-profiles, reference/user-profile-limits).
ENGAGE_OPERATIONS = ("$set", "$set_once", "$add", "$union", "$append", "$remove", "$unset", "$delete")
MAX_PROFILE_UPDATES_PER_REQUEST = 2000
MAX_PROFILE_UPDATE_BYTES = 1024 * 1024
# Operations that create a missing profile; $unset and $remove on a missing profile change nothing.
_CREATING_OPERATIONS = frozenset({"$set", "$set_once", "$add", "$union", "$append"})
# POST /groups (docs: group profiles; "The Groups API has the same 2000 and 1 MB limits"; `$add` and `$append`
# are "not supported in group profiles").
GROUP_OPERATIONS = ("$set", "$set_once", "$unset", "$remove", "$union", "$delete")
MAX_GROUP_UPDATES_PER_REQUEST = 2000
# POST /track (reference/track-event: "Last 5 days only"; the same per-event limits as /import).
TRACK_MAX_AGE_S = 5 * 86_400
# The ingestion endpoints this server implements (the browser SDK posts to them with a trailing slash).
INGESTION_PATHS = ("/import", "/engage", "/groups", "/track")


@dataclass(frozen=True)
class FailedRecord:
    """One entry of a strict `/import` 400's `failed_records`, shaped like Mixpanel's."""

    index: int
    insert_id: str
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "insert_id": self.insert_id, "field": self.field, "message": self.message}


def _failed(index: int, insert_id: str, field_name: str, reason: str) -> FailedRecord:
    return FailedRecord(index, insert_id, field_name, f"'{field_name}' is invalid: {reason}")


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_blocked(value: str) -> bool:
    return value.strip().lower() in BLOCKED_IDS


def event_time_ms(value: float) -> int:
    """Mixpanel's time in milliseconds: it accepts seconds or milliseconds and stores millisecond precision."""
    return round(value) if value >= MILLISECONDS_FROM else round(value * 1000)


def validate_event(index: int, event: Any, now_s: float, *, check_size: bool = True) -> FailedRecord | None:
    """Why Mixpanel's strict `/import` would reject this event, or None when it is accepted.

    `check_size=False` skips measuring the event, for bodies too small to hold a 1MB event.
    """
    if not isinstance(event, dict):
        return _failed(index, "", "event", "each record must be a JSON object")
    props = event.get("properties")
    insert_id = props.get("$insert_id") if isinstance(props, dict) else None
    insert_id = insert_id if isinstance(insert_id, str) else ""
    name = event.get("event")
    if not isinstance(name, str) or not name.strip():
        return _failed(index, insert_id, "event", "must be a non-empty string")
    if not isinstance(props, dict):
        return _failed(index, insert_id, "properties", "must be a JSON object")

    when = props.get("time")
    if not is_number(when):
        return _failed(index, insert_id, "properties.time", "must be specified as seconds since epoch")
    seconds = event_time_ms(when) / 1000
    if seconds < EARLIEST_TIME_S:
        return _failed(index, insert_id, "properties.time", "must not be before 1971-01-01")
    if seconds > now_s + MAX_FUTURE_S:
        return _failed(index, insert_id, "properties.time", "must not be more than 1 hour in the future")

    if "distinct_id" not in props:
        return _failed(index, insert_id, "properties.distinct_id", "must be specified")
    distinct_id = props["distinct_id"]
    if not isinstance(distinct_id, str):
        return _failed(index, insert_id, "properties.distinct_id", "must be a string")
    if _is_blocked(distinct_id):
        return _failed(index, insert_id, "properties.distinct_id", f"{distinct_id!r} is a placeholder value")

    raw_insert_id = props.get("$insert_id")
    if raw_insert_id is None or raw_insert_id == "":
        return _failed(index, insert_id, "$insert_id", "must be specified")
    if not isinstance(raw_insert_id, str):
        return _failed(index, insert_id, "$insert_id", "must be a string")
    if len(raw_insert_id.encode()) > MAX_INSERT_ID_BYTES:
        return _failed(index, insert_id, "$insert_id", f"must be at most {MAX_INSERT_ID_BYTES} bytes")
    if not INSERT_ID_PATTERN.fullmatch(raw_insert_id):
        return _failed(index, insert_id, "$insert_id", "must only contain alphanumeric or hyphen '-' characters")
    if _is_blocked(raw_insert_id):
        return _failed(index, insert_id, "$insert_id", f"{raw_insert_id!r} is a placeholder value")

    if len(props) >= MAX_PROPERTIES:
        return _failed(index, insert_id, "properties", f"must have fewer than {MAX_PROPERTIES} properties")
    for key, value in props.items():
        problem = _structure_problem(value, 0)
        if problem:
            return _failed(index, insert_id, f"properties.{key}", problem)
    if check_size and len(compact_json(event).encode()) >= MAX_EVENT_BYTES:
        return _failed(index, insert_id, "properties", "the event must be smaller than 1MB of uncompressed JSON")
    return None


def _structure_problem(value: Any, depth: int) -> str | None:
    """Nested objects: depth <= 3 and < 255 keys; arrays: < 255 elements (at any depth)."""
    if isinstance(value, dict):
        depth += 1
        if depth > MAX_NESTING_DEPTH:
            return f"nested objects must have a max nesting depth of {MAX_NESTING_DEPTH}"
        if len(value) >= MAX_PROPERTIES:
            return f"nested objects must have fewer than {MAX_PROPERTIES} keys"
        children: Iterable[Any] = value.values()
    elif isinstance(value, list):
        if len(value) >= MAX_ARRAY_ITEMS:
            return f"lists must have fewer than {MAX_ARRAY_ITEMS} elements"
        children = value
    else:
        return None
    for child in children:
        problem = _structure_problem(child, depth)
        if problem:
            return problem
    return None


def truncated(value: Any) -> Any:
    """What Mixpanel stores: every string value cut to 255 characters."""
    if isinstance(value, str):
        return value[:MAX_STRING_CHARS]
    if isinstance(value, dict):
        return {key: truncated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [truncated(item) for item in value]
    return value


def validate_profile_update(record: Any, project_token: str, request_authenticated: bool) -> str | None:
    """Why Mixpanel's `/engage` would refuse this update (its "Engage API error: ..." text), or None.

    Without Basic auth on the request, each record proves its project with `$token`; with it, a `$token`
    that is present must still be this project's.
    """
    if not isinstance(record, dict):
        return "Engage API error: each update must be a JSON object"
    token = record.get("$token")
    if not request_authenticated and (not isinstance(token, str) or not token):
        return "Engage API error: $token, missing or empty"
    if token is not None and project_token and not (isinstance(token, str) and same_secret(token, project_token)):
        return "Engage API error: $token, not this project's token"
    if token is not None and not project_token and not request_authenticated:
        return "Engage API error: $token, not this project's token"
    distinct_id = record.get("$distinct_id")
    if not isinstance(distinct_id, str) or not distinct_id.strip():
        return "Engage API error: $distinct_id, missing or empty"
    operations = [op for op in ENGAGE_OPERATIONS if op in record]
    if not operations:
        return f"Engage API error: no operation, expected exactly one of {', '.join(ENGAGE_OPERATIONS)}"
    if len(operations) > 1:
        return f"Engage API error: more than one operation ({', '.join(operations)}), expected exactly one"
    operation = operations[0]
    value = record[operation]
    if operation in ("$set", "$set_once", "$append", "$remove", "$add", "$union") and not isinstance(value, dict):
        return f"Engage API error: {operation} must be a JSON object"
    if operation == "$add" and not all(is_number(v) for v in value.values()):
        return "Engage API error: $add values must be numbers"
    if operation == "$union" and not all(isinstance(v, list) for v in value.values()):
        return "Engage API error: $union values must be lists"
    if operation == "$unset" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return "Engage API error: $unset must be a list of property names"
    if len(compact_json(record).encode()) > MAX_PROFILE_UPDATE_BYTES:
        return "Engage API error: update exceeds the 1MB limit"
    return None


def validate_group_update(record: Any, project_token: str, request_authenticated: bool) -> str | None:
    """Why Mixpanel's `/groups` would refuse this update, or None; `$token` proves the project as on `/engage`."""
    if not isinstance(record, dict):
        return "Groups API error: each update must be a JSON object"
    token = record.get("$token")
    if not request_authenticated and (not isinstance(token, str) or not token):
        return "Groups API error: $token, missing or empty"
    if token is not None and not (isinstance(token, str) and project_token and same_secret(token, project_token)):
        return "Groups API error: $token, not this project's token"
    for field in ("$group_key", "$group_id"):
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            return f"Groups API error: {field}, missing or empty"
    unsupported = [op for op in ("$add", "$append") if op in record]
    if unsupported:
        return f"Groups API error: {unsupported[0]} is not supported in group profiles"
    operations = [op for op in GROUP_OPERATIONS if op in record]
    if len(operations) != 1:
        return f"Groups API error: expected exactly one of {', '.join(GROUP_OPERATIONS)}, got {operations or 'none'}"
    operation = operations[0]
    value = record[operation]
    if operation in ("$set", "$set_once", "$remove", "$union") and not isinstance(value, dict):
        return f"Groups API error: {operation} must be a JSON object"
    if operation == "$union" and not all(isinstance(v, list) for v in value.values()):
        return "Groups API error: $union values must be lists"
    if operation == "$unset" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return "Groups API error: $unset must be a list of property names"
    if len(compact_json(record).encode()) > MAX_PROFILE_UPDATE_BYTES:
        return "Groups API error: update exceeds the 1MB limit"
    return None


def validate_track_event(event: Any, now_s: float, project_token: str) -> str | None:
    """Why Mixpanel's `/track` would drop this event, or None: the project token is in `properties.token`, and
    `/track` "will only validate events with timestamps within the last 5 days"."""
    if not isinstance(event, dict):
        return "each event must be a JSON object"
    name = event.get("event")
    if not isinstance(name, str) or not name.strip():
        return "'event' must be a non-empty string"
    props = event.get("properties")
    if not isinstance(props, dict):
        return "'properties' must be a JSON object"
    token = props.get("token")
    if not isinstance(token, str) or not project_token or not same_secret(token, project_token):
        return "'properties.token' is not this project's token"
    when = props.get("time")
    if when is not None:
        if not is_number(when):
            return "'properties.time' must be a number of seconds or milliseconds since epoch"
        seconds = event_time_ms(when) / 1000
        if seconds < now_s - TRACK_MAX_AGE_S:
            return "'properties.time' is more than 5 days old: /track only ingests the last 5 days"
        if seconds > now_s + MAX_FUTURE_S:
            return "'properties.time' is more than 1 hour in the future"
    distinct_id = props.get("distinct_id")
    if distinct_id is not None and (not isinstance(distinct_id, str | int) or _is_blocked(str(distinct_id))):
        return "'properties.distinct_id' is a placeholder value"
    insert_id = props.get("$insert_id")
    if insert_id is not None and (
        not isinstance(insert_id, str)
        or len(insert_id.encode()) > MAX_INSERT_ID_BYTES
        or not INSERT_ID_PATTERN.fullmatch(insert_id)
    ):
        return "'$insert_id' must be at most 36 alphanumeric or '-' characters"
    if len(props) >= MAX_PROPERTIES:
        return f"'properties' must have fewer than {MAX_PROPERTIES} properties"
    return None


def apply_profile_update(profile: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any] | None:
    """The profile after one valid update, as Mixpanel documents each operation (None: no profile)."""
    operation = next(op for op in ENGAGE_OPERATIONS if op in record)
    value = record[operation]
    if operation == "$delete":
        return None
    if profile is None and operation not in _CREATING_OPERATIONS:
        return None
    props = dict(profile or {})
    if operation == "$set":
        props.update(truncated(value))
    elif operation == "$set_once":
        for key, item in truncated(value).items():
            props.setdefault(key, item)
    elif operation == "$add":  # not idempotent: a retried $add counts twice
        for key, amount in value.items():
            current = props.get(key)
            if current is None:
                props[key] = amount
            elif is_number(current):
                props[key] = current + amount
    elif operation == "$union":
        for key, items in truncated(value).items():
            merged = list(props[key]) if isinstance(props.get(key), list) else []
            merged.extend(item for item in items if item not in merged)
            props[key] = _unique(merged)
    elif operation == "$append":  # no duplicate check, by design
        for key, item in truncated(value).items():
            current = props.get(key)
            props[key] = [*current, item] if isinstance(current, list) else [item]
    elif operation == "$remove":
        for key, item in value.items():
            if isinstance(props.get(key), list):
                props[key] = [x for x in props[key] if x != item]
    elif operation == "$unset":
        for key in value:
            props.pop(key, None)
    return props


def _unique(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
