"""The pure parts of the App Store backfill: the key from the environment, paging and retries over Apple's
client (an in-memory client standing in for Apple's answers), and the receiver's verification of each item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from appstoreserverlibrary.api_client import APIException
from appstoreserverlibrary.models.NotificationHistoryResponse import NotificationHistoryResponse
from appstoreserverlibrary.models.NotificationHistoryResponseItem import NotificationHistoryResponseItem
from revenue_webhooks.adapters.app_store_history import AppStoreKey, KeyMissing, read_history, webhook_body

PEM = "-----BEGIN PRIVATE KEY-----\nMIGT\n-----END PRIVATE KEY-----"


def test_the_key_comes_from_the_environment_or_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(KeyMissing, match="APPSTORE_ISSUER_ID, APPSTORE_KEY_ID, APPSTORE_PRIVATE_KEY_FILE"):
        AppStoreKey.from_environ({})
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_text(PEM + "\n")
    key = AppStoreKey.from_environ(
        {"APPSTORE_ISSUER_ID": "i", "APPSTORE_KEY_ID": "k", "APPSTORE_PRIVATE_KEY_FILE": str(key_file)}
    )
    assert key == AppStoreKey("i", "k", PEM.encode())
    with pytest.raises(KeyMissing, match=r"not a \.p8"):
        AppStoreKey.from_environ({"APPSTORE_ISSUER_ID": "i", "APPSTORE_KEY_ID": "k", "APPSTORE_PRIVATE_KEY": "x"})


class Answers:
    """Apple's client as read_history uses it: one scripted answer (or exception) per call."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str | None, int | None, int | None]] = []

    def get_notification_history(self, token: str | None, request: Any) -> Any:
        self.calls.append((token, request.startDate, request.endDate))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def page(payloads: list[str], token: str | None) -> NotificationHistoryResponse:
    items = [NotificationHistoryResponseItem(signedPayload=p) for p in payloads]
    return NotificationHistoryResponse(paginationToken=token, hasMore=token is not None, notificationHistory=items)


def test_pages_follow_the_token_until_apple_has_no_more_and_429s_are_retried() -> None:
    client = Answers(page(["a", "b"], "t1"), APIException(429, 4290000), page(["c"], None))
    pauses: list[float] = []
    pages = list(read_history(client, 1000, 2000, sleep=pauses.append))
    assert [(p.signed_payloads, p.next_token) for p in pages] == [(["a", "b"], "t1"), (["c"], None)]
    assert client.calls == [(None, 1000, 2000), ("t1", 1000, 2000), ("t1", 1000, 2000)]
    assert pauses == [0.5]


def test_a_resumed_read_starts_from_its_token_and_other_refusals_raise_at_once() -> None:
    client = Answers(APIException(401))
    with pytest.raises(APIException):
        list(read_history(client, 1000, 2000, "t7", sleep=lambda _: None))
    assert client.calls == [("t7", 1000, 2000)]


def test_an_item_becomes_the_body_apple_posts() -> None:
    assert webhook_body("h.p.s") == b'{"signedPayload":"h.p.s"}'


def test_each_item_is_verified_as_the_receiver_verifies_a_webhook(tmp_path: Path) -> None:
    from revenue_webhooks.config import from_environ
    from revenue_webhooks.providers import get_provider

    from devstack.stores.apple import Chain, local_config
    from ops.appstore_backfill import verify

    chain = Chain.generate()
    root = chain.save(tmp_path)
    settings = from_environ({"EVENTS_QUEUE_URL": "q", "APPSTORE_ROOT_CERTIFICATES": str(root)})
    provider = get_provider("appstore", settings)
    notification = {
        "notificationType": "TEST",
        "notificationUUID": "5e1f0000-0000-4000-8000-000000000001",
        "signedDate": 1_767_225_600_000,
        "data": {"bundleId": "com.example.revenuewebhooks", "environment": "Production", "appAppleId": 1234567890},
    }
    genuine = chain.notification_body(notification)
    forged = Chain.generate(name="Not Apple").notification_body(notification)
    payloads = [body.decode().split('"')[3] for body in (genuine, forged)]
    found = verify(provider, local_config(), payloads, True, 0)
    assert found.events == [] and found.ignored == 1  # TEST: verified, then ignored as the receiver ignores it
    assert list(found.refused.values()) == [1] and "VERIFICATION_FAILURE" in next(iter(found.refused))
