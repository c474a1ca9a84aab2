"""The Mixpanel client against the Mixpanel test server over HTTP: batching, limits, outcomes, auth, backoff.

Every test sends real HTTP requests. Most go to `devstack.mixpanel`; a few answers it never gives
(the prose docs' `$insert_id` key, a connection closed halfway through an answer) come from a small scripted
HTTP server below.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from revenue_webhooks.config import MIXPANEL_HOSTS, from_environ
from revenue_webhooks.domain.outcomes import Outcome
from revenue_webhooks.mixpanel import client as mixpanel
from revenue_webhooks.mixpanel.client import Backoff, Credentials, MixpanelClient

from devstack.mixpanel import DEMO_CREDENTIALS, Fault, MixpanelServer

NOW = int(time.time())
SERVICE_ACCOUNT = Credentials(
    project_id=DEMO_CREDENTIALS.project_id,
    username=DEMO_CREDENTIALS.username,
    secret=DEMO_CREDENTIALS.secret,
    project_token=DEMO_CREDENTIALS.project_token,
)
PROJECT_TOKEN = Credentials(project_token=DEMO_CREDENTIALS.project_token)
TINY_BACKOFF = Backoff(base_s=0.01, cap_s=0.05, jitter_s=(0.0, 0.01))


@pytest.fixture
def server() -> Iterator[MixpanelServer]:
    with MixpanelServer() as running:
        yield running


def client_for(
    url: str,
    credentials: Credentials = SERVICE_ACCOUNT,
    *,
    timeout: tuple[float, float] = (1.0, 2.0),
    backoff: Backoff = TINY_BACKOFF,
) -> MixpanelClient:
    return MixpanelClient(url, credentials, timeout=timeout, backoff=backoff)


def event(n: int, **properties: Any) -> dict[str, Any]:
    props = {"time": NOW - n, "distinct_id": f"user-{n % 7}", "$insert_id": f"ins-{n:08d}", "ip": "0"}
    return {"event": "Purchase Completed", "properties": {**props, **properties}}


def profile(n: int, **record: Any) -> dict[str, Any]:
    return {"$token": DEMO_CREDENTIALS.project_token, "$distinct_id": f"user-{n}", "$set": {"Purchases": n}, **record}


def outcomes(results: list[mixpanel.Result]) -> list[Outcome]:
    return [result.outcome for result in results]


def stored_ids(server: MixpanelServer) -> list[str]:
    return sorted(e["properties"]["$insert_id"] for e in server.events())


# ------------------------------------------------------------------------------------- batches and limits


def test_many_events_go_in_requests_of_at_most_2000(server: MixpanelServer) -> None:
    events = [event(n) for n in range(4500)]

    results = client_for(server.url).import_events(events)

    assert set(outcomes(results)) == {Outcome.DELIVERED}
    assert sorted(r["records"] for r in server.requests_log("/import")) == [500, 2000, 2000]
    assert stored_ids(server) == sorted(e["properties"]["$insert_id"] for e in events)
    assert len(server.raw_events()) == 4500  # each event sent once
    assert server.spec_violations() == []


def test_large_events_are_split_by_the_byte_budget(server: MixpanelServer) -> None:
    notes = {f"Note {i}": "x" * 250 for i in range(8)}  # about 2.2 KB per event
    events = [event(n, **notes) for n in range(1200)]

    results = client_for(server.url).import_events(events)

    assert set(outcomes(results)) == {Outcome.DELIVERED}
    log = server.requests_log("/import")
    assert len(log) >= 2, "1200 events of 2.2 KB do not fit one request"
    assert all(r["uncompressed_bytes"] <= mixpanel.MAX_REQUEST_BYTES for r in log)
    assert [r["status"] for r in log] == [200] * len(log)
    assert sum(r["records"] for r in log) == 1200
    assert len(server.events()) == 1200


def test_413_splits_the_request_in_half(server: MixpanelServer) -> None:
    server.faults.push(Fault.http(413, path="/import"))
    events = [event(n) for n in range(100)]

    results = client_for(server.url).import_events(events)

    assert set(outcomes(results)) == {Outcome.DELIVERED}
    assert [(r["records"], r["status"]) for r in server.requests_log("/import")] == [(100, 413), (50, 200), (50, 200)]
    assert len(server.events()) == 100


def test_a_request_mixpanel_finds_too_large_is_split_until_it_fits(
    server: MixpanelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a budget above the server's 2 MiB limit, the first request really is too large.
    monkeypatch.setattr(mixpanel, "MAX_REQUEST_BYTES", 8 * 1024 * 1024)
    notes = {f"Note {i}": "y" * 250 for i in range(8)}
    events = [event(n, **notes) for n in range(1200)]

    results = client_for(server.url).import_events(events)

    assert set(outcomes(results)) == {Outcome.DELIVERED}
    log = server.requests_log("/import")
    assert (log[0]["status"], log[0]["fault"], log[0]["records"]) == (413, None, None)
    assert [r["status"] for r in log[1:]] == [200] * (len(log) - 1)
    assert len(server.events()) == 1200


def test_a_single_event_answered_413_is_invalid_not_retried(server: MixpanelServer) -> None:
    server.faults.push(Fault.http(413, path="/import"))

    (result,) = client_for(server.url).import_events([event(1)], deadline=time.monotonic() + 5)

    assert (result.outcome, result.reason) == (Outcome.INVALID, "mixpanel_413")
    assert "max limit" in result.detail
    assert len(server.requests_log("/import")) == 1


def test_requests_are_gzipped_strict_json_that_mixpanel_decodes(server: MixpanelServer) -> None:
    events = [event(n, Revenue=12.5, Currency="USD") for n in range(50)]

    client_for(server.url).import_events(events)

    (logged,) = server.requests_log("/import")
    assert logged["headers"]["content-encoding"] == "gzip"
    assert logged["headers"]["content-type"] == "application/json"
    assert logged["query"]["strict"] == "1"
    assert logged["body_bytes"] < logged["uncompressed_bytes"]
    assert logged["records"] == 50
    assert server.events() == events  # what arrived, byte for byte once decoded
    assert server.spec_violations() == []


# ------------------------------------------------------------------------------------------- strict 400


def test_strict_400_marks_exactly_the_failed_records_by_index(server: MixpanelServer) -> None:
    events = [event(n) for n in range(10)]
    events[2]["properties"]["$insert_id"] = "purchase_ORD-2"  # "_" is not allowed
    events[5]["properties"]["distinct_id"] = "undefined"  # a placeholder Mixpanel refuses
    events[7]["properties"]["time"] = NOW + 7200  # more than an hour in the future

    results = client_for(server.url).import_events(events, deadline=time.monotonic() + 5)

    invalid = {i: r for i, r in enumerate(results) if r.outcome is not Outcome.DELIVERED}
    assert sorted(invalid) == [2, 5, 7]
    assert {r.reason for r in invalid.values()} == {"mixpanel_rejected_event"}
    assert invalid[2].field == "$insert_id" and "alphanumeric" in invalid[2].detail
    assert invalid[5].field == "properties.distinct_id"
    assert invalid[7].field == "properties.time"
    # The valid events of the request were ingested, and the invalid ones are not retried.
    assert len(server.events()) == 7
    assert len(server.requests_log("/import")) == 1


def test_strict_400_from_an_injected_rejection(server: MixpanelServer) -> None:
    events = [event(n) for n in range(20)]
    chosen = {"ins-00000003", "ins-00000011"}
    server.faults.push(Fault.reject(insert_ids=chosen, field="properties.Revenue", message="bad revenue"))

    results = client_for(server.url).import_events(events)

    rejected = {events[i]["properties"]["$insert_id"] for i, r in enumerate(results) if r.outcome is Outcome.INVALID}
    assert rejected == chosen
    assert {(r.field, r.detail) for r in results if r.outcome is Outcome.INVALID} == {
        ("properties.Revenue", "bad revenue")
    }
    assert set(stored_ids(server)) == {e["properties"]["$insert_id"] for e in events} - chosen


class Scripted:
    """An HTTP server answering each POST with the next scripted (status, JSON body), recording the bodies."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.bodies: list[bytes] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                scripted.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload = scripted.answers.pop(0)
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def strict_400(*failed: dict[str, Any]) -> tuple[int, Any]:
    """The prose docs' shape: `error` and `failed_records`."""
    return 400, {
        "code": 400,
        "error": "some data points in the request failed validation",
        "failed_records": list(failed),
        "num_records_imported": 4 - len(failed),
        "status": "Bad Request",
    }


