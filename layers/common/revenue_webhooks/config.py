"""Every setting, read once from the environment the template gives each function.

Validated at import time of a handler (a cold start), so a misconfigured stack fails
its first invocation with a clear message instead of mis-routing a webhook.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

MIXPANEL_HOSTS = {
    "US": "https://api.mixpanel.com",
    "EU": "https://api-eu.mixpanel.com",
    "IN": "https://api-in.mixpanel.com",
}
MODES = ("live", "test", "any")
ID_MERGE_MODES = ("simplified", "original")
# Which id names a payment's company when no metadata key does (docs/identity.md, "Companies").
COMPANY_FALLBACKS = ("none", "customer", "account")

# The ECB's euro foreign exchange reference rates (docs/providers.md, "Reporting currency").
ECB_RATES_URL = "https://www.ecb.europa.eu/stats/eurofxref/"
# Google's public keys for the OIDC tokens Pub/Sub push sends, and the Play Developer API.
GOOGLE_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_PLAY_API_URL = "https://androidpublisher.googleapis.com"

STANDARD_WEBHOOKS_SECRET_ENV = "STANDARD_WEBHOOKS_SECRETS_ID"  # noqa: S105 (a variable name, not a secret)  # nosec B105


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable and what it accepts."""


@dataclass(frozen=True)
class Settings:
    """The deployment's configuration; see README "Configuration" for each variable."""

    events_queue_url: str = ""
    dead_letter_queue_url: str = ""
    ledger_table: str = ""
    mixpanel_credentials_id: str = ""
    mixpanel_region: str = "US"
    mixpanel_api_url: str = ""
    mode: str = "live"
    max_body_bytes: int = 512_000
    signature_tolerance_s: int = 300
    future_skew_s: int = 60
    max_receive_count: int = 5
    id_merge: str = "simplified"
    user_id_keys: tuple[str, ...] = ("mixpanel_distinct_id", "user_id")
    device_id_keys: tuple[str, ...] = ("mixpanel_device_id",)
    ip_keys: tuple[str, ...] = ("mixpanel_ip", "ip")
    send_email: bool = False
    profile_currency: str = ""
    event_names: Mapping[str, str] = field(default_factory=dict)
    property_names: Mapping[str, str] = field(default_factory=dict)
    standard_webhooks_secrets_id: str = ""
    standard_webhooks_mapping: Mapping[str, Any] = field(default_factory=dict)
    shopify_max_age_s: int = 86_400
    debug_payloads: bool = False
    mixpanel_connect_timeout_s: float = 3.05
    mixpanel_read_timeout_s: float = 20.0
    mixpanel_backoff_base_s: float = 2.0
    mixpanel_backoff_cap_s: float = 60.0
    mixpanel_jitter_s: tuple[float, float] = (1.0, 5.0)
    # The test lane (Mode=any with TestEventsTo=test-project): test-mode webhooks' own queue, dead letters, project.
    test_events_queue_url: str = ""
    test_dead_letter_queue_url: str = ""
    mixpanel_test_credentials_id: str = ""
    # The first-party proxy for mixpanel-browser (docs: README "Browser proxy").
    browser_proxy_prefix: str = "mp"
    browser_proxy_origins: tuple[str, ...] = ()
    browser_proxy_max_body_bytes: int = 1_048_576
    # Group Analytics: the group key events carry, and where a payment's company id comes from.
    group_key: str = ""
    company_id_keys: tuple[str, ...] = ("mixpanel_company_id", "company_id")
    company_fallback: str = "none"
    # Stripe's API (catch-up, the forwarder's lookups of payments the ledger never saw, the daily reconcile, the
    # operator tools): the StripeApiKey secret's id, and another API than Stripe's when set (the local stand-in).
    # The key itself is never a setting: it is read from the secret, or from STRIPE_API_KEY by the CLI and the
    # local stack.
    stripe_api_key_id: str = ""
    stripe_api_base: str = ""
    stripe_timeout_s: float = 30.0
    # Deliveries a refund that names its customer waits for its payment's link (one naming nobody: all of them).
    refund_wait_deliveries: int = 3
    catch_up_overlap_s: int = 3600
    catch_up_delay_s: int = 600
    # The daily reconcile (ReconcileFunction): the days it checks, and where Mixpanel's export API is (empty:
    # MIXPANEL_API_URL, else the residency's data host).
    reconcile_days: int = 30
    mixpanel_export_url: str = ""
    # One reporting currency (README "Reporting currency"): every money property also converted into it.
    reporting_currency: str = ""
    reporting_format: str = "{property} ({currency})"
    reference_rates_url: str = ECB_RATES_URL
    rates_timeout_s: float = 10.0
    # App stores (docs/providers.md): where their trust anchors and APIs are. Only the local stack and the
    # tests change them; a deployment uses Apple's root shipped in the layer and Google's public endpoints.
    appstore_root_certificates: tuple[str, ...] = ()  # DER or PEM files; () is the shipped Apple Root CA - G3
    google_oidc_certs_url: str = GOOGLE_OIDC_CERTS_URL
    google_play_api_url: str = GOOGLE_PLAY_API_URL

    @property
    def mixpanel_base_url(self) -> str:
        return (self.mixpanel_api_url or MIXPANEL_HOSTS[self.mixpanel_region]).rstrip("/")

    def queue_for(self, livemode: bool | None) -> str:
        """Where the receiver puts a webhook: test-mode ones in the test lane's queue when there is one."""
        return self.test_events_queue_url if livemode is False and self.test_events_queue_url else self.events_queue_url

    def accepts_mode(self, livemode: bool | None) -> bool:
        """Whether an event's test/live flag matches this deployment (None: the provider has none)."""
        if livemode is None or self.mode == "any":
            return True
        return livemode == (self.mode == "live")


