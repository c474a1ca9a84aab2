"""Requests to the local Mixpanel as the unit tests send them, over real HTTP with `requests`, as the forwarder does."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import requests

from devstack.mixpanel import DEMO_CREDENTIALS, MixpanelServer

SA = (DEMO_CREDENTIALS.username, DEMO_CREDENTIALS.secret)
TOKEN = (DEMO_CREDENTIALS.project_token, "")
STRICT = {"strict": "1", "project_id": DEMO_CREDENTIALS.project_id}
NOW = int(time.time())
ABSENT = object()  # marks a property to leave out of an event


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
