"""The local stack's CatchUpFunction schedule (devstack/catch_up.py): its period, its runs, where Stripe is."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from devstack.catch_up import CatchUpSchedule, rate_seconds, stripe_api
from devstack.lambda_runtime import LambdaContext
from devstack.local_stripe import LocalStripe
from devstack.template import Template


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(15 minutes)", 900), ("rate(1 minute)", 60), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions_give_their_period(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


def test_cron_schedules_are_not_run_locally() -> None:
    assert rate_seconds("cron(0 12 * * ? *)") is None


def test_the_templates_schedule_is_a_rate_it_can_run() -> None:
    template = Template()
    (event,) = template.properties("CatchUpFunction")["Events"].values()
    expression = template.parameters[event["Properties"]["Schedule"]["Ref"]]
    assert rate_seconds(expression) == 900


def test_the_schedule_invokes_the_handler_with_eventbridges_event_one_run_at_a_time() -> None:
    seen: list[dict[str, Any]] = []
    running = threading.Lock()
    overlaps: list[bool] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        overlaps.append(not running.acquire(blocking=False))
        try:
            seen.append(event)
            time.sleep(0.02)
            if len(seen) == 2:
                raise RuntimeError("a failed run")
            return {"status": "complete"}
        finally:
            if not overlaps[-1]:
                running.release()

    errors: list[Exception] = []
    schedule = CatchUpSchedule(handler, lambda: LambdaContext("CatchUpFunction", 300), 0.05, on_error=errors.append)
    schedule.start()
    time.sleep(0.4)
    schedule.stop()
    assert len(seen) >= 3, "a failed run does not stop the schedule"
    assert {e["detail-type"] for e in seen} == {"Scheduled Event"} and {e["source"] for e in seen} == {"aws.events"}
    assert [str(e) for e in errors] == ["a failed run"] and not any(overlaps)


def test_the_stripe_api_is_the_environments_then_the_stand_ins_then_none() -> None:
    given = {"STRIPE_API_BASE": "https://stripe.example", "STRIPE_API_KEY": "rk_test_given"}
    stand_in = SimpleNamespace(
        environment=lambda: {"STRIPE_API_BASE": "http://127.0.0.1:3002", "STRIPE_API_KEY": "sk_test_local"}
    )
    assert stripe_api(SimpleNamespace(stripe=LocalStripe(given).start())) == given
    assert stripe_api(SimpleNamespace(stripe=stand_in))["STRIPE_API_KEY"] == "sk_test_local"
    assert stripe_api(SimpleNamespace(stripe=None)) == {}
    with pytest.raises(ValueError, match="needs both"):
        LocalStripe({"STRIPE_API_KEY": "rk_test_half"})