def from_environ(environ: Mapping[str, str]) -> Settings:
    """Build and validate settings from an environment mapping."""
    region = environ.get("MIXPANEL_REGION", "US").upper()
    if region not in MIXPANEL_HOSTS:
        raise ConfigError(f"MIXPANEL_REGION={region!r}: expected one of {sorted(MIXPANEL_HOSTS)}")
    mode = environ.get("MODE", "live").lower()
    if mode not in MODES:
        raise ConfigError(f"MODE={mode!r}: expected one of {MODES}")
    id_merge = environ.get("MIXPANEL_ID_MERGE", "simplified").lower()
    if id_merge not in ID_MERGE_MODES:
        raise ConfigError(f"MIXPANEL_ID_MERGE={id_merge!r}: expected one of {ID_MERGE_MODES}")
    api_url = environ.get("MIXPANEL_API_URL", "")
    if api_url and not api_url.startswith(("https://", "http://")):
        raise ConfigError(f"MIXPANEL_API_URL={api_url!r}: expected an http(s) URL")
    profile_currency = environ.get("PROFILE_CURRENCY", "").upper()
    if profile_currency and (len(profile_currency) != 3 or not profile_currency.isalpha()):
        raise ConfigError(f"PROFILE_CURRENCY={profile_currency!r}: expected an ISO 4217 code such as USD")
    stripe = _stripe_settings(environ)
    group_key = environ.get("GROUP_KEY", "").strip()
    if len(group_key) > 255 or group_key.startswith("$"):
        raise ConfigError(f"GROUP_KEY={group_key!r}: expected an event property name (not reserved, at most 255)")
    company_fallback = environ.get("COMPANY_FALLBACK", "none").strip().lower() or "none"
    if company_fallback not in COMPANY_FALLBACKS:
        raise ConfigError(f"COMPANY_FALLBACK={company_fallback!r}: expected one of {COMPANY_FALLBACKS}")
    prefix = environ.get("BROWSER_PROXY_PREFIX", "mp").strip().strip("/") or "mp"
    if not prefix.replace("-", "").replace("_", "").isalnum() or not prefix.isascii():
        raise ConfigError(f"BROWSER_PROXY_PREFIX={prefix!r}: expected one path segment of letters, digits, - or _")
    origins = _keys(environ, "BROWSER_PROXY_ORIGINS", ())
    for origin in origins:
        if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
            raise ConfigError(f"BROWSER_PROXY_ORIGINS: {origin!r} is not an origin such as https://www.example.com")
    reporting = _reporting(environ, profile_currency)
    return Settings(
        **stripe,
        events_queue_url=environ.get("EVENTS_QUEUE_URL", ""),
        dead_letter_queue_url=environ.get("DEAD_LETTER_QUEUE_URL", ""),
        ledger_table=environ.get("LEDGER_TABLE", ""),
        mixpanel_credentials_id=environ.get("MIXPANEL_CREDENTIALS_ID", ""),
        mixpanel_region=region,
        mixpanel_api_url=api_url,
        mode=mode,
        max_body_bytes=_int(environ, "MAX_BODY_BYTES", 512_000, minimum=1024),
        signature_tolerance_s=_int(environ, "SIGNATURE_TOLERANCE_SECONDS", 300, minimum=1),
        future_skew_s=_int(environ, "FUTURE_SKEW_SECONDS", 60, minimum=0),
        max_receive_count=_int(environ, "MAX_RECEIVE_COUNT", 5, minimum=1),
        id_merge=id_merge,
        user_id_keys=_keys(environ, "USER_ID_METADATA_KEYS", ("mixpanel_distinct_id", "user_id")),
        device_id_keys=_keys(environ, "DEVICE_ID_METADATA_KEYS", ("mixpanel_device_id",)),
        ip_keys=_keys(environ, "IP_METADATA_KEYS", ("mixpanel_ip", "ip")),
        send_email=_bool(environ, "SEND_EMAIL"),
        profile_currency=profile_currency,
        event_names=_json(environ, "EVENT_NAMES"),
        property_names=_json(environ, "PROPERTY_NAMES"),
        standard_webhooks_secrets_id=environ.get(STANDARD_WEBHOOKS_SECRET_ENV, ""),
        standard_webhooks_mapping=_json(environ, "STANDARD_WEBHOOKS_MAPPING"),
        shopify_max_age_s=_int(environ, "SHOPIFY_MAX_AGE_SECONDS", 86_400, minimum=60),
        debug_payloads=_bool(environ, "DEBUG_PAYLOADS"),
        mixpanel_connect_timeout_s=_float(environ, "MIXPANEL_CONNECT_TIMEOUT_SECONDS", 3.05),
        mixpanel_read_timeout_s=_float(environ, "MIXPANEL_READ_TIMEOUT_SECONDS", 20.0),
        mixpanel_backoff_base_s=_float(environ, "MIXPANEL_BACKOFF_BASE_SECONDS", 2.0),
        mixpanel_backoff_cap_s=_float(environ, "MIXPANEL_BACKOFF_CAP_SECONDS", 60.0),
        mixpanel_jitter_s=(
            _float(environ, "MIXPANEL_JITTER_MIN_SECONDS", 1.0),
            _float(environ, "MIXPANEL_JITTER_MAX_SECONDS", 5.0),
        ),
        test_events_queue_url=environ.get("TEST_EVENTS_QUEUE_URL", ""),
        test_dead_letter_queue_url=environ.get("TEST_DEAD_LETTER_QUEUE_URL", ""),
        mixpanel_test_credentials_id=environ.get("MIXPANEL_TEST_CREDENTIALS_ID", ""),
        browser_proxy_prefix=prefix,
        browser_proxy_origins=tuple(origin.rstrip("/") for origin in origins),
        browser_proxy_max_body_bytes=_int(environ, "BROWSER_PROXY_MAX_BODY_BYTES", 1_048_576, minimum=1024),
        group_key=group_key,
        company_id_keys=_keys(environ, "COMPANY_ID_METADATA_KEYS", ("mixpanel_company_id", "company_id")),
        company_fallback=company_fallback,
        **reporting,
        **_app_store_settings(environ),
    )


