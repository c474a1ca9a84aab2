"""Scripted faults: HTTP errors with Mixpanel's bodies, rejections, slow answers, dropped connections, random mode."""

from __future__ import annotations

import time

import pytest
import requests
from local_mixpanel_calls import SA, STRICT, event, post_engage, post_import, update

from devstack.mixpanel import Fault, MixpanelServer


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