@pytest.mark.parametrize(
    "failed",
    [
        pytest.param({"index": 2, "$insert_id": "ins-00000002"}, id="prose-key-with-index"),
        pytest.param({"$insert_id": "ins-00000002"}, id="prose-key-without-index"),
        pytest.param({"index": 2, "insert_id": "ins-00000002"}, id="spec-key"),
        pytest.param({"index": 0, "insert_id": "ins-00000002"}, id="index-contradicted-by-the-insert-id"),
        pytest.param({"index": 2}, id="index-only"),
    ],
)
def test_failed_records_are_matched_by_index_and_insert_id(failed: dict[str, Any]) -> None:
    record = {**failed, "field": "properties.time", "message": "'properties.time' is invalid"}
    scripted = Scripted(strict_400(record))
    try:
        results = client_for(scripted.url).import_events([event(n) for n in range(4)])
    finally:
        scripted.close()

    assert outcomes(results) == [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.INVALID, Outcome.DELIVERED]
    assert (results[2].field, results[2].detail) == ("properties.time", "'properties.time' is invalid")


def test_a_failed_record_that_matches_no_event_rejects_the_whole_request() -> None:
    scripted = Scripted(strict_400({"index": 9, "$insert_id": "someone-else", "message": "?"}))
    try:
        results = client_for(scripted.url).import_events([event(n) for n in range(4)])
    finally:
        scripted.close()

    assert {(r.outcome, r.reason) for r in results} == {(Outcome.INVALID, "mixpanel_rejected_request")}
    assert "someone-else" in results[0].detail