def _reporting(environ: Mapping[str, str], profile_currency: str) -> dict[str, Any]:
    """REPORTING_CURRENCY (PROFILE_CURRENCY, deprecated, serves when it is unset), its property names and rates."""
    currency = (environ.get("REPORTING_CURRENCY", "").strip() or profile_currency).upper()
    if currency and (len(currency) != 3 or not currency.isascii() or not currency.isalpha()):
        raise ConfigError(f"REPORTING_CURRENCY={currency!r}: expected an ISO 4217 code such as USD")
    fmt = environ.get("REPORTING_PROPERTY_FORMAT", "").strip() or "{property} ({currency})"
    try:
        example = fmt.format(property="Revenue", currency="USD")
    except (KeyError, IndexError, ValueError):
        example = ""
    if "Revenue" not in example or "{property}" not in fmt:
        raise ConfigError(
            f"REPORTING_PROPERTY_FORMAT={fmt!r}: expected a template with {{property}} and optionally {{currency}}, "
            'such as "{property} ({currency})"'
        )
    url = environ.get("REFERENCE_RATES_URL", "").strip() or ECB_RATES_URL
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"REFERENCE_RATES_URL={url!r}: expected an http(s) URL")
    return {
        "reporting_currency": currency,
        "reporting_format": fmt,
        "reference_rates_url": url if url.endswith("/") else url + "/",
        "rates_timeout_s": _float(environ, "REFERENCE_RATES_TIMEOUT_SECONDS", 10.0),
    }


