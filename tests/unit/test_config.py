"""Configuration is validated at start-up with messages that name the variable."""

import pytest
from revenue_webhooks.config import ConfigError, from_environ


def test_defaults() -> None:
    settings = from_environ({})
    assert settings.mixpanel_base_url == "https://api.mixpanel.com"
    assert settings.mode == "live" and settings.signature_tolerance_s == 300


@pytest.mark.parametrize(
    ("region", "host"), [("EU", "https://api-eu.mixpanel.com"), ("in", "https://api-in.mixpanel.com")]
)
def test_residency_hosts(region: str, host: str) -> None:
    assert from_environ({"MIXPANEL_REGION": region}).mixpanel_base_url == host


def test_api_url_overrides_the_region() -> None:
    assert from_environ({"MIXPANEL_API_URL": "http://127.0.0.1:3001/"}).mixpanel_base_url == "http://127.0.0.1:3001"


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"MIXPANEL_REGION": "MARS"}, "MIXPANEL_REGION"),
        ({"MODE": "sometimes"}, "MODE"),
        ({"MAX_BODY_BYTES": "big"}, "MAX_BODY_BYTES"),
        ({"EVENT_NAMES": "[1]"}, "EVENT_NAMES"),
        ({"PROFILE_CURRENCY": "dollars"}, "PROFILE_CURRENCY"),
        ({"SEND_EMAIL": "maybe"}, "SEND_EMAIL"),
        ({"MIXPANEL_API_URL": "ftp://x"}, "MIXPANEL_API_URL"),
    ],
)
def test_invalid_settings_name_the_variable(environ: dict, names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        from_environ(environ)


@pytest.mark.parametrize(("mode", "live", "test"), [("live", True, False), ("test", False, True), ("any", True, True)])
def test_mode_filters_livemode(mode: str, live: bool, test: bool) -> None:
    settings = from_environ({"MODE": mode})
    assert settings.accepts_mode(True) is live and settings.accepts_mode(False) is test
    assert settings.accepts_mode(None) is True