# ----------------------------------------------------------------------------------------------- /engage


def test_engage_sends_verbose_uncompressed_batches_of_at_most_2000(server: MixpanelServer) -> None:
    results = client_for(server.url).update_profiles([profile(n) for n in range(2500)])

    assert set(outcomes(results)) == {Outcome.DELIVERED}
    log = server.requests_log("/engage")
    assert [r["records"] for r in log] == [2000, 500]
    assert all(r["query"]["verbose"] == "1" and "content-encoding" not in r["headers"] for r in log)
    assert len(server.profiles()) == 2500
    assert server.spec_violations() == []


def test_engage_200_with_an_error_body_is_invalid(server: MixpanelServer) -> None:
    bad = profile(1)
    del bad["$distinct_id"]

    (result,) = client_for(server.url).update_profiles([bad])

    (logged,) = server.requests_log("/engage")
    assert logged["status"] == 200  # /engage says "OK" ...
    assert (result.outcome, result.reason) == (Outcome.INVALID, "mixpanel_engage_rejected")
    assert "$distinct_id" in result.detail  # ... and the body says why it was not


def test_engage_transient_and_config_answers(server: MixpanelServer) -> None:
    server.faults.push(Fault.http(503, path="/engage"), Fault.http(401, path="/engage"))
    client = client_for(server.url)

    assert outcomes(client.update_profiles([profile(1)])) == [Outcome.TRANSIENT]
    assert outcomes(client.update_profiles([profile(1)])) == [Outcome.CONFIG]
    assert outcomes(client.update_profiles([profile(1)])) == [Outcome.DELIVERED]


def test_engage_is_not_started_past_the_deadline(server: MixpanelServer) -> None:
    results = client_for(server.url).update_profiles([profile(1)], deadline=time.monotonic() + 0.1)

    assert [(r.outcome, r.reason) for r in results] == [(Outcome.TRANSIENT, "not_sent")]
    assert server.requests_log() == []


# -------------------------------------------------------------------------------------- auth and hosts


def test_service_account_auth_sends_basic_auth_and_the_project_id(server: MixpanelServer) -> None:
    client_for(server.url, SERVICE_ACCOUNT).import_events([event(1)])

    (logged,) = server.requests_log("/import")
    assert logged["auth"] == "service_account"
    assert logged["headers"]["authorization"].startswith("Basic ")
    assert logged["query"] == {"strict": "1", "project_id": DEMO_CREDENTIALS.project_id}


def test_project_token_auth_sends_the_token_as_username_without_a_project_id(server: MixpanelServer) -> None:
    client_for(server.url, PROJECT_TOKEN).import_events([event(1)])

    (logged,) = server.requests_log("/import")
    assert logged["auth"] == "project_token"
    assert logged["headers"]["authorization"].startswith("Basic ")
    assert logged["query"] == {"strict": "1"}
    assert len(server.events()) == 1


def test_credentials_mixpanel_refuses_are_a_configuration_error(server: MixpanelServer) -> None:
    wrong = Credentials(project_id="1", username=DEMO_CREDENTIALS.username, secret="rotated-away")

    results = client_for(server.url, wrong).import_events([event(1), event(2)], deadline=time.monotonic() + 5)

    assert {(r.outcome, r.reason) for r in results} == {(Outcome.CONFIG, "mixpanel_401")}
    assert len(server.requests_log("/import")) == 1, "a retry cannot fix credentials"
    assert server.raw_events() == []


class _Unreachable(HTTPAdapter):
    """A transport that records where a request was going and fails as an unreachable host does."""

    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.seen.append(str(request.url))
        raise requests.ConnectionError("no network in tests")


