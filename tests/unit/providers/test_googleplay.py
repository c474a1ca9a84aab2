"""Google Play notifications: only Pub/Sub's token for the configured push account and audience passes;
the forwarder's mapping reads the Play Developer API's purchase and order, money from `Money` in nanos.

Google's side is the local stand-in (devstack/stores/google.py): its OIDC keys, token endpoint and API
(documents checked against Google's discovery schemas), over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from revenue_webhooks.adapters.google_play import GooglePlayApi
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Deferred, Fact
from revenue_webhooks.domain.lookups import Lookup, LookupFailed
from revenue_webhooks.domain.money import Money
from revenue_webhooks.domain.webhook import QueuedEvent
from revenue_webhooks.providers import googleplay, sign
from revenue_webhooks.providers._google_push import KeysUnavailable
from revenue_webhooks.providers.base import PayloadInvalid, SignatureInvalid, WebhookRequest

from devstack.stores.google import LOCAL_PACKAGE, GoogleStandIn

ROOT = Path(__file__).parents[3]
AUDIENCE = "https://example.execute-api.us-east-1.amazonaws.com/webhooks/googleplay"
SUBSCRIPTION_TOKEN = "kelgmnbpfhlpkkfjcbacgcgo.AO-J1OxUjMZPfYEXAMPLEsubscriptiontoken01"


@pytest.fixture(scope="module")
def google(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoogleStandIn]:
    with GoogleStandIn(tmp_path_factory.mktemp("google")) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def provider(google: GoogleStandIn) -> googleplay.GooglePlayProvider:
    settings = from_environ(
        {"MODE": "any", "GOOGLE_OIDC_CERTS_URL": google.certs_url, "GOOGLE_PLAY_API_URL": google.url}
    )
    return googleplay.create(settings)


def sample(name: str) -> bytes:
    return (ROOT / "events" / "googleplay" / f"{name}.json").read_bytes()


def push(body: bytes, token: str) -> WebhookRequest:
    return WebhookRequest(body, sign("googleplay", body, token), int(time.time() * 1000), "googleplay")


def mapped(provider: Any, google: GoogleStandIn, body: bytes) -> list[Fact | Deferred]:
    """What the forwarder does: fetch what the mapping asks for through the adapter, then map."""
    event = QueuedEvent("googleplay", "m", "t", 0, body)
    wanted = provider.lookups(event)
    found = GooglePlayApi(google.credentials, google.url).fetch(list(wanted)) if wanted else {}
    assert not any(isinstance(value, LookupFailed) for value in found.values()), found
    return provider.map_with(event, found)


def notification_body(message_id: str, **notification: Any) -> bytes:
    return googleplay.push_body(
        {"version": "1.0", "packageName": LOCAL_PACKAGE, "eventTimeMillis": "1767225605000", **notification},
        message_id,
        "2026-01-01T00:00:06.000Z",
        "projects/example-project/subscriptions/play-rtdn-push",
    )


# ---- the push token --------------------------------------------------------------------------------


def test_a_push_with_the_subscriptions_token_verifies_and_parses(provider: Any, google: GoogleStandIn) -> None:
    body = sample("SUBSCRIPTION_PURCHASED")
    provider.verify(push(body, google.push_token(AUDIENCE)), [google.push_config(AUDIENCE)])
    parsed = provider.parse(push(body, ""))
    assert (parsed.event_id, parsed.event_type, parsed.livemode) == ("16543210000001", "SUBSCRIPTION_PURCHASED", None)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"audience": "https://elsewhere.example/webhooks/googleplay"}, "audience"),
        ({"email": "someone-else@example.iam.gserviceaccount.com"}, "service account"),
        ({"issuer": "https://issuer.example"}, "issuer"),
        ({"lifetime_s": -120}, "expired"),
    ],
)
def test_a_token_for_anyone_else_is_refused(
    provider: Any, google: GoogleStandIn, claims: dict[str, Any], reason: str
) -> None:
    audience = claims.pop("audience", AUDIENCE)
    token = google.push_token(audience, **claims)
    with pytest.raises(SignatureInvalid, match=reason):
        provider.verify(push(sample("SUBSCRIPTION_PURCHASED"), token), [google.push_config(AUDIENCE)])


def test_a_token_signed_by_another_key_is_refused(provider: Any, google: GoogleStandIn, tmp_path: Path) -> None:
    with GoogleStandIn(tmp_path) as impostor:  # same claims, a key Google never published
        token = impostor.push_token(AUDIENCE)
    with pytest.raises(SignatureInvalid, match="refused"):
        provider.verify(push(sample("SUBSCRIPTION_PURCHASED"), token), [google.push_config(AUDIENCE)])


def test_a_tampered_token_is_refused(provider: Any, google: GoogleStandIn) -> None:
    header, claims, signature = google.push_token(AUDIENCE).split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=="))
    decoded["email"] = "attacker@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    with pytest.raises(SignatureInvalid):
        provider.verify(
            push(sample("SUBSCRIPTION_PURCHASED"), f"{header}.{forged}.{signature}"), [google.push_config(AUDIENCE)]
        )


@pytest.mark.parametrize("authorization", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt"])
def test_a_push_without_a_bearer_token_is_refused(
    provider: Any, google: GoogleStandIn, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    request = WebhookRequest(sample("SUBSCRIPTION_PURCHASED"), headers, 0, "googleplay")
    with pytest.raises(SignatureInvalid):
        provider.verify(request, [google.push_config(AUDIENCE)])


def test_a_notification_for_another_app_is_refused(provider: Any, google: GoogleStandIn) -> None:
    token = google.push_token(AUDIENCE)
    with pytest.raises(SignatureInvalid, match="package"):
        provider.verify(
            push(sample("SUBSCRIPTION_PURCHASED"), token), [google.push_config(AUDIENCE, ("com.other.app",))]
        )


def test_no_push_config_verifies_nothing(provider: Any, google: GoogleStandIn) -> None:
    for secrets in ([], ["{}"], ['{"audience": "x"}']):
        with pytest.raises(SignatureInvalid):
            provider.verify(push(sample("SUBSCRIPTION_PURCHASED"), google.push_token(AUDIENCE)), secrets)


def test_googles_keys_are_fetched_once_not_per_push(provider: Any, google: GoogleStandIn) -> None:
    before = sum(1 for method, path, _ in google.requests if path == "/oauth2/v1/certs")
    for _ in range(3):
        provider.verify(
            push(sample("SUBSCRIPTION_CANCELED"), google.push_token(AUDIENCE)), [google.push_config(AUDIENCE)]
        )
    after = sum(1 for method, path, _ in google.requests if path == "/oauth2/v1/certs")
    assert after - before <= 1


def test_unreachable_keys_answer_503_so_pubsub_retries(google: GoogleStandIn) -> None:
    cut_off = googleplay.create(from_environ({"GOOGLE_OIDC_CERTS_URL": "http://127.0.0.1:9/oauth2/v1/certs"}))
    with pytest.raises(KeysUnavailable) as refused:
        cut_off.verify(
            push(sample("SUBSCRIPTION_PURCHASED"), google.push_token(AUDIENCE)), [google.push_config(AUDIENCE)]
        )
    assert refused.value.status == 503


def test_googles_published_envelope_is_read_and_its_schema_text_refused(provider: Any) -> None:
    published = (ROOT / "tests" / "fixtures" / "googleplay" / "pubsub_push_example.json").read_bytes()
    with pytest.raises(PayloadInvalid, match="DeveloperNotification"):
        provider.parse(push(published, ""))


@pytest.mark.parametrize(
    "body", [b"{}", b'{"message": {"messageId": "1"}}', b'{"message": {"data": "!!", "messageId": "1"}}']
)
def test_bodies_that_are_not_pushes_are_refused(provider: Any, body: bytes) -> None:
    with pytest.raises(PayloadInvalid):
        provider.parse(push(body, ""))


def test_the_test_notification_is_acknowledged_and_ignored(provider: Any) -> None:
    parsed = provider.parse(push(sample("TEST_NOTIFICATION"), ""))
    assert parsed.event_type == "TEST_NOTIFICATION" and not provider.is_relevant(parsed.event_type)


# ---- mapping with the API's answers -------------------------------------------------------------------


def test_a_subscription_purchase_is_priced_by_its_order(provider: Any, google: GoogleStandIn) -> None:
    purchase, started = mapped(provider, google, sample("SUBSCRIPTION_PURCHASED"))
    assert isinstance(purchase, Fact) and isinstance(started, Fact)
    assert purchase.key == "googleplay:payment:GPA.3312-4455-6677-88990"
    assert purchase.money == Money(1069, "USD")  # the order's total, tax included: 10 units + 690000000 nanos
    assert purchase.identity.user_id == "user-7f3a"  # obfuscatedExternalAccountId
    assert purchase.properties[c.STOREFRONT] == "US" and purchase.properties[c.PLAN] == "pro_monthly"
    assert started.key == f"googleplay:subscription-start:{SUBSCRIPTION_TOKEN}"


@pytest.mark.parametrize(
    ("name", "money"),
    [("ONE_TIME_PRODUCT_PURCHASED.jpy", Money(1200, "JPY")), ("ONE_TIME_PRODUCT_PURCHASED.kwd", Money(1250, "KWD"))],
)
def test_one_time_purchases_keep_their_currency_exactly(
    provider: Any, google: GoogleStandIn, name: str, money: Money
) -> None:
    (purchase,) = mapped(provider, google, sample(name))
    assert isinstance(purchase, Fact) and purchase.money == money
    assert purchase.properties[c.PURCHASE_TYPE] == c.ONE_TIME


def test_a_renewal_is_keyed_by_its_order_so_redeliveries_collapse(provider: Any, google: GoogleStandIn) -> None:
    renewal = json.loads(json.dumps(google.documents["subscriptions"][SUBSCRIPTION_TOKEN]))
    renewal["lineItems"][0]["latestSuccessfulOrderId"] = "GPA.3312-4455-6677-88990..0"
    google.put("subscriptions", "renewed-token", renewal)
    order = dict(google.documents["orders"]["GPA.3312-4455-6677-88990"], orderId="GPA.3312-4455-6677-88990..0")
    google.put("orders", "GPA.3312-4455-6677-88990..0", order)
    body = notification_body(
        "m-renew", subscriptionNotification={"version": "1.0", "notificationType": 2, "purchaseToken": "renewed-token"}
    )
    first, again = mapped(provider, google, body), mapped(provider, google, body)
    assert [f.key for f in first if isinstance(f, Fact)] == [
        "googleplay:payment:GPA.3312-4455-6677-88990..0",
        "googleplay:subscription-renewal:GPA.3312-4455-6677-88990..0",
    ]
    assert first == again


def test_a_refund_takes_the_orders_refunded_amount(provider: Any, google: GoogleStandIn) -> None:
    (refund,) = mapped(provider, google, sample("VOIDED_PURCHASE"))
    assert isinstance(refund, Fact) and refund.event == c.REFUND_ISSUED
    assert refund.key == "googleplay:refund:GPA.3345-6789-0123-45678" and refund.money == Money(1200, "JPY")
    assert refund.identity.user_id == "user-jp-01" and refund.properties[c.REASON] == "OTHER"


def test_partial_refunds_count_each_processed_one(provider: Any, google: GoogleStandIn) -> None:
    order = json.loads(json.dumps(google.documents["orders"]["GPA.3323-5566-7788-99001"]))
    order["orderHistory"]["partialRefundEvents"] = [
        {
            "createTime": "2026-01-04T00:00:00Z",
            "processTime": "2026-01-04T00:01:00Z",
            "state": "PROCESSED_SUCCESSFULLY",
            "refundDetails": {"total": {"currencyCode": "KWD", "units": "0", "nanos": 625000000}},
        },
        {
            "createTime": "2026-01-05T00:00:00Z",
            "state": "PENDING",
            "refundDetails": {"total": {"currencyCode": "KWD", "units": "0", "nanos": 625000000}},
        },
    ]
    google.put("orders", "GPA.3323-5566-7788-99001", order)
    body = notification_body(
        "m-partial",
        voidedPurchaseNotification={
            "purchaseToken": "pjhcdjcbobgdnnlamhdemofc.AO-J1OzKWDEXAMPLEonetimetoken01",
            "orderId": "GPA.3323-5566-7788-99001",
            "productType": 2,
            "refundType": 2,
        },
    )
    (refund,) = mapped(provider, google, body)
    assert isinstance(refund, Fact) and refund.money == Money(625, "KWD")


def test_cancellation_expiry_and_revocation(provider: Any, google: GoogleStandIn) -> None:
    (scheduled,) = mapped(provider, google, sample("SUBSCRIPTION_CANCELED"))
    assert isinstance(scheduled, Fact) and scheduled.event == c.SUBSCRIPTION_CANCELLATION_SCHEDULED
    assert scheduled.properties[c.CANCEL_AT] == "2026-02-01T00:00:00Z"
    ends = [
        mapped(
            provider,
            google,
            notification_body(
                f"m-{code}",
                subscriptionNotification={
                    "version": "1.0",
                    "notificationType": code,
                    "purchaseToken": SUBSCRIPTION_TOKEN,
                },
            ),
        )[0]
        for code in (12, 13)
    ]
    assert {f.key for f in ends if isinstance(f, Fact)} == {f"googleplay:subscription-end:{SUBSCRIPTION_TOKEN}"}


def test_a_testers_purchase_is_a_test_event(google: GoogleStandIn) -> None:
    tester = json.loads(
        json.dumps(google.documents["products"]["pjhcdjcbobgdnnlamhdemofc.AO-J1OzKWDEXAMPLEonetimetoken01"])
    )
    tester["testPurchaseContext"] = {"fopType": "TEST"}
    google.put("products", "tester-token", tester)
    body = notification_body(
        "m-tester",
        oneTimeProductNotification={
            "version": "1.0",
            "notificationType": 1,
            "purchaseToken": "tester-token",
            "sku": "lifetime",
        },
    )
    for mode, count in (("live", 0), ("test", 1), ("any", 1)):
        settings = from_environ({"MODE": mode, "GOOGLE_PLAY_API_URL": google.url})
        assert len(mapped(googleplay.create(settings), google, body)) == count, mode


def test_without_the_api_a_notification_waits(provider: Any) -> None:
    event = QueuedEvent("googleplay", "m", "t", 0, sample("SUBSCRIPTION_PURCHASED"))
    (waiting,) = provider.map(event)
    assert isinstance(waiting, Deferred)


# ---- the adapter and the stand-in ----------------------------------------------------------------------


def test_an_api_outage_is_transient_and_an_unknown_token_final(google: GoogleStandIn) -> None:
    api = GooglePlayApi(google.credentials, google.url)
    lookup = Lookup("googleplay", "subscription", (LOCAL_PACKAGE, SUBSCRIPTION_TOKEN))
    google.fail_next(1, 503)
    (outage,) = api.fetch([lookup]).values()
    assert isinstance(outage, LookupFailed) and outage.transient and outage.reason == "play_api_unavailable"
    (unknown,) = api.fetch([Lookup("googleplay", "subscription", (LOCAL_PACKAGE, "no-such-token"))]).values()
    assert isinstance(unknown, LookupFailed) and not unknown.transient
    (forbidden,) = api.fetch([Lookup("googleplay", "product", ("com.other.app", "t"))]).values()
    assert isinstance(forbidden, LookupFailed) and forbidden.transient and forbidden.reason == "play_api_forbidden"
    assert not isinstance(api.fetch([lookup])[lookup], LookupFailed)


def test_a_bad_key_in_the_credentials_is_an_operators_problem(google: GoogleStandIn) -> None:
    (failed,) = (
        GooglePlayApi(lambda: "{}", google.url).fetch([Lookup("googleplay", "product", (LOCAL_PACKAGE, "t"))]).values()
    )
    assert isinstance(failed, LookupFailed) and failed.reason == "play_api_credentials" and failed.transient


def test_the_local_api_serves_what_googles_discovery_document_allows(google: GoogleStandIn) -> None:
    api = GooglePlayApi(google.credentials, google.url)
    for name in ("SUBSCRIPTION_PURCHASED", "ONE_TIME_PRODUCT_PURCHASED.jpy", "ONE_TIME_PRODUCT_PURCHASED.kwd"):
        provider = googleplay.create(from_environ({}))
        api.fetch(list(provider.lookups(QueuedEvent("googleplay", "m", "t", 0, sample(name)))))
    assert google.spec_violations() == []


def test_the_spec_check_catches_a_field_google_does_not_send(google: GoogleStandIn, tmp_path: Path) -> None:
    with GoogleStandIn(tmp_path) as fresh:
        fresh.put("orders", "GPA.1", {"orderId": "GPA.1", "totalMicros": "990000"})
        GooglePlayApi(fresh.credentials, fresh.url).fetch(
            [
                Lookup(
                    "googleplay",
                    "product",
                    (LOCAL_PACKAGE, "pjhcdjcbobgdnnlamhdemofc.AO-J1OzKWDEXAMPLEonetimetoken01", "GPA.1"),
                )
            ]
        )
        assert [v["message"] for v in fresh.spec_violations()] == [
            "Additional properties are not allowed ('totalMicros' was unexpected)"
        ]


def test_a_purchase_awaiting_payment_has_not_started(provider: Any, google: GoogleStandIn) -> None:
    pending = json.loads(json.dumps(google.documents["subscriptions"][SUBSCRIPTION_TOKEN]))
    pending["subscriptionState"] = "SUBSCRIPTION_STATE_PENDING"
    del pending["lineItems"][0]["latestSuccessfulOrderId"]
    google.put("subscriptions", "pending-token", pending)
    body = notification_body(
        "m-pending",
        subscriptionNotification={"version": "1.0", "notificationType": 4, "purchaseToken": "pending-token"},
    )
    assert mapped(provider, google, body) == []


# ---- subscription economics: tax, net and MRR from the order (by hand from events/googleplay/play-api) -------


def _order(order_id: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / "googleplay" / "play-api" / "orders.json").read_text())[order_id]


def _minor(money: dict[str, Any], exponent: int) -> int:
    """A Google Money in minor units, by hand: units and nanos (10^-9)."""
    return int(money["units"]) * 10**exponent + money.get("nanos", 0) // 10 ** (9 - exponent)


def test_a_subscription_purchase_states_its_tax_and_its_mrr(provider: Any, google: GoogleStandIn) -> None:
    purchase, started = mapped(provider, google, sample("SUBSCRIPTION_PURCHASED"))
    order = _order("GPA.3312-4455-6677-88990")
    line = order["lineItems"][0]
    assert isinstance(purchase, Fact) and isinstance(started, Fact) and purchase.amounts is not None
    assert purchase.amounts.tax == Money(_minor(order["tax"], 2), "USD")  # 0.70
    assert purchase.amounts.net(purchase.money) == Money(1069 - 70, "USD")  # what the listing price says: 9.99
    # A monthly base plan (2026-01-01 to 2026-02-01, 31 days): the line's total without tax is the MRR.
    mrr = _minor(line["total"], 2) - _minor(line["tax"], 2)
    assert started.mrr is not None and started.mrr.after == Money(mrr, "USD") == Money(999, "USD")
    assert started.mrr.change == Money(999, "USD") and started.mrr.movement == "New"


def test_a_yearly_renewal_is_a_twelfth_a_month_and_claims_no_change(provider: Any, google: GoogleStandIn) -> None:
    renewal = json.loads(json.dumps(google.documents["subscriptions"][SUBSCRIPTION_TOKEN]))
    renewal["lineItems"][0]["latestSuccessfulOrderId"] = "GPA.3312-4455-6677-88990..1"
    google.put("subscriptions", "yearly-token", renewal)
    order = json.loads(json.dumps(_order("GPA.3312-4455-6677-88990")))
    order["orderId"] = "GPA.3312-4455-6677-88990..1"
    line = order["lineItems"][0]
    line["total"] = order["total"] = {"currencyCode": "EUR", "units": "119", "nanos": 0}
    line["tax"] = order["tax"] = {"currencyCode": "EUR", "units": "19", "nanos": 0}
    line["subscriptionDetails"]["servicePeriodStartTime"] = "2026-02-01T00:00:00Z"
    line["subscriptionDetails"]["servicePeriodEndTime"] = "2027-02-01T00:00:00Z"
    google.put("orders", order["orderId"], order)
    body = notification_body(
        "m-yearly", subscriptionNotification={"version": "1.0", "notificationType": 2, "purchaseToken": "yearly-token"}
    )
    purchase, renewed = mapped(provider, google, body)
    assert isinstance(purchase, Fact) and isinstance(renewed, Fact) and purchase.amounts is not None
    assert purchase.money == Money(11900, "EUR") and purchase.amounts.tax == Money(1900, "EUR")
    assert renewed.mrr is not None and renewed.mrr.after == Money(833, "EUR")  # (119.00 - 19.00) / 12 = 8.333...
    assert renewed.mrr.change is None and renewed.mrr.movement is None  # what it was before, the order does not say


def test_an_expiry_churns_what_the_last_order_billed(provider: Any, google: GoogleStandIn) -> None:
    body = notification_body(
        "m-expired",
        subscriptionNotification={"version": "1.0", "notificationType": 13, "purchaseToken": SUBSCRIPTION_TOKEN},
    )
    (ended,) = mapped(provider, google, body)
    assert isinstance(ended, Fact) and ended.mrr is not None
    assert ended.mrr.after == Money(0, "USD") and ended.mrr.change == Money(-999, "USD")
    assert ended.mrr.movement == "Churn"


def test_a_free_trial_counts_zero_until_paid(provider: Any, google: GoogleStandIn) -> None:
    trial = json.loads(json.dumps(google.documents["subscriptions"][SUBSCRIPTION_TOKEN]))
    trial["lineItems"][0]["offerPhase"] = {"freeTrial": {}}
    del trial["lineItems"][0]["latestSuccessfulOrderId"]
    google.put("subscriptions", "trial-token", trial)
    body = notification_body(
        "m-trial", subscriptionNotification={"version": "1.0", "notificationType": 4, "purchaseToken": "trial-token"}
    )
    (started,) = mapped(provider, google, body)
    assert isinstance(started, Fact) and started.mrr is not None
    assert started.mrr.after == Money(0, "USD") and started.mrr.movement is None
    expired = notification_body(
        "m-trial-end",
        subscriptionNotification={"version": "1.0", "notificationType": 13, "purchaseToken": "trial-token"},
    )
    (ended,) = mapped(provider, google, expired)
    assert isinstance(ended, Fact) and ended.mrr is not None
    assert ended.mrr.change == Money(0, "USD") and ended.mrr.movement is None  # never paid: no churn


def test_a_refund_states_the_tax_refunded(provider: Any, google: GoogleStandIn) -> None:
    (refund,) = mapped(provider, google, sample("VOIDED_PURCHASE"))
    details = _order("GPA.3345-6789-0123-45678")["orderHistory"]["refundEvent"]["refundDetails"]
    assert isinstance(refund, Fact) and refund.amounts is not None
    assert refund.amounts.tax == Money(_minor(details["tax"], 0), "JPY") == Money(109, "JPY")
    assert refund.amounts.net(refund.money) == Money(1200 - 109, "JPY")


def test_a_one_time_purchase_in_kwd_states_its_zero_tax(provider: Any, google: GoogleStandIn) -> None:
    (purchase,) = mapped(provider, google, sample("ONE_TIME_PRODUCT_PURCHASED.kwd"))
    assert isinstance(purchase, Fact) and purchase.amounts is not None
    assert purchase.amounts.tax == Money(0, "KWD") and purchase.amounts.net(purchase.money) == Money(1250, "KWD")
