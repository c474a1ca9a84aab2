"""The forwarder with Group Analytics on: company totals go to /groups, and a failed /groups retries the message."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from fakes import InMemoryLedger, RecordingQueue, ScriptedSink
from revenue_webhooks import providers
from revenue_webhooks.config import Settings, from_environ
from revenue_webhooks.domain.outcomes import Outcome, Result
from revenue_webhooks.service.forwarder import Forwarder
from test_forwarder import record

GROUPS = from_environ({"MODE": "any", "GROUP_KEY": "company_id"})
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stripe"


def stripe_checkout(metadata: dict[str, str]) -> dict[str, Any]:
    event = json.loads((FIXTURES / "checkout.session.completed.payment_mode.json").read_text())
    event["data"]["object"].update(metadata=metadata, customer="cus_acme_1", payment_intent="pi_acme_1")
    return event


def test_the_forwarder_sends_company_totals_and_retries_when_groups_fail() -> None:
    sink = ScriptedSink(group_answer=lambda update: Result(Outcome.TRANSIENT, "mixpanel_503"))
    ledger = InMemoryLedger()
    settings_: Settings = replace(GROUPS, dead_letter_queue_url="https://sqs.local/dlq")
    forwarder = Forwarder(
        settings_, lambda route: providers.get_provider(route, settings_), ledger, sink, RecordingQueue(), "tok"
    )
    body = json.dumps(stripe_checkout({"company_id": "acme", "user_id": "user-1"})).encode()
    failed = forwarder.process([record(body)], lambda: 60_000)["batchItemFailures"]
    assert [f["itemIdentifier"] for f in failed] == ["msg-evt_00000000000000"]
    assert ledger.company_totals["acme"]["purchases"] == 1
    sink.group_answer = lambda update: Result(Outcome.DELIVERED)
    assert forwarder.process([record(body, attempts=2)], lambda: 60_000)["batchItemFailures"] == []
    (sent,) = sink.groups
    assert sent["$group_id"] == "acme" and sent["$set"]["Purchase Count"] == 1  # counted once, sent again