@pytest.mark.parametrize("region", sorted(MIXPANEL_HOSTS))
def test_each_region_sends_to_its_residency_host(region: str) -> None:
    settings = from_environ({"MIXPANEL_REGION": region})
    client = client_for(settings.mixpanel_base_url)
    seen: list[str] = []
    client.session.mount("https://", _Unreachable(seen))

    (imported,) = client.import_events([event(1)])
    (engaged,) = client.update_profiles([profile(1)])

    host = {"US": "api.mixpanel.com", "EU": "api-eu.mixpanel.com", "IN": "api-in.mixpanel.com"}[region]
    assert seen == [f"https://{host}/import?strict=1&project_id=1", f"https://{host}/engage?verbose=1&ip=0"]
    assert imported.outcome is engaged.outcome is Outcome.TRANSIENT


def test_the_api_url_setting_overrides_the_region_host(server: MixpanelServer) -> None:
    settings = from_environ({"MIXPANEL_REGION": "EU", "MIXPANEL_API_URL": server.url})

    (result,) = client_for(settings.mixpanel_base_url).import_events([event(1)])

    assert result.outcome is Outcome.DELIVERED
    assert len(server.events()) == 1


# ------------------------------------------------------------------------------------ transport failures


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_5xx_and_429_are_transient(server: MixpanelServer, status: int) -> None:
    server.faults.push(Fault.http(status, path="/import"))

    (result,) = client_for(server.url).import_events([event(1)])  # no deadline: one attempt

    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, f"mixpanel_{status}")
    assert len(server.requests_log("/import")) == 1


def test_an_answer_slower_than_the_read_timeout_is_transient(server: MixpanelServer) -> None:
    server.faults.push(Fault.slow(2.0, store=True, path="/import"))
    started = time.monotonic()

    (result,) = client_for(server.url, timeout=(1.0, 0.3)).import_events([event(1)])

    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "mixpanel_timeout")
    assert time.monotonic() - started < 1.5


def test_a_closed_connection_is_transient(server: MixpanelServer) -> None:
    server.faults.push(Fault.disconnect(path="/import"))

    (result,) = client_for(server.url).import_events([event(1)])

    assert (result.outcome, result.reason) == (Outcome.TRANSIENT, "mixpanel_connection_error")


def test_a_connection_closed_halfway_through_the_answer_is_transient() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_half() -> None:
        for _ in range(2):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n{")

    threading.Thread(target=answer_half, daemon=True).start()
    client = client_for(f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        (imported,) = client.import_events([event(1)])
        (engaged,) = client.update_profiles([profile(1)])
    finally:
        listener.close()

    assert (imported.outcome, imported.reason) == (Outcome.TRANSIENT, "mixpanel_request_error")
    assert engaged.outcome is Outcome.TRANSIENT


# ----------------------------------------------------------------------------------------------- backoff


def test_transient_failures_are_retried_within_the_deadline(server: MixpanelServer) -> None:
    server.faults.push(Fault.http(503), Fault.rate_limited(), Fault.disconnect())

    results = client_for(server.url).import_events([event(n) for n in range(5)], deadline=time.monotonic() + 5)

    assert set(outcomes(results)) == {Outcome.DELIVERED}
    assert [r["status"] for r in server.requests_log("/import")] == [503, 429, None, 200]


def test_backoff_stops_at_the_deadline(server: MixpanelServer) -> None:
    server.faults.random(seed=1, rates={"503": 1.0}, path="/import")
    client = client_for(server.url, timeout=(1.0, 0.2), backoff=Backoff(base_s=0.05, cap_s=0.2, jitter_s=(0.0, 0.01)))
    started = time.monotonic()

    results = client.import_events([event(1), event(2)], deadline=started + 1.0)

    elapsed = time.monotonic() - started
    attempts = len(server.requests_log("/import"))
    assert {(r.outcome, r.reason) for r in results} == {(Outcome.TRANSIENT, "mixpanel_503")}
    assert 2 <= attempts <= 10, attempts
    assert elapsed <= 1.0, f"backed off past the deadline: {elapsed:.2f}s"


def test_mixpanels_schedule_starts_at_2s_doubles_to_60s_with_1_to_5s_of_jitter() -> None:
    schedule = Backoff()
    for attempt, base in enumerate([2, 4, 8, 16, 32, 60, 60]):
        assert base + 1 <= schedule.delay(attempt) <= base + 5


def test_defaults_have_timeouts_and_one_pooled_session_reused(server: MixpanelServer) -> None:
    settings = from_environ({})
    assert (settings.mixpanel_connect_timeout_s, settings.mixpanel_read_timeout_s) == (3.05, 20.0)
    assert MixpanelClient(server.url, SERVICE_ACCOUNT).timeout == (3.05, 20.0)

    client = client_for(server.url)
    for n in range(5):
        client.import_events([event(n)])
        client.update_profiles([profile(n)])
    pools = client.session.get_adapter(server.url).poolmanager.pools
    (key,) = pools.keys()
    assert (pools[key].num_requests, pools[key].num_connections) == (10, 1), "ten requests, one kept-alive connection"
