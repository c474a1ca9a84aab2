"""Replay against a local endpoint that verifies with the providers' own code: signed, byte-exact, counted."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from webhook_endpoint import SECRETS, SENDER, Endpoint

from ops import replay

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


def run(endpoint: Endpoint, provider: str, *args: str, secret: str | None = None) -> int:
    return replay.main(["--url", endpoint.url, "--provider", provider, "--secret", secret or SECRETS[provider], *args])


def test_replays_a_folder_signed_and_byte_exact(endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted((FIXTURES / "stripe").glob("*.json"))

    assert run(endpoint, "stripe", str(FIXTURES / "stripe")) == 0

    assert endpoint.bodies() == Counter(path.read_bytes() for path in files)  # trailing newlines kept as stored
    out, err = capsys.readouterr()
    assert f"replayed {len(files)} events to {endpoint.url}/stripe" in out
    assert f"200 accepted  {len(files)}" in out
    assert f"{len(files)}/{len(files)}" in err  # the progress counter (or tqdm) reached the end


def test_replays_a_json_lines_file(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        json.dumps(json.loads(path.read_bytes()), separators=(",", ":")).encode()
        for path in sorted((FIXTURES / "stripe").glob("*.json"))
    ] * 4
    stored = tmp_path / "events.jsonl"
    stored.write_bytes(b"\n".join(lines[:10]) + b"\r\n\n" + b"\n".join(lines[10:]) + b"\n")  # CRLF and a blank line

    assert run(endpoint, "stripe", str(stored), "--concurrency", "8") == 0

    assert endpoint.bodies() == Counter(lines)
    out, err = capsys.readouterr()
    assert f"200 accepted  {len(lines)}" in out
    assert f"{len(lines)}/{len(lines)}" in err


@pytest.mark.parametrize(
    ("provider", "folder", "extra"),
    [
        ("paddle", "paddle", ["--strip-newline"]),
        ("revenuecat", "revenuecat", []),
        ("shopify", "shopify", ["--shopify-topic", "orders/paid"]),
    ],
)
def test_each_provider_is_signed_as_it_signs(
    endpoint: Endpoint, provider: str, folder: str, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted((FIXTURES / folder).glob("*.json"))
    expected = [path.read_bytes() for path in files]
    if "--strip-newline" in extra:
        expected = [body.removesuffix(b"\n") for body in expected]

    assert run(endpoint, provider, str(FIXTURES / folder), *extra) == 0

    assert endpoint.bodies() == Counter(expected)
    assert f"200 accepted  {len(files)}" in capsys.readouterr().out


def test_lemonsqueezy_and_standard_webhooks_senders(endpoint: Endpoint, tmp_path: Path) -> None:
    lemon = tmp_path / "lemon.jsonl"
    lemon.write_bytes(b'{"meta":{"event_name":"order_created"},"data":{"type":"orders","id":"1"}}\n')
    sender = tmp_path / "sender.json"
    sender.write_bytes(b'{"type":"subscription.canceled","data":{"id":"sub_1","time":1764000000}}')

    assert run(endpoint, "lemonsqueezy", str(lemon)) == 0
    assert run(endpoint, SENDER, str(sender)) == 0

    routes = Counter(route for route, _, _ in endpoint.verified)
    assert routes == {"lemonsqueezy": 1, SENDER: 1}
    assert endpoint.verified[0][1]["x-event-name"] == "order_created"


def test_shopify_topic_comes_from_the_file_name(endpoint: Endpoint, tmp_path: Path) -> None:
    (tmp_path / "refunds.create.json").write_bytes(b'{"id":1,"order_id":2}')
    (tmp_path / "orders.paid.jsonl").write_bytes(b'{"id":3}\n{"id":4}\n')

    assert run(endpoint, "shopify", str(tmp_path)) == 0

    topics = Counter(headers["x-shopify-topic"] for _, headers, _ in endpoint.verified)
    assert topics == {"orders/paid": 2, "refunds/create": 1}


def test_shopify_without_a_topic_is_refused_before_sending(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(endpoint, "shopify", str(FIXTURES / "shopify")) == 2
    assert "--shopify-topic" in capsys.readouterr().err
    assert endpoint.requests == 0


def test_a_wrong_secret_fails_with_the_status_and_body(endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(endpoint, "stripe", str(FIXTURES / "stripe" / "invoice.paid.json"), secret="whsec_wrong") == 1

    out, err = capsys.readouterr()
    assert "400  1" in out
    assert "1 failed" in out
    assert "invoice.paid.json: 400" in err
    assert "signature verification failed" in err


def test_dry_run_sends_nothing(endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(endpoint, "stripe", str(FIXTURES / "stripe"), "--dry-run") == 0

    assert endpoint.requests == 0
    count = len(list((FIXTURES / "stripe").glob("*.json")))
    assert f"dry run: {count} events" in capsys.readouterr().out


def test_the_secret_comes_from_the_environment(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--url", endpoint.url, "--provider", "stripe", str(FIXTURES / "stripe" / "invoice.paid.json")]
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    assert replay.main(args) == 2
    assert "STRIPE_WEBHOOK_SECRET" in capsys.readouterr().err

    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRETS["stripe"])
    assert replay.main(args) == 0
    assert len(endpoint.verified) == 1


def test_a_503_is_retried(capsys: pytest.CaptureFixture[str]) -> None:
    flaky = Endpoint(unavailable_first=1)
    try:
        assert run(flaky, "stripe", str(FIXTURES / "stripe" / "invoice.paid.json"), "--retries", "1") == 0
    finally:
        flaky.close()
    assert flaky.requests == 2
    assert "200 accepted  1" in capsys.readouterr().out


def test_an_unreachable_url_fails(endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    closed = Endpoint()
    closed.close()  # nothing listens on this port now

    args = ["--url", closed.url, "--provider", "stripe", "--secret", SECRETS["stripe"], "--retries", "0"]
    assert replay.main([*args, str(FIXTURES / "stripe" / "invoice.paid.json")]) == 1

    out, err = capsys.readouterr()
    assert "no response  1" in out
    assert "invoice.paid.json: no response" in err


def test_missing_input_is_a_usage_error(endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(endpoint, "stripe", str(tmp_path / "nope.json")) == 2
    assert "no such file" in capsys.readouterr().err
    assert run(endpoint, "stripe", str(tmp_path)) == 2
    assert "no .json or .jsonl files" in capsys.readouterr().err
