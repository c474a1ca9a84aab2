"""What the end-to-end tests share: the system Chromium for the browser tests (Debian package `chromium`, or
$CHROMIUM: never downloaded), and one `make demo` run for all the tests that read it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright
from reader_shell import make_is_ready, reader_environment

from devstack.template import ROOT

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The demo keeps under ~100 s: batching windows of 10 s (payments, refunds, EventBridge; then the first day's
# backfill and the webhooks overlapping it) plus start-up and the tools.
DEMO_TIMEOUT_S = 150


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM:
        pytest.skip("no Chromium binary: install the Debian package `chromium` or set $CHROMIUM to one")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """`make demo` as the README writes it (run once for the demo's tests and the README's)."""
    env = reader_environment(tmp_path_factory.mktemp("demo"))
    command = ["make", "demo"] if not make_is_ready() else [sys.executable, "-m", "devstack.cli", "demo"]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False
    )
