"""`revenue-webhooks backfill --provider appstore` against the local stand-in of Apple's notification history, the
pipeline on moto and the local Mixpanel.

The notifications were "sent while the stack did not exist": they are only in Apple's history. The backfill reads
them with Apple's library (paging over more than one page), verifies each as the receiver does, and enqueues it as
the webhook; the forwarder maps it as the webhook. A second backfill and Apple's redelivery of the same
notifications by webhook add nothing; a forged signedPayload in the history is refused and counted.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Pipeline
from test_app_stores import apple_notification

from devstack.stores.apple import Chain, local_config
from devstack.stores.apple_history import AppleHistoryStandIn

DAY_MS = 86_400_000
NOW_MS = int(time.time() * 1000)
SINCE = time.strftime("%Y-%m-%d", time.gmtime(NOW_MS / 1000 - 60 * 86400))
# (user, currency, price in milli-units): 22 one-time purchases, more than one page of Apple's 20.
BUYERS = [
    ("c1d2e3f4-0000-4000-8000-00000000b001", "USD", 4990),
    ("c1d2e3f4-0000-4000-8000-00000000b002", "JPY", 1200000),
    ("c1d2e3f4-0000-4000-8000-00000000b003", "KWD", 1250),
]


def purchase(index: int) -> dict[str, Any]:
    """The index-th ONE_TIME_CHARGE, days ago within the history, by one of BUYERS."""
    user, currency, price = BUYERS[index % len(BUYERS)]
    notification = apple_notification("ONE_TIME_CHARGE", None, f"5e1f0000-0000-4000-8000-{index:012d}")
    signed = NOW_MS - (50 - index) * DAY_MS
    notification["signedDate"] = signed
    notification["data"]["signedTransactionInfo"].update(
        transactionId=f"2000000{index:08d}",
        originalTransactionId=f"2000000{index:08d}",
        appAccountToken=user,
        currency=currency,
        price=price,
        purchaseDate=signed - 1000,
        type="Consumable",
        quantity=1,
    )
    notification["data"].pop("signedRenewalInfo", None)
    return notification


def refund_of(notification: dict[str, Any]) -> dict[str, Any]:
    refund = json.loads(json.dumps(notification))
    refund.update(notificationType="REFUND", notificationUUID=notification["notificationUUID"][:-4] + "ffff")
    refund["signedDate"] = notification["signedDate"] + DAY_MS
    refund["data"]["signedTransactionInfo"].update(revocationDate=refund["signedDate"], revocationReason=0)
    return refund


PURCHASES = [purchase(i) for i in range(22)]
REFUND = refund_of(PURCHASES[1])  # the JPY buyer's first


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, AppleHistoryStandIn, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("apple")
    chain = Chain.generate()
    root = chain.save(directory / "chain")
    apple = AppleHistoryStandIn(chain).start()
    pipeline = Pipeline(
        extra_env={"APPSTORE_ROOT_CERTIFICATES": str(root)}, secret_values={"AppStoreConfig": local_config()}
    )
    environment = {
        **pipeline.environment,
        **apple.key_environment(str(directory / "AuthKey_LOCAL2X9R4.p8")),
        "APPSTORE_CONFIG": local_config(),
        "EVENTS_QUEUE_URL": pipeline.queue_url,
        "LEDGER_TABLE": pipeline.resources.refs["LedgerTable"],
    }
    try:
        yield pipeline, apple, environment
    finally:
        pipeline.close()
        apple.stop()


@pytest.fixture
def rig(
    stack: tuple[Pipeline, AppleHistoryStandIn, dict[str, str]],
) -> tuple[Pipeline, AppleHistoryStandIn, dict[str, str]]:
    pipeline, apple, _ = stack
    pipeline.activate()
    pipeline.reset()
    apple.clear()
    return stack


def backfill(environment: dict[str, str], state: Path, *args: str) -> tuple[int, str]:
    from ops import backfill_command as tool

    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(environment)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = tool.main(["--provider", "appstore", "--since", SINCE, "--state-dir", str(state), *args])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue() + err.getvalue()


def test_apples_history_reaches_mixpanel_once_as_the_webhooks_would(rig: Any, tmp_path: Path) -> None:
    pipeline, apple, environment = rig
    for notification in [*PURCHASES, REFUND]:
        apple.sent(notification)
    apple.sent(apple_notification("TEST", None, "5e1f0000-0000-4000-8000-7e5700000000") | {"signedDate": NOW_MS})
    forged = Chain.generate(name="Not Apple").notification_body(purchase(90))
    apple.sent_signed(json.loads(forged)["signedPayload"], NOW_MS - DAY_MS)

    code, out = backfill(environment, tmp_path / "first")
    assert code == 0, out
    assert "read 25 App Store notifications; enqueued 23" in out and "refused 1" in out
    assert "refused 1 notifications, none enqueued: 1× App Store signedPayload refused: VERIFICATION_FAILURE" in out
    pages = [request for status, request in apple.requests if status == 200]
    assert len(pages) == 2  # 20 + 5
    assert pipeline.drain()

    events = pipeline.mixpanel.events()
    assert Counter(e["event"] for e in events) == {"Purchase Completed": 22, "Refund Issued": 1}
    revenue = Counter(
        (e["properties"]["distinct_id"], e["properties"]["Currency"], e["properties"]["Revenue"]) for e in events
    )
    usd, jpy, kwd = (user for user, _, _ in BUYERS)
    assert revenue == {(usd, "USD", 4.99): 8, (jpy, "JPY", 1200): 7 + 1, (kwd, "KWD", 1.25): 7}  # JPY: a refund
    assert {e["properties"]["Provider"] for e in events} == {"appstore"}
    profiles = pipeline.mixpanel.profiles()
    assert profiles[jpy]["Lifetime Revenue JPY"] == 6 * 1200 and profiles[jpy]["Refund Count"] == 1
    assert profiles[kwd]["Lifetime Revenue KWD"] == 8.75 and profiles[usd]["Purchase Count"] == 8
    insert_ids = {e["properties"]["$insert_id"] for e in pipeline.mixpanel.raw_events()}

    # Again (another checkpoint directory, so Apple is read again): the ledger holds every fact.
    code, out = backfill(environment, tmp_path / "second")
    assert code == 0, out
    assert "enqueued 0, skipped 23 already in the ledger" in out
    # Apple's late retries of the same notifications arrive as webhooks (re-signed: the same notifications).
    for notification in (PURCHASES[0], PURCHASES[21], REFUND):
        body = apple.chain.notification_body(notification)
        assert json.loads(pipeline.post("appstore", body, {"content-type": "application/json"})["body"])["status"] == (
            "accepted"
        )
    assert pipeline.drain()

    def by_insert_id(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(found, key=lambda e: e["properties"]["$insert_id"])

    assert by_insert_id(pipeline.mixpanel.events()) == by_insert_id(events)
    assert {e["properties"]["$insert_id"] for e in pipeline.mixpanel.raw_events()} == insert_ids
    assert pipeline.dead_letters() == []


def test_a_history_backfill_resumes_from_its_checkpoint_and_retries_apples_rate_limit(rig: Any, tmp_path: Path) -> None:
    pipeline, apple, environment = rig
    for notification in PURCHASES:
        apple.sent(notification)
    apple.fail_next(2, 429)
    state = tmp_path / "state"
    code, out = backfill(environment, state)
    assert code == 0, out
    assert [status for status, _ in apple.requests] == [429, 429, 200, 200]
    code, out = backfill(environment, state)  # finished: says so, reads nothing
    assert code == 0 and "was finished at" in out
    assert len(apple.requests) == 4
    assert pipeline.drain()
    assert len(pipeline.mixpanel.events()) == 22


def test_a_wrong_key_or_a_period_beyond_apples_history_is_a_usage_error(rig: Any, tmp_path: Path) -> None:
    _, apple, environment = rig
    code, out = backfill({**environment, "APPSTORE_KEY_ID": "SOMEONEELS"}, tmp_path / "a")
    assert code == 2 and "Apple refused the App Store Connect API key (401)" in out
    old = time.strftime("%Y-%m-%d", time.gmtime(NOW_MS / 1000 - 200 * 86400))
    code, out = backfill(environment, tmp_path / "b", "--since", old)
    assert code == 2 and "Apple keeps 180 days of Production history" in out
    assert [status for status, _ in apple.requests] == [401]
