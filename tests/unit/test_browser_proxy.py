"""The browser proxy: what it forwards (and with which IP), what it refuses, and CORS; then through the real relay
into the local Mixpanel, which geolocates the visitor's IP the proxy passed, not the proxy's own address."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from revenue_webhooks.adapters.mixpanel_relay import MixpanelRelay
from revenue_webhooks.config import from_environ
from revenue_webhooks.service.browser_proxy import BrowserProxy
from revenue_webhooks.service.ports import RelayUnavailable

from devstack import apigw
from devstack.mixpanel import DEMO_CREDENTIALS, MixpanelServer

PAGE = "https://www.example.com"
SETTINGS = from_environ(
    {"BROWSER_PROXY_ORIGINS": f"{PAGE},https://app.example.com", "BROWSER_PROXY_MAX_BODY_BYTES": "2048"}
)
VISITOR = "203.0.113.45"


@dataclass
class FakeRelay:
    answer: tuple[int, str, bytes] = (200, "application/json", b'{"status":1,"error":null}')
    down: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)

    def forward(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        if self.down:
            raise RelayUnavailable("ConnectTimeout")
        self.calls.append({"method": method, "path": path, "query": query, "headers": dict(headers), "body": body})
        return self.answer


def request(
    path: str = "/mp/track/",
    *,
    method: str = "POST",
    origin: str | None = PAGE,
    body: bytes = b"data=W10%3D",
    query: str = "verbose=1&ip=1&_=1700000000000",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The payload-format-2.0 event API Gateway hands the proxy, built as the local stack builds it."""
    sent = {"content-type": "application/x-www-form-urlencoded", **({"origin": origin} if origin else {})}
    return apigw.http_api_event(
        apigw.Route("ANY", "/{prefix}/{proxy+}"),
        method=method,
        raw_path=path,
        raw_query=query,
        headers=list({**sent, **(headers or {})}.items()),
        body=body,
        path_parameters={"prefix": path.split("/")[1], "proxy": path.split("/", 2)[2]},
        source_ip=VISITOR,
    )


def test_a_track_request_is_forwarded_with_the_visitors_ip_and_cors_for_its_origin() -> None:
    relay = FakeRelay()
    answer = BrowserProxy(SETTINGS, relay).handle(
        request(headers={"cookie": "session=secret", "x-forwarded-for": "6.6.6.6", "user-agent": "Chrome"})
    )
    (call,) = relay.calls
    assert (call["method"], call["path"], call["query"]) == ("POST", "/track/", "verbose=1&ip=1&_=1700000000000")
    assert call["body"] == b"data=W10%3D"
    assert call["headers"] == {
        "content-type": "application/x-www-form-urlencoded",
        "user-agent": "Chrome",
        "x-real-ip": VISITOR,  # API Gateway's view of the connection, not what the client claims
        "x-forwarded-for": VISITOR,
    }
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"status": 1, "error": None}
    assert answer["headers"]["access-control-allow-origin"] == PAGE
    assert answer["headers"]["access-control-allow-credentials"] == "true"
    assert answer["headers"]["vary"] == "Origin"


def test_a_foreign_origin_is_refused_before_anything_is_forwarded() -> None:
    relay = FakeRelay()
    for origin in ("https://evil.example.net", None):
        answer = BrowserProxy(SETTINGS, relay).handle(request(origin=origin))
        assert answer["statusCode"] == 403 and "access-control-allow-origin" not in answer["headers"]
    assert relay.calls == []


def test_only_the_prefix_and_the_sdks_endpoints_are_served() -> None:
    relay = FakeRelay()
    proxy = BrowserProxy(SETTINGS, relay)
    for path in ("/other/track/", "/mp/import", "/mp/", "/webhooks/stripe"):
        assert proxy.handle(request(path))["statusCode"] == 404, path
    for path in ("/mp/engage/", "/mp/groups/", "/mp/decide", "/mp/record/", "/mp/flags/"):
        assert proxy.handle(request(path))["statusCode"] == 200, path
    assert [c["path"] for c in relay.calls] == ["/engage/", "/groups/", "/decide", "/record/", "/flags/"]
    assert proxy.handle(request(method="DELETE"))["statusCode"] == 405


def test_a_preflight_is_answered_here_for_an_allowed_origin() -> None:
    relay = FakeRelay()
    answer = BrowserProxy(SETTINGS, relay).handle(
        request(method="OPTIONS", body=b"", headers={"access-control-request-headers": "Content-Type, X-Evil"})
    )
    assert answer["statusCode"] == 204 and relay.calls == []
    assert answer["headers"]["access-control-allow-methods"] == "GET, POST, OPTIONS"
    assert answer["headers"]["access-control-allow-headers"] == "Content-Type"
    assert answer["headers"]["access-control-allow-origin"] == PAGE


def test_a_body_above_the_limit_is_refused_with_413() -> None:
    relay = FakeRelay()
    assert BrowserProxy(SETTINGS, relay).handle(request(body=b"data=" + b"x" * 2048))["statusCode"] == 413
    assert relay.calls == []


def test_mixpanel_unreachable_is_a_502_and_binary_answers_stay_binary() -> None:
    assert BrowserProxy(SETTINGS, FakeRelay(down=True)).handle(request())["statusCode"] == 502
    gif = b"GIF89a\x01\x00\x01\x00\x80\xff\x00"
    answer = BrowserProxy(SETTINGS, FakeRelay(answer=(200, "image/gif", gif))).handle(request())
    assert answer["isBase64Encoded"] and base64.b64decode(answer["body"]) == gif


def test_origins_and_prefix_are_validated() -> None:
    with pytest.raises(ValueError, match="BROWSER_PROXY_ORIGINS"):
        from_environ({"BROWSER_PROXY_ORIGINS": "https://www.example.com/page"})
    with pytest.raises(ValueError, match="BROWSER_PROXY_PREFIX"):
        from_environ({"BROWSER_PROXY_PREFIX": "a/b"})


@pytest.fixture
def mixpanel() -> Iterator[MixpanelServer]:
    with MixpanelServer() as running:
        yield running


def test_through_the_real_relay_the_local_mixpanel_geolocates_the_visitor_not_the_proxy(
    mixpanel: MixpanelServer,
) -> None:
    """What mixpanel-browser posts (base64 JSON in `data=`), through the proxy and `requests` into the local
    Mixpanel over HTTP: stored under the SDK's distinct_id, geolocated from X-Real-IP, the proxy a mere peer."""
    event = {
        "event": "Checkout Started",
        "properties": {
            "token": DEMO_CREDENTIALS.project_token,
            "time": time.time(),
            "distinct_id": "user-42",
            "$insert_id": "k2j3h4g5f6d7s8a9",
        },
    }
    data = base64.b64encode(json.dumps([event]).encode()).decode()
    body = urlencode({"data": data}).encode()  # what the SDK's `encodeURIComponent` makes of it
    answer = BrowserProxy(SETTINGS, MixpanelRelay(mixpanel.url)).handle(request(body=body))
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"error": None, "status": 1}
    assert [(g["distinct_id"], g["geo_ip"]) for g in mixpanel.geolocated()] == [("user-42", VISITOR)]
    (logged,) = mixpanel.requests_log("/track")
    assert logged["headers"]["x-real-ip"] == VISITOR and "cookie" not in logged["headers"]
    assert mixpanel.spec_violations() == []