def _stripe_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Stripe's API and what reads it (lookups, catch-up, the daily reconcile), checked like the rest."""
    urls = {name: environ.get(name, "").strip() for name in ("STRIPE_API_BASE", "MIXPANEL_EXPORT_URL")}
    for name, url in urls.items():
        if url and not url.startswith(("https://", "http://")):
            raise ConfigError(f"{name}={url!r}: expected an http(s) URL")
    return {
        "stripe_api_key_id": environ.get("STRIPE_API_KEY_ID", "").strip(),
        "stripe_api_base": urls["STRIPE_API_BASE"],
        "stripe_timeout_s": _float(environ, "STRIPE_TIMEOUT_SECONDS", 30.0),
        "refund_wait_deliveries": _int(environ, "REFUND_WAIT_DELIVERIES", 3, minimum=1),
        "catch_up_overlap_s": _int(environ, "CATCH_UP_OVERLAP_SECONDS", 3600, minimum=0),
        "catch_up_delay_s": _int(environ, "CATCH_UP_DELAY_SECONDS", 600, minimum=0),
        "reconcile_days": _int(environ, "RECONCILE_DAYS", 30, minimum=1),
        "mixpanel_export_url": urls["MIXPANEL_EXPORT_URL"],
    }


def _app_store_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """APPSTORE_ROOT_CERTIFICATES (comma-separated files), GOOGLE_OIDC_CERTS_URL, GOOGLE_PLAY_API_URL."""
    urls = {}
    for name, default in (
        ("GOOGLE_OIDC_CERTS_URL", GOOGLE_OIDC_CERTS_URL),
        ("GOOGLE_PLAY_API_URL", GOOGLE_PLAY_API_URL),
    ):
        url = environ.get(name, "").strip() or default
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{name}={url!r}: expected an http(s) URL")
        urls[name] = url.rstrip("/")
    return {
        "appstore_root_certificates": _keys(environ, "APPSTORE_ROOT_CERTIFICATES", ()),
        "google_oidc_certs_url": urls["GOOGLE_OIDC_CERTS_URL"],
        "google_play_api_url": urls["GOOGLE_PLAY_API_URL"],
    }


@cache
def settings() -> Settings:
    """The settings of this process, read once."""
    return from_environ(os.environ)


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value}: must be at least {minimum}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number of seconds") from None
    if value < 0:
        raise ConfigError(f"{name}={value}: must not be negative")
    return value


def _bool(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r}: expected true or false")


def _keys(environ: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = environ.get(name, "")
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    return keys or default


def _json(environ: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise ConfigError(f"{name}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a JSON object")
    return value
