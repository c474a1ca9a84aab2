"""The page's JSON (events, revenue, dead letters) and the page itself, served with no external resources."""

from __future__ import annotations

import re
from typing import Any

import requests
from local_mixpanel_calls import NOW, event, post_import

from devstack.mixpanel import MixpanelServer


def test_events_api_filters_by_name_and_user_newest_first(server: MixpanelServer) -> None:
    post_import(server, [event("a1"), event("a2", name="Refund Issued"), event("a3", distinct_id="someone-else")])
    everything = requests.get(f"{server.url}/api/events", timeout=10).json()
    assert [e["properties"]["$insert_id"] for e in everything["events"]] == ["a3", "a2", "a1"]
    assert everything["names"] == ["Purchase Completed", "Refund Issued"]
    by_name = requests.get(f"{server.url}/api/events", params={"name": "Refund Issued"}, timeout=10).json()
    by_user = requests.get(f"{server.url}/api/events", params={"user": "ELSE"}, timeout=10).json()
    assert [e["properties"]["$insert_id"] for e in by_name["events"]] == ["a2"]
    assert [e["properties"]["$insert_id"] for e in by_user["events"]] == ["a3"]


def test_events_api_lists_newest_first_by_event_time_not_arrival(server: MixpanelServer) -> None:
    day = 86_400
    post_import(server, [event("late-arriving-old", time=NOW - 3 * day), event("b1", time=NOW - day)])
    post_import(server, [event("oldest", time=NOW - 5 * day), event("newest", time=NOW), event("b2", time=NOW - day)])
    listed = requests.get(f"{server.url}/api/events", timeout=10).json()["events"]
    assert [e["properties"]["$insert_id"] for e in listed] == ["newest", "b2", "b1", "late-arriving-old", "oldest"]


def test_revenue_api_nets_refunds_per_day_and_currency(server: MixpanelServer) -> None:
    day = 1_718_000_000  # 2024-06-10 UTC
    post_import(
        server,
        [
            event("a1", time=day),
            event("a2", time=day + 60, Revenue=7.5),
            event("a3", time=day, name="Refund Issued", Revenue=5),
            event("a4", time=day + 86_400, Revenue=1000, Currency="jpy"),
            event("a5", Revenue=None),
        ],
    )
    rows = requests.get(f"{server.url}/api/revenue", timeout=10).json()["rows"]
    assert rows == [
        {"day": "2024-06-10", "currency": "USD", "gross": 20.0, "refunds": 5.0, "net": 15.0, "events": 3},
        {"day": "2024-06-11", "currency": "JPY", "gross": 1000.0, "refunds": 0.0, "net": 1000.0, "events": 1},
    ]


def test_dead_letters_api(server: MixpanelServer) -> None:
    assert requests.get(f"{server.url}/api/dead-letters", timeout=10).json() == {"connected": False, "items": []}
    with MixpanelServer(dead_letters=lambda: [{"id": "m1", "reason": "400 from Mixpanel"}]) as connected:
        answer = requests.get(f"{connected.url}/api/dead-letters", timeout=10).json()
    assert answer == {"connected": True, "items": [{"id": "m1", "reason": "400 from Mixpanel"}]}


def test_page_and_its_files_are_served_without_external_resources(server: MixpanelServer) -> None:
    page = requests.get(server.url, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    linked = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert linked == ["/static/page.css", "/static/page.js"]
    texts = [page.text]
    for path, content_type in zip(linked, ["text/css", "text/javascript"], strict=True):
        answer = requests.get(f"{server.url}{path}", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith(content_type)
        texts.append(answer.text)
    for text in texts:
        assert "https://" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_mrr_api_sums_each_subscriptions_newest_mrr_per_day_and_movements(server: MixpanelServer) -> None:
    day = 1_718_000_000  # 2024-06-10 UTC

    def sub(insert_id: str, at: int, sub_id: str, mrr: float, change: float | None, movement: str | None, **more: Any):
        props = {"time": at, "Subscription ID": sub_id, "MRR": mrr, "Currency": "USD", "Provider": "stripe", **more}
        if change is not None:
            props["MRR Change"] = change
        if movement:
            props["MRR Movement"] = movement
        props.pop("Revenue", None)
        return event(insert_id, name="Subscription Changed", **props)

    post_import(
        server,
        [
            sub("m1", day, "sub_a", 15, 15, "New"),
            sub("m2", day + 60, "sub_b", 30, 30, "New"),
            sub("m3", day + 86_400, "sub_a", 45, 30, "Expansion"),
            sub("m4", day + 86_400 + 60, "sub_b", 0, -30, "Churn"),
            sub("m5", day + 2 * 86_400, "sub_a", 45, None, None),  # a renewal: MRR, no change
            sub("m6", day, "sub_c", 1000, 1000, "New", Currency="JPY"),
        ],
    )
    answer = requests.get(f"{server.url}/api/mrr", timeout=10).json()
    assert answer["currencies"] == ["JPY", "USD"]
    assert [(r["day"], r["currency"], r["mrr"]) for r in answer["mrr"]] == [
        ("2024-06-10", "JPY", 1000),
        ("2024-06-10", "USD", 45),  # 15 + 30
        ("2024-06-11", "USD", 45),  # sub_a 45 + sub_b 0
        ("2024-06-12", "USD", 45),
    ]
    assert [(r["day"], r["currency"], r["movement"], r["change"]) for r in answer["movements"]] == [
        ("2024-06-10", "JPY", "New", 1000),
        ("2024-06-10", "USD", "New", 45),
        ("2024-06-11", "USD", "Churn", -30),
        ("2024-06-11", "USD", "Expansion", 30),
    ]
