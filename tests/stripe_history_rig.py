"""The pipeline (tests/harness.py) beside the local Stripe API, and the operator tools run against both.

`Rig.backfill(...)` and `Rig.reconcile(...)` run `revenue-webhooks backfill|reconcile` in this process with the
environment an operator would set (STRIPE_API_KEY, STRIPE_API_BASE, EVENTS_QUEUE_URL, LEDGER_TABLE, the
Mixpanel service account, AWS at moto); `Rig.command(...)` is that environment for a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import Pipeline
from revenue_webhooks.providers.stripe import PRODUCES

from devstack.mixpanel import DEMO_CREDENTIALS, DEMO_TEST_CREDENTIALS
from devstack.stripe_api import Event, StripeAccount, StripeApiServer

REPOSITORY = Path(__file__).parents[1]


class Rig:
    def __init__(self, pipeline: Pipeline, api: StripeApiServer, state_dir: Path) -> None:
        self.pipeline = pipeline
        self.api = api
        self.state_dir = state_dir

    def environment(self) -> dict[str, str]:
        return {
            **self.pipeline.environment,
            **self.api.environment(),
            "EVENTS_QUEUE_URL": self.pipeline.queue_url,
            "LEDGER_TABLE": self.pipeline.resources.refs["LedgerTable"],
            "MIXPANEL_PROJECT_ID": DEMO_CREDENTIALS.project_id,
            "MIXPANEL_SERVICE_ACCOUNT_USERNAME": DEMO_CREDENTIALS.username,
            "MIXPANEL_SERVICE_ACCOUNT_SECRET": DEMO_CREDENTIALS.secret,
            "MIXPANEL_TEST_PROJECT_ID": DEMO_TEST_CREDENTIALS.project_id,
            "MIXPANEL_TEST_SERVICE_ACCOUNT_USERNAME": DEMO_TEST_CREDENTIALS.username,
            "MIXPANEL_TEST_SERVICE_ACCOUNT_SECRET": DEMO_TEST_CREDENTIALS.secret,
        }

    @contextlib.contextmanager
    def environ(self, **changes: str | None) -> Iterator[None]:
        saved = dict(os.environ)
        self.pipeline.activate()
        os.environ.update(self.environment())
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def backfill(self, *args: str, **env: str | None) -> tuple[int, str]:
        from ops import backfill

        argv = [*args, "--state-dir", str(self.state_dir), "--no-progress"]
        return self._run(backfill.main, argv, env)

    def reconcile(self, *args: str, **env: str | None) -> tuple[int, str]:
        from ops import reconcile

        return self._run(reconcile.main, list(args), env)

    def reconcile_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        code, out = self.reconcile(*args, "--json")
        return code, json.loads(out)

    def _run(self, main: Any, argv: list[str], env: dict[str, str | None]) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with self.environ(**env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return code, out.getvalue() + err.getvalue()

    def command(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """argv and environment of `revenue-webhooks backfill` in a subprocess."""
        argv = [sys.executable, "-m", "ops.cli", "backfill", *args, "--state-dir", str(self.state_dir), "--no-progress"]
        path = os.pathsep.join([str(REPOSITORY / "layers" / "common"), str(REPOSITORY)])
        return argv, {**os.environ, **self.environment(), "PYTHONPATH": path}

    # ---- webhooks and what Mixpanel holds ---------------------------------------------------

    def deliver(self, events: list[Event], *, now: int | None = None) -> None:
        """Post each (mapped) event as Stripe would, signed now; the forwarder runs as the queue fills."""
        for position, event in enumerate(e for e in events if e.type in PRODUCES):
            response = self.pipeline.post_stripe(event.body(), timestamp=now)
            assert response["statusCode"] == 200, response
            if position % 200 == 199:
                self.pipeline.esm.poll_once(0)
        assert self.pipeline.drain(120)

    def drain(self) -> None:
        assert self.pipeline.drain(120)

    def events(self) -> dict[str, dict[str, Any]]:
        """Mixpanel's deduplicated events by $insert_id (one each, or the test fails)."""
        found = self.pipeline.mixpanel.events()
        by_id = {e["properties"]["$insert_id"]: e for e in found}
        assert len(by_id) == len(found), Counter(e["properties"]["$insert_id"] for e in found).most_common(3)
        return by_id

    def ledger_facts(self) -> int:
        table = self.pipeline.resources.refs["LedgerTable"]
        count = 0
        for page in self.pipeline.dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk"):
            count += sum(1 for item in page.get("Items", []) if item["pk"]["S"].startswith("fact#"))
        return count


def account_events(account: StripeAccount, *, since: int | None = None, until: int | None = None) -> list[Event]:
    return account.events(since=since, until=until)


def changed(reference: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For events in both, the properties that differ: {insert_id: {property: (reference, got)}}."""
    found = {}
    for key in reference.keys() & got.keys():
        if reference[key] != got[key]:
            a, b = reference[key]["properties"], got[key]["properties"]
            found[key] = {
                "event": reference[key]["event"],
                **{name: (a.get(name), b.get(name)) for name in a.keys() | b.keys() if a.get(name) != b.get(name)},
            }
    return found


def objects_read(state_dir: Path, pattern: str) -> int:
    """How many objects a backfill's checkpoints under `state_dir/<pattern>` say were read (0 before any)."""
    total = 0
    for path in state_dir.glob(f"{pattern}/slices/*.json"):
        with contextlib.suppress(ValueError, OSError):
            total += int(json.loads(path.read_text()).get("read") or 0)
    return total
