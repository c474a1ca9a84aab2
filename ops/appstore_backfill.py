"""Apple's notification history into the pipeline: `revenue-webhooks backfill --provider appstore --since DATE`.

Every App Store Server Notification V2 Apple sent (or tried to send) in the period, read from its notification
history API (revenue_webhooks/adapters/app_store_history.py; Apple keeps 180 days in Production, 30 in
Sandbox), goes the way a webhook goes: its `signedPayload` is verified by the App Store provider exactly as the
receiver verifies a webhook (Apple's SignedDataVerifier: the chain to Apple's root, the bundle id, the app's
Apple id, the environment, with secret `AppStoreConfig`), and enqueued to EventsQueue in the receiver's message
format with the notification's UUID as its event id. The forwarder then maps it with the webhook's code: the
same facts, the same `$insert_id`s. A notification that fails verification is counted and never enqueued.

- Idempotent: through the Stripe backfill's Enqueuer, notifications whose facts the ledger holds are skipped,
  those that count nothing (TEST, a free trial's renewal) are not enqueued, and what is enqueued twice is
  deduplicated by the ledger and by Mixpanel.
- Resumable: Apple's history is one cursor (`paginationToken`), kept in the Stripe backfill's checkpoint
  directory (run.json) after each page is enqueued; the same command goes on from there.

Exit status as the Stripe backfill's: 0 done, 1 Apple or AWS failed (run again to resume), 2 usage or
configuration error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from revenue_webhooks.domain.webhook import QueuedEvent

from .backfill import DEFAULT_STATE_DIR, BackfillFailed, Checkpoints, Enqueuer, Tally, exit_status
from .targets import Deployment, UsageError, add_stack_arguments, day_after, iso, moment

PROVIDER = "appstore"
CONFIG_ENV = "APPSTORE_CONFIG"  # the AppStoreConfig secret's value, else the stack's secret
OUTPUT_CONFIG = "AppStoreConfigArn"
DAY_MS = 86_400_000


@dataclass
class Verified:
    """What one page of history came to: the notifications to enqueue, and those refused or ignored."""

    events: list[QueuedEvent] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # why Apple's library refused a signed payload
    ignored: int = 0  # TEST notifications, unmapped types, another environment


def verify(provider: Any, config: str, payloads: Sequence[str], live: bool, received_at_ms: int) -> Verified:
    """Each signed payload checked as the receiver checks a webhook's body, then queued as the receiver would."""
    from revenue_webhooks.adapters.app_store_history import webhook_body
    from revenue_webhooks.providers.base import WebhookRejected, WebhookRequest

    found = Verified()
    for payload in payloads:
        body = webhook_body(payload)
        request = WebhookRequest(body, {"content-type": "application/json"}, received_at_ms, PROVIDER)
        try:
            provider.verify(request, [config])
            parsed = provider.parse(request)
        except WebhookRejected as rejection:
            found.refused[str(rejection)] += 1
            continue
        if parsed.livemode is not live or not provider.is_relevant(parsed.event_type):
            found.ignored += 1
            continue
        found.events.append(QueuedEvent(PROVIDER, parsed.event_id, parsed.event_type, received_at_ms, body))
    return found


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="revenue-webhooks backfill --provider appstore",
        description="Enqueue the App Store Server Notifications of Apple's notification history (180 days in "
        "Production, 30 in Sandbox), verified as webhooks are, so Mixpanel holds them once.",
        epilog="Apple: APPSTORE_ISSUER_ID, APPSTORE_KEY_ID and APPSTORE_PRIVATE_KEY_FILE (an App Store Connect "
        "In-App Purchase key, docs/operations.md); APPSTORE_CONFIG or the stack's AppStoreConfig secret; "
        "APPSTORE_API_BASE for another endpoint than Apple's. Exit status: 0 done, 1 Apple or AWS failed (run "
        "again to resume), 2 usage or configuration error, 130 interrupted.",
    )
    p.add_argument("--provider", choices=(PROVIDER,), default=PROVIDER, help=argparse.SUPPRESS)
    what = p.add_argument_group("what")
    what.add_argument("--since", type=moment, required=True, help="first day (YYYY-MM-DD, UTC) or time (ISO 8601)")
    what.add_argument("--until", help="last day, inclusive (YYYY-MM-DD), or an ISO 8601 time (default: now)")
    what.add_argument(
        "--environment",
        choices=("Production", "Sandbox"),
        help="whose history (default: the first in AppStoreConfig); Sandbox goes to the test lane when there is one",
    )
    how = p.add_argument_group("how")
    how.add_argument("--dry-run", action="store_true", help="read, verify and count; enqueue nothing")
    how.add_argument("--include-recorded", action="store_true", help="also enqueue notifications the ledger holds")
    how.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where checkpoints are kept (default .backfill)"
    )
    how.add_argument("--restart", action="store_true", help="forget this period's checkpoint and read it all again")
    how.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help=argparse.SUPPRESS)
    add_stack_arguments(p)
    return p


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return exit_status(lambda: _main(args, out or sys.stderr))
    except KeyboardInterrupt:
        print("\nbackfill: interrupted; run the same command again to resume from the checkpoint", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace, out: TextIO) -> int:
    import boto3
    from revenue_webhooks.adapters.app_store_history import (
        BASE_ENV,
        KEPT_DAYS,
        AppStoreKey,
        KeyMissing,
        history_client,
    )
    from revenue_webhooks.adapters.dynamodb_ledger import DynamoDbLedger
    from revenue_webhooks.config import ConfigError, from_environ
    from revenue_webhooks.providers import get_provider
    from revenue_webhooks.providers._appstore_trust import AppStoreConfig, AppStoreConfigInvalid

    deployment = Deployment.find(args)
    try:
        settings = from_environ(os.environ)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    config_text = deployment.environ.get(CONFIG_ENV, "").strip()
    if not config_text and deployment.outputs.get(OUTPUT_CONFIG):
        config_text = deployment.secret(deployment.outputs[OUTPUT_CONFIG]).strip()
    if not config_text:
        raise UsageError(f"no AppStoreConfig: set {CONFIG_ENV} to its JSON or pass --stack to read the secret")
    try:
        config = AppStoreConfig.from_secret(config_text)
        key = AppStoreKey.from_environ(deployment.environ)
    except (AppStoreConfigInvalid, KeyMissing) as error:
        raise UsageError(str(error)) from None
    environment = args.environment or config.environments[0]
    if environment not in config.environments:
        raise UsageError(f"--environment {environment}: AppStoreConfig accepts {', '.join(config.environments)}")
    base = deployment.environ.get(BASE_ENV, "").strip()
    if base and not base.startswith(("https://", "http://")):
        raise UsageError(f"{BASE_ENV}={base!r}: expected an http(s) URL")

    lane = deployment.lane_for(environment == "Sandbox", args.lane)
    queue_url = deployment.queue_url(lane, args.queue_url)
    if not queue_url and not args.dry_run:
        variable = "TEST_EVENTS_QUEUE_URL" if lane == "test" else "EVENTS_QUEUE_URL"
        raise UsageError(f"which queue of the {lane} lane? Pass --queue-url, --stack NAME or set {variable}")
    table = deployment.value(args.ledger_table, "LedgerTableName", "LEDGER_TABLE")

    now_ms = int(time.time() * 1000)
    since_ms = int(args.since) * 1000
    until_ms = min(day_after(args.until) * 1000, now_ms) if args.until else now_ms
    oldest_ms = now_ms - KEPT_DAYS[environment] * DAY_MS
    if since_ms < oldest_ms:
        raise UsageError(
            f"Apple keeps {KEPT_DAYS[environment]} days of {environment} history: --since must be after "
            f"{iso(oldest_ms // 1000)[:10]}"
        )
    if until_ms <= since_ms:
        raise UsageError(f"--until {iso(until_ms // 1000)} is not after --since {iso(since_ms // 1000)}")

    namespace = "" if lane == "live" else lane
    ledger = DynamoDbLedger(table, boto3.client("dynamodb"), namespace=namespace) if table else None
    provider = get_provider(PROVIDER, settings)
    enqueuer = Enqueuer(
        boto3.client("sqs") if queue_url else None,
        queue_url,
        ledger,
        provider,
        dry_run=args.dry_run,
        include_recorded=args.include_recorded,
    )
    client = history_client(key, config.bundle_id, environment, base or None)
    run = HistoryRun(client, provider, config_text, enqueuer, live=environment == "Production", out=out)
    started = time.monotonic()
    if args.dry_run:
        run.read(since_ms, until_ms, None, None, {})
    else:
        fingerprint = hashlib.sha256(f"{key.issuer_id}|{config.bundle_id}|{base}|{queue_url}".encode()).hexdigest()
        until = args.until.replace(":", "") if args.until else "now"
        name = f"appstore-{environment.lower()}-{fingerprint[:12]}-{iso(since_ms // 1000)[:10]}-{until}"
        directory = args.state_dir / name
        if args.restart and directory.exists():
            shutil.rmtree(directory)
        checkpoints = Checkpoints(directory)
        if checkpoints.exists():
            info = checkpoints.run_info()
            if info.get("finished_at"):
                print(
                    f"backfill: {iso(info['since_ms'] // 1000)} to {iso(info['until_ms'] // 1000)} was finished at "
                    f"{info['finished_at']}; --restart reads it again (the ledger skips what it holds)",
                    file=sys.stdout,
                )
                return 0
            print(f"backfill: resuming from {directory} ({info.get('read', 0)} notifications read)", file=out)
        else:
            info = {"since_ms": since_ms, "until_ms": until_ms, "token": None, "read": 0}
            info["started_at"] = iso(now_ms // 1000)
            checkpoints.start(info, [])
            print(f"backfill: App Store {environment}, checkpoint in {directory}", file=out)
        run.read(info["since_ms"], info["until_ms"], info.get("token"), checkpoints, info)
        checkpoints.update({**info, "token": None, "finished_at": iso(int(time.time()))})
    verb = "would enqueue" if args.dry_run else "enqueued"
    print(f"backfill: {run.summary(verb)} in {time.monotonic() - started:.1f} s", file=sys.stdout)
    if run.refused:
        reasons = "; ".join(f"{count}× {why}" for why, count in run.refused.most_common())
        print(f"backfill: refused {sum(run.refused.values())} notifications, none enqueued: {reasons}", file=sys.stderr)
    return 0


@dataclass
class HistoryRun:
    """Apple's pages read, verified and enqueued one after the other; the cursor saved after each."""

    client: Any
    provider: Any
    config: str
    enqueuer: Enqueuer
    live: bool
    out: TextIO
    tally: Tally = field(default_factory=Tally)
    refused: Counter[str] = field(default_factory=Counter)
    ignored: int = 0

    def read(
        self, since_ms: int, until_ms: int, token: str | None, checkpoints: Checkpoints | None, info: dict[str, Any]
    ) -> None:
        from appstoreserverlibrary.api_client import APIError, APIException
        from requests import RequestException
        from revenue_webhooks.adapters.app_store_history import read_history

        try:
            for page in read_history(self.client, since_ms, until_ms, token):
                found = verify(self.provider, self.config, page.signed_payloads, self.live, int(time.time() * 1000))
                part = Tally()
                part.read["notification"] += len(page.signed_payloads)
                self.tally.add(self.enqueuer.enqueue(found.events, part))
                self.refused.update(found.refused)
                self.ignored += found.ignored
                if checkpoints is not None:
                    info.update(token=page.next_token, read=int(info.get("read", 0)) + len(page.signed_payloads))
                    checkpoints.update(info)
        except APIException as error:
            if error.http_status_code == 401:
                raise UsageError(f"Apple refused the App Store Connect API key (401): {error}") from None
            if error.api_error == APIError.PAGINATION_TOKEN_EXPIRED:
                raise BackfillFailed("Apple's pagination token expired: run again with --restart") from None
            if error.http_status_code == 400:
                raise UsageError(f"Apple refused the request: {error.api_error} {error.error_message}") from None
            raise BackfillFailed(f"Apple answered {error.http_status_code}: {error.error_message}") from None
        except RequestException as error:
            raise BackfillFailed(f"Apple's API could not be reached: {error}") from None

    def summary(self, verb: str) -> str:
        return (
            f"read {self.tally.read['notification']} App Store notifications; {verb} {self.tally.enqueued}, "
            f"skipped {self.tally.recorded} already in the ledger, {self.tally.nothing} that count nothing, "
            f"{self.ignored} not mapped or of another environment, refused {sum(self.refused.values())}"
        )
