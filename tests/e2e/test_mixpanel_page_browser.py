"""The local Mixpanel's page, in a real headless Chromium: events, filters, revenue chart, profiles, dead letters.

Uses the system Chromium (Debian package `chromium`, or the binary named by $CHROMIUM); skipped only when
there is none. Never downloads a browser.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from devstack.mixpanel import DEMO_CREDENTIALS, MixpanelServer

pytestmark = pytest.mark.browser

SCREENSHOT = Path(tempfile.gettempdir()) / "mixpanel-page.png"
SA = (DEMO_CREDENTIALS.username, DEMO_CREDENTIALS.secret)
DAY = 86_400
NOW = int(time.time())
DEAD_LETTERS = [
    {"id": "msg-1", "reason": "400 from Mixpanel: '$insert_id' is invalid", "provider": "stripe", "receive_count": 5},
    {
        "provider": "paddle",
        "event_type": "transaction.completed",
        "event_id": "ntf_01h",
        "reason": "mixpanel_rejected",
        "detail": "'properties.time' is invalid: must not be before 1971-01-01",
    },
]


def purchase(
    insert_id: str,
    user: str,
    amount: float,
    currency: str,
    days_ago: int,
    name: str = "Purchase Completed",
) -> dict[str, Any]:
    return {
        "event": name,
        "properties": {
            "time": NOW - days_ago * DAY,
            "distinct_id": user,
            "$insert_id": insert_id,
            "Revenue": amount,
            "Currency": currency,
            "Provider": "stripe",
            "ip": "0",
        },
    }


def send(server: MixpanelServer, events: list[dict[str, Any]]) -> None:
    response = requests.post(
        f"{server.url}/import", params={"strict": "1", "project_id": "1"}, json=events, auth=SA, timeout=10
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def server() -> Iterator[MixpanelServer]:
    with MixpanelServer(dead_letters=lambda: DEAD_LETTERS) as mixpanel:
        send(
            mixpanel,
            [
                purchase("p1", "user-1", 49.0, "USD", days_ago=2),
                purchase("p2", "user-1", 19.5, "USD", days_ago=1),
                purchase("p3", "user-2", 30.0, "EUR", days_ago=1),
                purchase("r1", "user-1", 19.5, "USD", days_ago=0, name="Refund Issued"),
                {
                    "event": "Subscription Started",
                    "properties": {"time": NOW, "distinct_id": "user-2", "$insert_id": "s1", "Plan": "team"},
                },
                purchase("p1", "user-1", 49.0, "USD", days_ago=2),  # a retry: deduplicated, not shown twice
            ],
        )
        engage = requests.post(
            f"{mixpanel.url}/engage",
            params={"verbose": "2"},
            timeout=10,
            json=[
                {
                    "$token": DEMO_CREDENTIALS.project_token,
                    "$distinct_id": "user-1",
                    "$set": {"Plan": "pro", "Lifetime Revenue": 49.0},
                },
                {"$token": DEMO_CREDENTIALS.project_token, "$distinct_id": "user-2", "$set": {"Plan": "team"}},
            ],
        )
        assert engage.status_code == 200, engage.text
        groups = requests.post(
            f"{mixpanel.url}/groups",
            params={"verbose": "1", "strict": "1"},
            timeout=10,
            json=[
                {
                    "$token": DEMO_CREDENTIALS.project_token,
                    "$group_key": "company_id",
                    "$group_id": "acme",
                    "$set": {"Lifetime Revenue USD": 68.5, "Seats": 5},
                }
            ],
        )
        assert groups.json()["status"] == 1, groups.text
        yield mixpanel


@pytest.fixture
def page(browser: Browser, server: MixpanelServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    tab.on(
        "request",
        lambda request: (
            None if request.url.startswith(server.url) else problems.append(f"external request: {request.url}")
        ),
    )
    tab.goto(server.url)
    tab.wait_for_selector("body[data-loaded='1']")
    yield tab
    context.close()
    assert problems == []


def rows(page: Page) -> Any:
    return page.locator("#events tbody tr[data-event]")


def test_events_are_listed_newest_first_once_each(page: Page) -> None:
    expect(rows(page)).to_have_count(5)
    # Newest first by event time, not by arrival: p1's retry arrived last but happened two days ago. Events of
    # the same time (s1 and r1, p3 and p2) are listed last-arrived first.
    insert_ids = rows(page).evaluate_all("rows => rows.map(r => r.dataset.insertId)")
    assert insert_ids == ["s1", "r1", "p3", "p2", "p1"]
    times = rows(page).evaluate_all("rows => rows.map(r => r.cells[0].textContent)")
    assert times == sorted(times, reverse=True)
    expect(page.locator("#events-count")).to_have_text("5 (newest first, by event time)")


def test_events_and_ingested_are_explained(page: Page) -> None:
    # Six events were ingested (p1 twice); five are distinct, as Mixpanel counts them.
    expect(page.locator(".stat[data-stat='Events'] b")).to_have_text("5")
    expect(page.locator(".stat[data-stat='Ingested'] b")).to_have_text("6")
    expect(page.locator(".stat[data-stat='Events']")).to_have_attribute("title", re.compile("count once"))
    expect(page.locator(".stat[data-stat='Ingested']")).to_have_attribute("title", re.compile("retried"))
    legend = page.locator("#stats-legend")
    expect(legend).to_be_visible()
    expect(legend).to_contain_text("the difference is what deduplication removed")


def test_events_filter_by_name_and_by_user(page: Page) -> None:
    page.select_option("#filter-name", "Refund Issued")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-event", "Refund Issued")
    expect(page.locator("#events-count")).to_have_text("1 of 5 (newest first, by event time)")

    page.select_option("#filter-name", "")
    page.fill("#filter-user", "user-2")
    expect(rows(page)).to_have_count(2)
    assert set(rows(page).evaluate_all("rows => rows.map(r => r.dataset.user)")) == {"user-2"}
    assert "user=user-2" in page.url  # the filtered view can be shared as a link


def test_revenue_chart_draws_bars_per_currency(page: Page) -> None:
    expect(page.locator("#charts svg")).to_have_count(2)
    expect(page.locator("svg[data-currency='USD'] rect.bar:not(.refund)")).to_have_count(2)
    expect(page.locator("svg[data-currency='USD'] rect.refund")).to_have_count(1)
    expect(page.locator("svg[data-currency='EUR'] rect.bar")).to_have_count(1)
    expect(page.locator(".chart", has=page.locator("svg[data-currency='USD']"))).to_contain_text("net $49.00")


def test_profiles_and_dead_letters_are_shown(page: Page) -> None:
    user_1 = page.locator(".profile[data-distinct-id='user-1']")
    expect(user_1).to_contain_text("Plan")
    expect(user_1).to_contain_text("pro")
    expect(user_1).to_contain_text("Lifetime Revenue")
    expect(page.locator(".profile")).to_have_count(2)
    expect(page.locator("tr.dead-letter")).to_have_count(2)
    expect(page.locator("#dead-letters")).to_contain_text("400 from Mixpanel: '$insert_id' is invalid")
    expect(page.locator("tr.dead-letter").nth(1)).to_contain_text("must not be before 1971-01-01")
    expect(page.locator("tr.dead-letter").nth(1)).to_contain_text("ntf_01h")
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_company_profiles_are_shown(page: Page) -> None:
    acme = page.locator(".group[data-group-id='acme']")
    expect(acme).to_have_count(1)
    expect(acme).to_contain_text("company_id = acme")
    expect(acme).to_contain_text("Seats")
    expect(page.locator("#groups-count")).to_have_text("1")


def test_page_refreshes_by_itself(page: Page, server: MixpanelServer) -> None:
    send(server, [purchase("late", "user-3", 5.0, "GBP", days_ago=0)])
    expect(rows(page)).to_have_count(6, timeout=10_000)
    expect(page.locator("svg[data-currency='GBP']")).to_have_count(1)


def test_untrusted_event_data_is_shown_as_text(page: Page, server: MixpanelServer) -> None:
    send(
        server,
        [purchase("xss", "<img src=x onerror=alert(1)>", 1.0, "USD", days_ago=0, name="<script>alert(1)</script>")],
    )
    expect(rows(page)).to_have_count(6, timeout=10_000)
    expect(page.locator("#events")).to_contain_text("<img src=x onerror=alert(1)>")
    expect(page.locator("#events img")).to_have_count(0)


def test_dead_letters_not_connected(browser: Browser) -> None:
    with MixpanelServer() as unconnected:
        tab = browser.new_page()
        tab.goto(unconnected.url)
        tab.wait_for_selector("body[data-loaded='1']")
        expect(tab.locator("#dead-letters")).to_have_text("not connected")
        expect(tab.locator("#events")).to_contain_text("No events yet.")
        tab.close()


def subscription_event(insert_id: str, sub_id: str, days_ago: int, mrr: float, change: float, movement: str) -> dict:
    return {
        "event": "Subscription Changed",
        "properties": {
            "time": NOW - days_ago * DAY,
            "distinct_id": "user-9",
            "$insert_id": insert_id,
            "Subscription ID": sub_id,
            "MRR": mrr,
            "MRR Change": change,
            "MRR Movement": movement,
            "Currency": "EUR",
            "Provider": "stripe",
        },
    }


def test_mrr_is_charted_over_time_with_its_movements_by_type(browser: Browser) -> None:
    with MixpanelServer() as mixpanel:
        send(
            mixpanel,
            [
                subscription_event("m1", "sub_a", 3, 20, 20, "New"),
                subscription_event("m2", "sub_b", 2, 50, 50, "New"),
                subscription_event("m3", "sub_a", 1, 40, 20, "Expansion"),
                subscription_event("m4", "sub_b", 0, 0, -50, "Churn"),
            ],
        )
        tab = browser.new_page()
        tab.goto(mixpanel.url)
        tab.wait_for_selector("body[data-loaded='1']")
        line = tab.locator("svg.mrr-line[data-mrr-currency='EUR']")
        expect(line.locator("circle.mrr-point")).to_have_count(4)  # one point a day
        expect(tab.locator(".chart", has=line)).to_contain_text("€40.00")  # sub_a 40 + sub_b 0, today
        bars = tab.locator("svg.mrr-movements[data-mrr-currency='EUR'] rect.movement")
        assert sorted(bars.evaluate_all("bars => bars.map(b => b.dataset.movement)")) == [
            "Churn", "Expansion", "New", "New"
        ]  # fmt: skip
        expect(tab.locator(".chart", has=tab.locator("svg.mrr-movements"))).to_contain_text("net new €40.00")
        tab.screenshot(path=str(SCREENSHOT.with_name("mixpanel-page-mrr.png")), full_page=True)
        tab.close()


def test_the_reconcile_panel_runs_and_shows_the_report(browser: Browser) -> None:
    from revenue_webhooks.domain.money import Money
    from revenue_webhooks.service.reconcile import Expected, Held, compare

    paid = Expected("cs_1", "payment", Money(4900, "USD"), NOW - DAY, "stripe:payment:cs_1", "iid-1")
    lost = Expected("in_2", "payment", Money(5120, "KWD"), NOW - DAY, "stripe:payment:in_2", "iid-2")
    runs: list[int] = []

    def reconcile() -> dict[str, Any]:
        runs.append(1)
        held = [Held("iid-1", "payment", paid.money, paid.time, "cs_1")]
        return compare([paid, lost], None, held, NOW - 30 * DAY, NOW).as_json()

    with MixpanelServer(reconcile=reconcile) as server:
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(server.url)
        tab.wait_for_selector("body[data-loaded='1']")
        expect(tab.locator("#reconcile")).to_contain_text("Not run yet")
        tab.click("#reconcile-run")
        expect(tab.locator(".verdict.bad")).to_contain_text("1 difference(s)")
        expect(tab.locator("#reconcile-differences tr.difference")).to_have_count(1)
        expect(tab.locator("#reconcile-differences")).to_contain_text("in_2")
        expect(tab.locator("tr[data-currency='KWD'][data-source='stripe']")).to_contain_text("5.120")
        expect(tab.locator("#reconcile")).to_contain_text('Repair: make backfill ARGS="--ids in_2"')
        assert runs == [1]
        context.close()
