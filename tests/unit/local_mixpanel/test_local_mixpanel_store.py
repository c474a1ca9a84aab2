"""What is stored and how queries see it: deduplication, concurrent senders, SQLite across restarts, reset."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from local_mixpanel_calls import NOW, SA, STRICT, event, post_engage, post_import, update

from devstack.mixpanel import Fault, MixpanelServer

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


def test_reset_forgets_everything(server: MixpanelServer) -> None:
    server.faults.push(Fault.http(500), Fault.http(500))
    post_import(server, [event()])
    post_engage(server, [update(**{"$set": {"a": 1}})])
    server.reset()
    assert (server.raw_events(), server.profiles(), server.requests_log(), server.spec_violations()) == ([], {}, [], [])
    assert (server.faults.pending, server.faults.served) == ([], {})
