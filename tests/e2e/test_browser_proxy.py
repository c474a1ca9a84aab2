"""The browser half, for real: headless Chromium runs the real `mixpanel-browser` (from npm, no CDN) on a page
whose `api_host` is the local stack's browser proxy; the local Mixpanel receives the page's events with the
browser's IP and its distinct_id, and a Stripe payment for the same user lands on the same user and device.

The SDK is `tests/e2e/browser/package-lock.json`'s pinned mixpanel-browser, installed by `.ci/run` (or here,
with npm's cache in `.devstack/npm-cache`). Skipped, saying why, only without Chromium or without npm and the
package. Nothing leaves 127.0.0.1 (the page's requests are checked).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser
from revenue_webhooks.providers import sign

from devstack.mixpanel import DEMO_CREDENTIALS
from devstack.stack import LocalStack, Options
from devstack.template import ROOT

pytestmark = pytest.mark.browser

PACKAGE_DIR = ROOT / "tests" / "e2e" / "browser"
SDK = PACKAGE_DIR / "node_modules" / "mixpanel-browser" / "dist" / "mixpanel.umd.js"
STRIPE_SECRET = "whsec_browser_" + "b" * 32
USER = "user-42"
WAIT_S = 30

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<script src="/mixpanel.umd.js"></script>
</head><body>
<button id="checkout">Checkout</button>
<script>
  // The api_host snippet of the README's "Browser proxy": the SDK's requests go to the site's own API.
  mixpanel.init("%(token)s", {api_host: "%(api_host)s", batch_flush_interval_ms: 200, persistence: "localStorage"});
  mixpanel.identify("%(user)s");
  mixpanel.track("Checkout Started", {"Plan": "pro"});
  document.body.dataset.ready = "1";
</script>
</body></html>
"""


def _installed_sdk() -> Path:
    """The pinned mixpanel-browser: installed already (.ci/run), else installed now with npm, else a skip."""
    if SDK.is_file():
        return SDK
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("mixpanel-browser is not installed and there is no npm: run `npm ci --prefix tests/e2e/browser`")
    cache = ROOT / ".devstack" / "npm-cache"
    done = subprocess.run(
        [npm, "ci", "--prefix", str(PACKAGE_DIR), "--cache", str(cache), "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 or not SDK.is_file():
        pytest.skip(f"mixpanel-browser could not be installed from npm: {(done.stderr or done.stdout)[-300:]}")
    return SDK


class _Site:
    """The shop's own pages on 127.0.0.1: the page above and the SDK file, nothing else."""

    def __init__(self, sdk: Path) -> None:
        self.folder = sdk.parent
        handler = partial(_Quiet, directory=str(self.folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def write_page(self, api_host: str) -> None:
        page = PAGE % {"token": DEMO_CREDENTIALS.project_token, "api_host": api_host, "user": USER}
        self.page = page.encode()
        _Quiet.page = self.page

    def __enter__(self) -> _Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/shop.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(self.page)))
            self.end_headers()
            self.wfile.write(self.page)
            return
        if self.path.split("?")[0] != "/mixpanel.umd.js":
            self.send_error(404)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[_Site]:
    with _Site(_installed_sdk()) as serving:
        yield serving


@pytest.fixture(scope="module")
def stack(site: _Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = Options(
        port=0,
        mixpanel_port=0,
        state_dir=tmp_path_factory.mktemp("browser-stack"),
        persist_secrets=False,
        environ={"STRIPE_WEBHOOK_SECRET": STRIPE_SECRET},
        parameters={"BrowserProxyOrigins": site.origin, "ForwarderBatchingWindowSeconds": "1"},
    )
    running = LocalStack(options).start()
    try:
        yield running
    finally:
        running.stop()


def _wait(what: str, found: Any) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {WAIT_S} s")


def test_a_page_with_the_real_sdk_tracks_through_the_proxy_and_a_payment_joins_it(
    browser: Browser, site: _Site, stack: LocalStack
) -> None:
    assert stack.api is not None and stack.mixpanel is not None
    api_host = f"{stack.api.url}/mp"
    site.write_page(api_host)
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith((site.origin, stack.api.url)) else outside.append(r.url),  # type: ignore[union-attr]
    )
    page.goto(f"{site.origin}/shop.html")
    page.wait_for_selector("body[data-ready='1']")
    mixpanel = stack.mixpanel
    started = _wait("the page's event", lambda: mixpanel.events("Checkout Started"))
    device = page.evaluate("mixpanel.get_property('$device_id')")
    context.close()

    (event,) = started
    assert event["properties"]["distinct_id"] == USER and event["properties"]["$device_id"] == device
    assert event["properties"]["Plan"] == "pro" and event["properties"]["token"] == DEMO_CREDENTIALS.project_token
    # The browser's IP reached Mixpanel in X-Real-IP (and X-Forwarded-For), from API Gateway's view of it.
    track = [r for r in mixpanel.requests_log("/track") if r["records"]]
    assert track and all(r["headers"]["x-real-ip"] == "127.0.0.1" for r in track)
    assert all(r["headers"]["x-forwarded-for"] == "127.0.0.1" for r in track)
    geo = {g["insert_id"]: g["geo_ip"] for g in mixpanel.geolocated()}
    assert geo[event["properties"]["$insert_id"]] == "127.0.0.1"
    assert outside == []  # the SDK came from the site, its requests went to the site's API: no CDN, no Mixpanel

    # The server side: the Checkout Session the page's backend created names the same user and browser.
    webhook = json.loads((ROOT / "events" / "stripe" / "checkout.session.completed.json").read_text())
    webhook["id"] = "evt_browser_join_1"
    session = webhook["data"]["object"]
    session.update(id="cs_live_browser_join_1", client_reference_id=USER, metadata={"mixpanel_device_id": device})
    body = json.dumps(webhook).encode()
    headers = sign("stripe", body, STRIPE_SECRET)
    answer = requests.post(f"{stack.api.url}/webhooks/stripe", data=body, headers=headers, timeout=15)
    assert answer.status_code == 200, answer.text
    (purchase,) = _wait("the payment", lambda: mixpanel.events("Purchase Completed"))
    assert purchase["properties"]["distinct_id"] == USER and purchase["properties"]["$user_id"] == USER
    assert purchase["properties"]["$device_id"] == device  # the browser's device: Mixpanel merges the two
    assert mixpanel.spec_violations() == []


def test_a_page_of_another_origin_gets_nothing_through(browser: Browser, site: _Site, stack: LocalStack) -> None:
    assert stack.api is not None
    refused = requests.post(
        f"{stack.api.url}/mp/track/?ip=1",
        data={"data": "W10="},
        headers={"Origin": "https://elsewhere.example.net"},
        timeout=10,
    )
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    preflight = requests.options(
        f"{stack.api.url}/mp/track/",
        headers={"Origin": site.origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == site.origin
