"""App Store Server Notifications V2: Apple's library refuses what Apple did not sign for this app; each
notification type becomes its catalog facts with exact milli-unit money.

Payloads are Apple's published samples (tests/fixtures/appstore), re-signed with a test chain of Apple's
shape made at test time (devstack/stores/apple.py) that the provider is told to trust instead of Apple's root.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Fact
from revenue_webhooks.domain.money import Money
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.providers import appstore, get_provider
from revenue_webhooks.providers._appstore_trust import SHIPPED_ROOTS, AppStoreConfig, AppStoreConfigInvalid
from revenue_webhooks.providers._common import scaled_money
from revenue_webhooks.providers.base import PayloadInvalid, SignatureInvalid, WebhookRequest

from devstack.stores.apple import Chain

FIXTURES = Path(__file__).parents[2] / "fixtures" / "appstore"
CONFIG = json.dumps({"bundle_id": "com.example", "app_apple_id": 41234, "environment": ["Production", "Sandbox"]})
PRODUCTION_ONLY = json.dumps({"bundle_id": "com.example", "app_apple_id": 41234, "environment": "Production"})


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain.generate()


@pytest.fixture(scope="module")
def provider(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> appstore.AppStoreProvider:
    root = chain.save(tmp_path_factory.mktemp("apple"))
    found = get_provider("appstore", from_environ({"MODE": "any", "APPSTORE_ROOT_CERTIFICATES": str(root)}))
    assert isinstance(found, appstore.AppStoreProvider)
    return found


def notification(
    kind: str,
    subtype: str | None = None,
    *,
    environment: str = "Production",
    transaction: dict[str, Any] | None = None,
    renewal: dict[str, Any] | None = None,
    uuid: str = "002e14d5-51f5-4503-b5a8-c3a1af68eb20",
) -> dict[str, Any]:
    """Apple's sample notification as `kind`/`subtype`, carrying Apple's sample transaction and renewal info."""
    payload = fixture("signedNotification")
    payload.update(notificationType=kind, notificationUUID=uuid)
    payload.pop("subtype", None)
    if subtype:
        payload["subtype"] = subtype
    payload["data"]["environment"] = environment
    payload["data"]["signedTransactionInfo"] = {
        **fixture("signedTransaction"),
        "environment": environment,
        **(transaction or {}),
    }
    payload["data"]["signedRenewalInfo"] = {
        **fixture("signedRenewalInfo"),
        "environment": environment,
        **(renewal or {}),
    }
    return payload


def request(body: bytes) -> WebhookRequest:
    return WebhookRequest(body, {"content-type": "application/json"}, int(time.time() * 1000), "appstore")


def facts(provider: appstore.AppStoreProvider, chain: Chain, payload: dict[str, Any]) -> list[Fact]:
    body = chain.notification_body(payload)
    provider.verify(request(body), [CONFIG])
    mapped = provider.map(QueuedEvent("appstore", payload["notificationUUID"], payload["notificationType"], 0, body))
    assert all(isinstance(item, Fact) for item in mapped)
    return [item for item in mapped if isinstance(item, Fact)]


# ---- Apple's root, and what verification refuses -----------------------------------------------


def test_the_shipped_root_is_apple_root_ca_g3_by_its_published_fingerprint() -> None:
    (root,) = SHIPPED_ROOTS
    assert hashlib.sha256(root.read_bytes()).hexdigest().upper() == (
        "63343ABFB89A6A03EBB57E9B3F5FA7BE7C4F5C756F3017B3A8C488C3653E9179"
    )


def test_a_notification_signed_by_the_trusted_chain_verifies_and_parses(provider: Any, chain: Chain) -> None:
    body = chain.notification_body(notification("SUBSCRIBED", "INITIAL_BUY"))
    provider.verify(request(body), [CONFIG])
    parsed = provider.parse(request(body))
    assert (parsed.event_id, parsed.event_type, parsed.livemode) == (
        "002e14d5-51f5-4503-b5a8-c3a1af68eb20",
        "SUBSCRIBED",
        True,
    )


def test_sandbox_is_test_mode_and_production_live(provider: Any, chain: Chain) -> None:
    body = chain.notification_body(notification("DID_RENEW", environment="Sandbox"))
    provider.verify(request(body), [CONFIG])
    assert provider.parse(request(body)).livemode is False


def test_a_chain_to_another_root_is_refused(provider: Any) -> None:
    stranger = Chain.generate(name="Not Apple")
    with pytest.raises(SignatureInvalid, match="VERIFICATION_FAILURE"):
        provider.verify(request(stranger.notification_body(notification("DID_RENEW"))), [CONFIG])


def test_a_certificate_expired_when_the_notification_was_signed_is_refused(tmp_path: Path) -> None:
    expired = Chain.generate(leaf_not_after=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    root = expired.save(tmp_path)
    trusting = appstore.create(from_environ({"APPSTORE_ROOT_CERTIFICATES": str(root)}))
    body = expired.notification_body(notification("DID_RENEW"))  # signedDate 2023-10-24, leaf ended 2020
    with pytest.raises(SignatureInvalid, match="VERIFICATION_FAILURE"):
        trusting.verify(request(body), [CONFIG])
    still_valid = notification("DID_RENEW")
    still_valid["signedDate"] = int(dt.datetime(2019, 6, 1, tzinfo=dt.UTC).timestamp() * 1000)
    trusting.verify(request(expired.notification_body(still_valid)), [CONFIG])  # checked at signedDate


@pytest.mark.parametrize(
    ("config", "status"),
    [
        ({"bundle_id": "com.example.other", "app_apple_id": 41234}, "INVALID_APP_IDENTIFIER"),
        ({"bundle_id": "com.example", "app_apple_id": 99999}, "INVALID_APP_IDENTIFIER"),
    ],
)
def test_another_app_is_refused(provider: Any, chain: Chain, config: dict[str, Any], status: str) -> None:
    body = chain.notification_body(notification("DID_RENEW"))
    with pytest.raises(SignatureInvalid, match=status):
        provider.verify(request(body), [json.dumps(config)])


def test_an_environment_the_deployment_does_not_take_is_refused(provider: Any, chain: Chain) -> None:
    body = chain.notification_body(notification("DID_RENEW", environment="Sandbox"))
    with pytest.raises(SignatureInvalid, match="INVALID_ENVIRONMENT"):
        provider.verify(request(body), [PRODUCTION_ONLY])


def test_a_tampered_payload_is_refused(provider: Any, chain: Chain) -> None:
    signed = json.loads(chain.notification_body(notification("DID_RENEW")))["signedPayload"]
    header, payload, signature = signed.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded["notificationType"] = "REFUND"
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    with pytest.raises(SignatureInvalid, match="VERIFICATION_FAILURE"):
        provider.verify(request(json.dumps({"signedPayload": f"{header}.{forged}.{signature}"}).encode()), [CONFIG])


def test_an_unsigned_or_hmac_jws_is_refused(provider: Any) -> None:
    import jwt

    payload = notification("DID_RENEW")
    for token in (
        jwt.encode(payload, None, algorithm="none"),
        jwt.encode(payload, "a-shared-secret-of-32-bytes-or-more!", algorithm="HS256"),
    ):
        with pytest.raises(SignatureInvalid):
            provider.verify(request(json.dumps({"signedPayload": token}).encode()), [CONFIG])


@pytest.mark.parametrize("body", [b"{}", b'{"signedPayload": 42}', b'{"signedPayload": "not.a.jws.at.all"}', b"[]"])
def test_bodies_without_a_signed_payload_are_refused(provider: Any, body: bytes) -> None:
    with pytest.raises((PayloadInvalid, SignatureInvalid)):
        provider.verify(request(body), [CONFIG])


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("{}", "bundle_id"),
        ('{"bundle_id": "com.example", "environment": "Xcode"}', "Xcode"),
        ('{"bundle_id": "com.example", "environment": ["LocalTesting"]}', "LocalTesting"),
        ('{"bundle_id": "com.example", "environment": "Production"}', "app_apple_id"),
        ("not json", "not JSON"),
    ],
)
def test_an_unusable_app_store_config_verifies_nothing(secret: str, message: str) -> None:
    with pytest.raises(AppStoreConfigInvalid, match=message):
        AppStoreConfig.from_secret(secret)


def test_no_config_verifies_nothing(provider: Any, chain: Chain) -> None:
    body = chain.notification_body(notification("DID_RENEW"))
    for secrets in ([], ["{}"]):
        with pytest.raises(SignatureInvalid):
            provider.verify(request(body), secrets)


# ---- money ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("milli", "currency", "minor"),
    [(10990, "USD", 1099), (1200000, "JPY", 1200), (4990, "KWD", 4990), (1250, "KWD", 1250), (990, "EUR", 99)],
)
def test_milli_units_convert_exactly_to_minor_units(milli: int, currency: str, minor: int) -> None:
    assert scaled_money(milli, 3, currency) == Money(minor, currency)


def test_a_price_finer_than_the_currency_is_not_guessed() -> None:
    assert scaled_money(10995, 3, "USD") is None
    assert scaled_money(1200500, 3, "JPY") is None
    assert scaled_money(10995, 3, "USD", round_half_up=True) == Money(1100, "USD")


# ---- mapping ----------------------------------------------------------------------------------


def test_an_initial_subscription_is_a_purchase_and_a_start(provider: Any, chain: Chain) -> None:
    purchase, started = facts(provider, chain, notification("SUBSCRIBED", "INITIAL_BUY"))
    assert purchase.event == c.PURCHASE_COMPLETED and purchase.key == "appstore:payment:23456"
    assert purchase.money == Money(1099, "USD") and purchase.money.revenue() == 10.99
    assert purchase.properties[c.PURCHASE_TYPE] == c.SUBSCRIPTION_INITIAL
    assert purchase.properties[c.STOREFRONT] == "USA"
    assert purchase.identity.user_id == "7e3fb20b-4cdb-47cc-936d-99d65f608138"  # appAccountToken
    assert purchase.time == 1698148900  # purchaseDate
    assert started.event == c.SUBSCRIPTION_STARTED and started.key == "appstore:subscription-start:12345"


def test_a_resubscription_starts_again_under_its_own_key(provider: Any, chain: Chain) -> None:
    _, started = facts(provider, chain, notification("SUBSCRIBED", "RESUBSCRIBE", transaction={"transactionId": "777"}))
    assert started.key == "appstore:subscription-start:12345:777"


def test_a_free_trial_starts_trialing_and_collects_nothing(provider: Any, chain: Chain) -> None:
    (started,) = facts(
        provider,
        chain,
        notification("SUBSCRIBED", "INITIAL_BUY", transaction={"price": 0, "offerDiscountType": "FREE_TRIAL"}),
    )
    assert started.properties[c.STATUS] == "trialing" and c.TRIAL_END in started.properties


def test_a_renewal_is_a_purchase_and_a_renewal_keyed_by_its_transaction(provider: Any, chain: Chain) -> None:
    purchase, renewed = facts(provider, chain, notification("DID_RENEW", transaction={"transactionId": "23457"}))
    assert (purchase.key, renewed.key) == ("appstore:payment:23457", "appstore:subscription-renewal:23457")
    assert purchase.properties[c.PURCHASE_TYPE] == c.SUBSCRIPTION_RENEWAL and renewed.money == Money(1099, "USD")


@pytest.mark.parametrize(
    ("price", "currency", "storefront", "minor", "revenue"),
    [(1200000, "JPY", "JPN", 1200, 1200), (4990, "KWD", "KWT", 4990, 4.99), (2990, "EUR", "FRA", 299, 2.99)],
)
def test_a_one_time_charge_keeps_its_currency_exactly(
    provider: Any, chain: Chain, price: int, currency: str, storefront: str, minor: int, revenue: float
) -> None:
    transaction = {"type": "Consumable", "price": price, "currency": currency, "storefront": storefront}
    (purchase,) = facts(provider, chain, notification("ONE_TIME_CHARGE", transaction=transaction))
    assert purchase.money == Money(minor, currency) and purchase.money.revenue() == revenue
    assert purchase.properties[c.PURCHASE_TYPE] == c.ONE_TIME and purchase.properties[c.STOREFRONT] == storefront


def test_a_full_refund_takes_back_the_price(provider: Any, chain: Chain) -> None:
    (refund,) = facts(provider, chain, notification("REFUND", transaction={"revocationType": "REFUND_FULL"}))
    assert refund.event == c.REFUND_ISSUED and refund.key == "appstore:refund:23456"
    assert refund.money == Money(1099, "USD") and refund.time == 1698148950  # revocationDate
    assert refund.identity.user_id == "7e3fb20b-4cdb-47cc-936d-99d65f608138"
    assert refund.profile is not None and refund.profile.revenue == Money(-1099, "USD")


def test_a_prorated_refund_is_its_share_of_the_price(provider: Any, chain: Chain) -> None:
    revoked = fixture("signedTransactionWithRevocation")  # REFUND_PRORATED, 50000 milli-percent of 10990
    (refund,) = facts(provider, chain, notification("REFUND", transaction={**revoked, "environment": "Production"}))
    assert refund.money == Money(550, "USD")  # 5.495 rounded half up


def test_auto_renew_off_schedules_a_cancellation_and_on_reactivates(provider: Any, chain: Chain) -> None:
    (scheduled,) = facts(provider, chain, notification("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED"))
    assert scheduled.event == c.SUBSCRIPTION_CANCELLATION_SCHEDULED
    assert scheduled.properties[c.CANCEL_AT] == "2023-10-24T12:03:20Z"  # expiresDate
    (reactivated,) = facts(
        provider,
        chain,
        notification("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED", uuid="0f0f0f0f-0000-4000-8000-000000000001"),
    )
    assert reactivated.event == c.SUBSCRIPTION_REACTIVATED


def test_an_upgrade_is_charged_now_and_a_downgrade_waits(provider: Any, chain: Chain) -> None:
    paid, changed = facts(provider, chain, notification("DID_CHANGE_RENEWAL_PREF", "UPGRADE"))
    assert paid.properties[c.PURCHASE_TYPE] == c.SUBSCRIPTION_UPDATE and changed.event == c.SUBSCRIPTION_CHANGED
    (downgrade,) = facts(provider, chain, notification("DID_CHANGE_RENEWAL_PREF", "DOWNGRADE"))
    assert (downgrade.properties[c.FROM_PLAN], downgrade.properties[c.TO_PLAN]) == (
        "com.example.product",
        "com.example.product.2",
    )


def test_expiry_and_family_revocation_end_the_subscription(provider: Any, chain: Chain) -> None:
    (expired,) = facts(provider, chain, notification("EXPIRED", "VOLUNTARY"))
    assert expired.event == c.SUBSCRIPTION_CANCELLED and expired.properties[c.REASON] == "VOLUNTARY"
    assert expired.time == 1698149000 and expired.key == "appstore:subscription-end:12345:23456"
    (revoked,) = facts(provider, chain, notification("REVOKE", transaction={"inAppOwnershipType": "FAMILY_SHARED"}))
    assert revoked.key == expired.key  # one ending, however Apple says it


@pytest.mark.parametrize(("kind", "reason"), [("DID_FAIL_TO_RENEW", "GRACE_PERIOD"), ("GRACE_PERIOD_EXPIRED", None)])
def test_billing_trouble_is_a_payment_failure(provider: Any, chain: Chain, kind: str, reason: str | None) -> None:
    (failed,) = facts(provider, chain, notification(kind, reason))
    assert failed.event == c.PAYMENT_FAILED and failed.money == Money(999, "USD")  # renewalPrice
    assert failed.profile is not None and failed.profile.status == "past_due"


def test_offers_and_price_increases(provider: Any, chain: Chain) -> None:
    purchase, started = facts(provider, chain, notification("OFFER_REDEEMED", "INITIAL_BUY"))
    assert (purchase.event, started.event) == (c.PURCHASE_COMPLETED, c.SUBSCRIPTION_STARTED)
    (accepted,) = facts(provider, chain, notification("PRICE_INCREASE", "ACCEPTED"))
    assert accepted.event == c.SUBSCRIPTION_CHANGED and accepted.properties[c.REASON] == "price_increase_accepted"
    assert facts(provider, chain, notification("PRICE_INCREASE", "PENDING")) == []


def test_unmapped_types_are_acknowledged_not_queued(provider: Any) -> None:
    for kind in ("TEST", "CONSUMPTION_REQUEST", "RENEWAL_EXTENSION", "REFUND_DECLINED", "METADATA_UPDATE"):
        assert not provider.is_relevant(kind)
    assert all(provider.is_relevant(kind) for kind in appstore.PRODUCES)


def test_a_summary_notification_parses_its_environment(provider: Any, chain: Chain) -> None:
    summary = copy.deepcopy(fixture("signedSummaryNotification"))
    summary["summary"]["environment"] = "Sandbox"
    body = chain.notification_body(summary)
    provider.verify(request(body), [CONFIG])
    parsed = provider.parse(request(body))
    assert (parsed.event_type, parsed.livemode) == ("RENEWAL_EXTENSION", False)
