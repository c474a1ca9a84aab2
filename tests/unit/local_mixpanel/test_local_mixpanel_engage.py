"""`/engage`: each profile operation as Mixpanel documents it, its answers, and the updates it refuses."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import requests
from local_mixpanel_calls import SA, post_engage, update

from devstack.mixpanel import DEMO_CREDENTIALS, MixpanelServer


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
