"""What `/import` and `/engage` do with a decoded, authenticated request: validate, store, answer like Mixpanel.

The server runs the steps every ingestion request shares (latency, request log, auth, spec check, faults);
these functions are the part that differs per endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .bodies import Parsed
from .faults import Fault
from .messages import Reply, import_error
from .rules import (
    MAX_EVENT_BYTES,
    MAX_EVENTS_PER_REQUEST,
    MAX_GROUP_UPDATES_PER_REQUEST,
    MAX_PROFILE_UPDATES_PER_REQUEST,
    FailedRecord,
    truncated,
    validate_event,
    validate_group_update,
    validate_profile_update,
    validate_track_event,
)
from .store import Store


def import_events(
    parsed: Parsed,
    auth: str | None,
    strict: bool,
    store: Store,
    request_id: int,
    reject: Fault | None,
    request_ip: str | None = None,
) -> Reply:
    """`/import`: store the valid events (even when others fail) and answer strict or lenient, as Mixpanel does."""
    if auth is None:
        return import_error(strict, 401, "Invalid credentials")
    if parsed.records is None:
        return import_error(strict, parsed.status, parsed.error or "invalid request")
    events = parsed.records
    if not events:
        return import_error(strict, 400, "request must contain at least one event")
    if len(events) > MAX_EVENTS_PER_REQUEST:
        return import_error(strict, 400, f"request exceeds max limit of {MAX_EVENTS_PER_REQUEST} events")
    now = time.time()
    failures: list[FailedRecord] = []
    valid: list[dict[str, Any]] = []
    check_size = parsed.uncompressed_bytes >= MAX_EVENT_BYTES
    for index, event in enumerate(events):
        failure = validate_event(index, event, now, check_size=check_size)
        if failure is None and reject is not None and reject.rejects(event):
            failure = FailedRecord(index, event["properties"]["$insert_id"], reject.field, reject.message)
        if failure is None:
            valid.append(truncated(event))
        else:
            failures.append(failure)
    if valid:  # Mixpanel ingests the valid events of a request even when others fail
        # "If you do not supply an ip property ... the IP address of the request will be used"; "0" turns it off.
        store.add_events(request_id, valid, [_event_ip(e, request_ip) for e in valid])
    if not strict:
        if valid:
            return Reply.json(200, {"status": 1})
        return Reply.json(200, {"status": 0, "error": failures[0].message})
    if failures:
        return Reply.json(
            400,
            {
                "code": 400,
                "error": "some data points in the request failed validation",
                "failed_records": [f.as_json() for f in failures],
                "num_records_imported": len(valid),
                "status": "Bad Request",
            },
        )
    return Reply.json(200, {"code": 200, "num_records_imported": len(valid), "status": "OK"})


@dataclass(frozen=True)
class Updates:
    """What differs between `/engage` and `/groups`: the error prefix, the noun, the limit, the rules and the store."""

    api: str
    noun: str
    limit: int
    validate: Callable[[Any, str, bool], str | None]
    apply: Callable[[Store, int, list[dict[str, Any]]], None]


# `/engage` applies the valid profile updates in order; `/groups` the group updates, answering as `/engage` does.
ENGAGE = Updates(
    "Engage", "profile", MAX_PROFILE_UPDATES_PER_REQUEST, validate_profile_update, Store.apply_profile_updates
)
GROUPS = Updates("Groups", "group", MAX_GROUP_UPDATES_PER_REQUEST, validate_group_update, Store.apply_group_updates)


def update(
    kind: Updates,
    parsed: Parsed,
    params: dict[str, str],
    auth: str | None,
    project_token: str,
    store: Store,
    request_id: int,
    reject: Fault | None,
) -> Reply:
    """Validate each update (a scripted rejection counts as invalid), apply the valid ones, answer as Mixpanel;
    `params` are the query and form fields together (`verbose`, `strict`)."""
    if auth is None:
        return Reply.json(401, {"error": "Invalid credentials", "status": "error"})
    if parsed.records is None:
        return Reply.json(400, {"error": parsed.error, "status": 0})
    records = parsed.records
    errors: list[tuple[int, str]] = []
    if not records:
        errors.append((0, f"{kind.api} API error: no {kind.noun} updates in the request"))
    elif len(records) > kind.limit:
        errors.append((0, f"{kind.api} API error: more than {kind.limit} updates in one request"))
    valid: list[dict[str, Any]] = []
    if not errors:
        authenticated = auth in ("service_account", "project_token")
        for index, record in enumerate(records):
            error = kind.validate(record, project_token, authenticated)
            if error is None and reject is not None and reject.rejects(record):
                error = f"{kind.api} API error: {reject.message}"
            if error is None:
                valid.append(record)
            else:
                errors.append((index, error))
    if valid:
        kind.apply(store, request_id, valid)
    return _engage_reply(params.get("verbose", "0"), params.get("strict") == "1", errors, bool(valid))


def track_events(
    parsed: Parsed, params: dict[str, str], project_token: str, store: Store, request_id: int, request_ip: str | None
) -> Reply:
    """`/track` (the browser SDK's endpoint): store the events whose `properties.token` is the project's, from the
    last 5 days; answer `1`/`0`, or `{"status", "error"}` with `verbose=1`. With `ip=1` Mixpanel geolocates the
    request's IP; otherwise an event's own `ip` property, if any."""
    verbose = params.get("verbose") == "1"
    if parsed.records is None:
        return _track_reply(verbose, parsed.error or "invalid request", ok=False)
    events = parsed.records
    if not events or len(events) > MAX_EVENTS_PER_REQUEST:
        return _track_reply(verbose, f"a request holds 1 to {MAX_EVENTS_PER_REQUEST} events", ok=False)
    now = time.time()
    valid, errors = [], []
    for event in events:
        error = validate_track_event(event, now, project_token)
        if error is None:
            valid.append(truncated(event))
        else:
            errors.append(error)
    if valid:
        for event in valid:  # /track fills in what the SDK may leave out
            event["properties"].setdefault("time", now)
            event["properties"].setdefault("distinct_id", "")
        by_request = request_ip if params.get("ip") == "1" else None
        store.add_events(request_id, valid, [by_request or _event_ip(e, None) for e in valid])
    return _track_reply(verbose, errors[0] if errors else None, ok=bool(valid))


def _track_reply(verbose: bool, error: str | None, *, ok: bool) -> Reply:
    """ "`1` - One or more objects provided are valid ... `0` - No data objects in the body are valid." """
    if verbose:
        return Reply.json(200, {"error": error, "status": 1 if ok else 0})
    return Reply(200, b"1" if ok else b"0", "text/plain; charset=utf-8")


def _event_ip(event: dict[str, Any], request_ip: str | None) -> str | None:
    """The IP Mixpanel geolocates for an event: its `ip` property ("0": none), else the request's."""
    own = event.get("properties", {}).get("ip")
    if own is not None:
        return None if str(own) == "0" else str(own)
    return request_ip


def _engage_reply(verbose: str, strict: bool, errors: list[tuple[int, str]], any_valid: bool) -> Reply:
    """`1`/`0` as text; `verbose=1` a 200 JSON status; `verbose=2` a real 400 on invalid input."""
    if verbose not in ("1", "2"):
        ok = any_valid  # "1 - One or more objects provided are valid"
        return Reply(200, b"1" if ok else b"0", "text/plain; charset=utf-8")
    payload: dict[str, Any] = {"error": errors[0][1] if errors else None, "status": 0 if errors else 1}
    if strict and errors:
        payload["failed_records"] = [{"index": i, "message": m} for i, m in errors]
    return Reply.json(400 if errors and verbose == "2" else 200, payload)
