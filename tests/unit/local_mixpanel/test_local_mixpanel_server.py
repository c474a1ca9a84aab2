"""The server itself: loopback only, added latency, restarts on the same URL, and standalone from the command line."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from local_mixpanel_calls import SA, STRICT, event, post_engage, post_import, update

from devstack.mixpanel import MixpanelServer


def test_binds_loopback_only() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        MixpanelServer(host="0.0.0.0")  # noqa: S104 - the point is that it is refused


def test_latency_is_added_to_every_request() -> None:
    with MixpanelServer(latency_s=0.2) as mixpanel:
        started = time.monotonic()
        post_import(mixpanel, [event()])
        post_engage(mixpanel, [update(**{"$set": {"a": 1}})])
        assert time.monotonic() - started >= 0.4


def test_runs_standalone_from_the_command_line(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "standalone.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.mixpanel", "--port", str(port), "--db", str(db)],
        cwd=Path(__file__).parents[3],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(f"{url}/api/summary", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the standalone server did not start"
                time.sleep(0.1)
        response = requests.post(f"{url}/import", params=STRICT, json=[event()], auth=SA, timeout=10)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    with MixpanelServer(db_path=str(db)) as again:
        assert again.events() == [event()]


def test_restarting_the_same_server_keeps_its_url() -> None:
    mixpanel = MixpanelServer().start()
    url = mixpanel.url
    mixpanel.stop()
    with mixpanel:
        assert mixpanel.url == url
        assert post_import(mixpanel, [event()]).status_code == 200
