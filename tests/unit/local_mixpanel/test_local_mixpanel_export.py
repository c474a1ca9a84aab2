"""The local Mixpanel's Raw Event Export API, as Mixpanel documents it, and the layer's export client against it."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from local_mixpanel_calls import NOW, SA, TOKEN, event, post_import
from revenue_webhooks.mixpanel.client import Backoff, Credentials
from revenue_webhooks.mixpanel.export import ExportClient, ExportError, deduplicated

from devstack.mixpanel import DEMO_CREDENTIALS, MixpanelServer
from devstack.mixpanel.export import EXPORT_SPEC_PATH, ExportLimits

TODAY = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%d")
DAY_S = 86400


@pytest.fixture
def server() -> Iterator[MixpanelServer]:
    """Mixpanel's export allows 3 queries a second: these tests ask faster (one test holds to the real limit)."""
    with MixpanelServer(export_limits=ExportLimits(per_second=1000, per_hour=1000)) as mixpanel:
        yield mixpanel


def export(server: MixpanelServer, auth: tuple[str, str] | None = SA, **params: str) -> requests.Response:
    query = {"project_id": DEMO_CREDENTIALS.project_id, "from_date": TODAY, "to_date": TODAY, **params}
    headers = {"Accept-Encoding": "gzip"}  # the spec's one value; requests' default "gzip, deflate" is not
    return requests.get(f"{server.url}/api/2.0/export", params=query, auth=auth, headers=headers, timeout=10)


def lines(response: requests.Response) -> list[dict[str, object]]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def client(server: MixpanelServer) -> ExportClient:
    credentials = Credentials.from_secret(DEMO_CREDENTIALS.secret_value())
    return ExportClient(server.url, credentials, backoff=Backoff(0.6, 1.2, (0, 0.1)))


def test_the_spec_is_the_verbatim_copy_of_mixpanels() -> None:
    reference = Path(__file__).parents[2] / "fixtures" / "mixpanel" / "export.openapi.yaml"
    digest = hashlib.sha256(EXPORT_SPEC_PATH.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(reference.read_bytes()).hexdigest()
    assert digest == "eba1d63f3904d259bcb8d187ff2436628d02286882f51b6b3327fb44a61fac14"


def test_raw_events_of_the_days_asked_for_duplicates_included(server: MixpanelServer) -> None:
    post_import(server, [event("a1"), event("a2", name="Refund Issued"), event("old", time=NOW - 3 * DAY_S)])
    post_import(server, [event("a1")])  # a retry: the same event again
    exported = lines(export(server))
    assert sorted(e["properties"]["$insert_id"] for e in exported) == ["a1", "a1", "a2"]  # type: ignore[index]
    first = exported[0]["properties"]
    assert first["time"] == NOW and isinstance(first["mp_processing_time_ms"], int)  # type: ignore[index]
    assert len(deduplicated(exported)) == 2
    only = lines(export(server, event=json.dumps(["Refund Issued"])))
    assert [e["event"] for e in only] == ["Refund Issued"]
    in_ms = lines(export(server, time_in_ms="true", event=json.dumps(["Refund Issued"])))
    assert in_ms[0]["properties"]["time"] == NOW * 1000  # type: ignore[index]
    assert lines(export(server, limit="1")) and len(lines(export(server, limit="1"))) == 1
    assert server.spec_violations() == []


def test_the_client_streams_gzip_and_retries_a_rate_limit() -> None:
    server = MixpanelServer(export_limits=ExportLimits(per_second=1)).start()  # a second query within 1 s: 429
    post_import(server, [event(f"e{i}", Revenue=i) for i in range(60)])
    got = list(client(server).events(TODAY, TODAY, ["Purchase Completed"]))
    again = list(client(server).events(TODAY, TODAY))
    assert len(got) == len(again) == 60
    log = [r for r in server.requests_log() if r["path"] == "/api/2.0/export"]
    assert [r["status"] for r in log][-2:] in ([200, 200], [429, 200])
    assert 429 in [r["status"] for r in log]
    time.sleep(1.05)
    raw = requests.get(
        f"{server.url}/api/2.0/export",
        params={"project_id": "1", "from_date": TODAY, "to_date": TODAY},
        auth=SA,
        headers={"Accept-Encoding": "gzip"},
        timeout=10,
        stream=True,
    )
    assert raw.headers["Content-Encoding"] == "gzip" and gzip.decompress(raw.raw.read()).count(b"\n") == 60
    assert server.spec_violations() == []
    server.stop()


def test_mixpanels_limits_by_default() -> None:
    with MixpanelServer() as server:
        answers = [export(server).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]  # three queries a second


def test_bad_requests_are_refused_as_mixpanel_does(server: MixpanelServer) -> None:
    assert export(server, auth=TOKEN).status_code == 401  # the export takes the service account
    assert export(server, auth=(SA[0], "wrong")).status_code == 401
    assert export(server, from_date="2026/01/01").status_code == 400
    assert export(server, from_date=TODAY, to_date="2000-01-01").status_code == 400
    assert "JSON array" in export(server, event="Purchase Completed").json()["error"]
    assert "where" in export(server, where='properties["x"] == 1').json()["error"]
    assert export(server, limit="100001").status_code == 400
    with pytest.raises(ExportError, match="401"):
        list(ExportClient(server.url, Credentials("1", "someone", "else")).events(TODAY, TODAY))


def test_departures_from_the_export_spec_are_recorded(server: MixpanelServer) -> None:
    response = requests.get(
        f"{server.url}/api/2.0/export", params={"project_id": "one", "to_date": TODAY}, auth=SA, timeout=10
    )
    assert response.status_code == 401  # project_id "one" is not this project
    requests.get(
        f"{server.url}/api/2.0/export",
        params={"project_id": "1", "from_date": TODAY, "to_date": TODAY},
        auth=SA,
        timeout=10,
    )
    found = {(v["where"], v["message"]) for v in server.spec_violations()}
    assert ("header.Accept-Encoding", "'gzip, deflate' is not one of ['gzip']") in found
    assert ("query.from_date", "required parameter is missing") in found
    assert ("query.project_id", "'one' is not an integer") in found
