"""`/groups` (company profiles), `/track` (the browser SDK's endpoint) and several projects on one local Mixpanel."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import requests
from local_mixpanel_calls import SA, STRICT, event

from devstack.mixpanel import DEMO_CREDENTIALS, Credentials, Fault, MixpanelServer

TOKEN = DEMO_CREDENTIALS.project_token
TEST_PROJECT = Credentials(project_id="2", username="test.2.mp-service-account", secret="s2", project_token="tok-2")


def group(group_id: str = "acme", **record: Any) -> dict[str, Any]:
    return {"$token": TOKEN, "$group_key": "company_id", "$group_id": group_id, **record}


def post_groups(server: MixpanelServer, records: Any, **params: str) -> requests.Response:
    return requests.post(
        f"{server.url}/groups", params={"verbose": "1", "strict": "1", **params}, json=records, timeout=10
    )


def test_group_set_creates_and_overwrites_a_company_profile(server: MixpanelServer) -> None:
    assert post_groups(server, [group(**{"$set": {"Plan": "basic", "Seats": 3}})]).json() == {
        "error": None,
        "status": 1,
    }
    post_groups(server, [group(**{"$set": {"Plan": "pro"}}), group("globex", **{"$set": {"Plan": "team"}})])
    assert server.groups() == {
        ("company_id", "acme"): {"Plan": "pro", "Seats": 3},
        ("company_id", "globex"): {"Plan": "team"},
    }
    assert server.spec_violations() == []


def test_group_union_and_delete_are_checked_against_their_own_operation(server: MixpanelServer) -> None:
    post_groups(server, [group(**{"$union": {"Features": ["alerts"]}})])
    post_groups(server, [group(**{"$delete": None})])
    assert server.groups() == {}
    assert server.spec_violations() == []  # the spec's `required` slips are not held against valid records


def test_groups_refuse_add_append_wrong_tokens_and_missing_ids_by_index(server: MixpanelServer) -> None:
    answer = post_groups(
        server,
        [
            group(**{"$set": {"Plan": "pro"}}),
            group(**{"$add": {"Seats": 1}}),
            {**group(**{"$set": {"Plan": "x"}}), "$token": "not-this-project"},
            {"$token": TOKEN, "$group_key": "company_id", "$set": {"Plan": "x"}},
        ],
    ).json()
    assert answer["status"] == 0
    assert [(r["index"], r["message"]) for r in answer["failed_records"]] == [
        (1, "Groups API error: $add is not supported in group profiles"),
        (2, "Groups API error: $token, not this project's token"),
        (3, "Groups API error: $group_id, missing or empty"),
    ]
    assert server.groups() == {("company_id", "acme"): {"Plan": "pro"}}


def test_group_faults_are_scripted_like_the_other_endpoints(server: MixpanelServer) -> None:
    server.faults.push(Fault.rate_limited(path="/groups"))
    assert post_groups(server, [group(**{"$set": {"Plan": "pro"}})]).status_code == 429
    assert post_groups(server, [group(**{"$set": {"Plan": "pro"}})]).status_code == 200


def test_the_page_lists_company_profiles(server: MixpanelServer) -> None:
    post_groups(server, [group(**{"$set": {"Lifetime Revenue USD": 120.0}})])
    groups = requests.get(f"{server.url}/api/groups", timeout=5).json()["groups"]
    assert [(g["group_key"], g["group_id"], g["properties"]) for g in groups] == [
        ("company_id", "acme", {"Lifetime Revenue USD": 120.0})
    ]
    assert requests.get(f"{server.url}/api/summary", timeout=5).json()["groups"] == 1


def browser_event(name: str = "Checkout Started", **properties: Any) -> dict[str, Any]:
    """An event as mixpanel-browser builds it: fractional seconds, its own $insert_id, the token inside."""
    props = {
        "token": TOKEN,
        "time": time.time(),
        "distinct_id": "user-42",
        "$device_id": "19f3c0a1-dev",
        "$insert_id": "a1b2c3d4e5f6g7h8",
        **properties,
    }
    return {"event": name, "properties": props}


def post_track(
    server: MixpanelServer, events: list[dict[str, Any]], *, ip: str = "1", headers: dict[str, str] | None = None
) -> requests.Response:
    """Posted the way mixpanel-browser posts: form `data=<base64 JSON>` to `track/` with `ip`, `verbose`, `_`."""
    data = base64.b64encode(json.dumps(events).encode()).decode()
    return requests.post(
        f"{server.url}/track/",
        params={"verbose": "1", "ip": ip, "_": str(int(time.time() * 1000))},
        data={"data": data},
        headers=headers or {},
        timeout=10,
    )


def test_track_takes_the_browser_sdk_request_and_geolocates_the_forwarded_ip(server: MixpanelServer) -> None:
    answer = post_track(server, [browser_event()], headers={"X-Real-IP": "203.0.113.7", "X-Forwarded-For": "x"})
    assert answer.json() == {"error": None, "status": 1}
    assert server.events()[0]["properties"]["distinct_id"] == "user-42"
    assert [g["geo_ip"] for g in server.geolocated()] == ["203.0.113.7"]
    assert server.requests_log("/track")[0]["client_ip"] == "203.0.113.7"
    assert server.spec_violations() == []  # fractional time and form bodies are the SDK's own


def test_track_ip_comes_from_forwarded_for_then_the_peer_and_ip0_turns_it_off(server: MixpanelServer) -> None:
    post_track(server, [browser_event(**{"$insert_id": "e1"})], headers={"X-Forwarded-For": "198.51.100.2, 10.0.0.1"})
    post_track(server, [browser_event(**{"$insert_id": "e2"})])
    post_track(server, [browser_event(**{"$insert_id": "e3"})], ip="0", headers={"X-Real-IP": "203.0.113.7"})
    assert [g["geo_ip"] for g in server.geolocated()] == ["198.51.100.2", "127.0.0.1", None]


def test_track_drops_old_events_and_other_projects_tokens(server: MixpanelServer) -> None:
    old = browser_event(time=time.time() - 6 * 86_400)
    foreign = browser_event(token="someone-elses-token")
    assert post_track(server, [old, foreign]).json()["status"] == 0
    assert server.events() == []
    assert requests.post(f"{server.url}/track", data={"data": "[]"}, timeout=5).text == "0"


def test_import_geolocates_the_ip_property_or_the_request(server: MixpanelServer) -> None:
    requests.post(
        f"{server.url}/import",
        params=STRICT,
        json=[event("i1", ip="0"), event("i2", ip="192.0.2.9"), event("i3")],
        auth=SA,
        timeout=10,
    ).raise_for_status()
    assert [g["geo_ip"] for g in server.geolocated()] == [None, "192.0.2.9", "127.0.0.1"]


def test_each_project_gets_what_its_credentials_and_tokens_name() -> None:
    with MixpanelServer(more_projects=[TEST_PROJECT]) as server:
        test = server.project("2")
        requests.post(
            f"{server.url}/import",
            params={"strict": "1", "project_id": "2"},
            json=[event("t1")],
            auth=(TEST_PROJECT.username, TEST_PROJECT.secret),
            timeout=10,
        ).raise_for_status()
        requests.post(f"{server.url}/import", params=STRICT, json=[event("p1")], auth=SA, timeout=10)
        requests.post(
            f"{server.url}/engage",
            params={"verbose": "1"},
            json=[{"$token": "tok-2", "$distinct_id": "u", "$set": {"Plan": "test"}}],
            timeout=10,
        )
        post_track(server, [browser_event(token="tok-2")])
        assert [e["properties"]["$insert_id"] for e in test.events()] == ["t1", "a1b2c3d4e5f6g7h8"]
        assert [e["properties"]["$insert_id"] for e in server.events()] == ["p1"]
        assert test.profiles() == {"u": {"Plan": "test"}} and server.profiles() == {}
        summary = requests.get(f"{server.url}/api/summary", params={"project": "2"}, timeout=5).json()
        assert summary["project_id"] == "2" and summary["projects"] == ["1", "2"] and summary["events"] == 2
        wrong = requests.post(
            f"{server.url}/import", params={"strict": "1", "project_id": "2"}, json=[event("x")], auth=SA, timeout=10
        )
        assert wrong.status_code == 401
