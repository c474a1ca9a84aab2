"""CatchUpFunction on its schedule, for the local stack: the real handler, invoked as EventBridge would.

The period is the template's `CatchUpSchedule` (`rate(15 minutes)`), or CATCH_UP_EVERY seconds to watch it
work; each run is an EventBridge scheduled event to the handler, one at a time, as Lambda runs a schedule.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .background import Background
from .lambda_runtime import Handler, LambdaContext, context_for, load_handler
from .local_stripe import STRIPE_ENV
from .template import Template

FUNCTION = "CatchUpFunction"
EVERY_ENV = "CATCH_UP_EVERY"  # seconds between local runs, instead of the template's schedule
_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """Seconds between runs of an EventBridge `rate(...)` expression; None for `cron(...)` (not run locally)."""
    match = _RATE.fullmatch(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_S[match.group(2).rstrip("s")]


def schedule_expression(template: Template, resolve: Callable[[Any], Any]) -> str:
    """The Schedule event's expression of CatchUpFunction, as the template resolves it."""
    for event in (template.properties(FUNCTION).get("Events") or {}).values():
        if event.get("Type") == "Schedule":
            return str(resolve(event["Properties"]["Schedule"]))
    raise ValueError(f"{FUNCTION} has no Schedule event")


def scheduled_event(rule: str = "local-catch-up") -> dict[str, Any]:
    """The event EventBridge sends a function for a scheduled rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{rule}"],
        "detail": {},
    }


class CatchUpSchedule(Background):
    """Runs the handler every `every_s` seconds (first run after one period) until stopped."""

    thread_name = "catch-up-schedule"

    def __init__(
        self,
        handler: Handler,
        context_factory: Callable[[], LambdaContext],
        every_s: float,
        *,
        on_run: Callable[[Mapping[str, Any]], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.handler = handler
        self.context_factory = context_factory
        self.every_s = every_s
        self.on_run = on_run
        self.on_error = on_error
        self.runs = 0
        self._lock = threading.Lock()
        super().__init__()

    def run_once(self) -> dict[str, Any]:
        """One invocation now (never two at once); returns the handler's answer."""
        with self._lock:
            answer = self.handler(scheduled_event(), self.context_factory())
            self.runs += 1
        if self.on_run:
            self.on_run(answer)
        return answer

    def _run(self) -> None:
        next_run = time.monotonic() + self.every_s
        while not self._stop.wait(max(0.0, next_run - time.monotonic())):
            next_run += self.every_s
            try:
                self.run_once()
            except Exception as error:  # a failed run is the next run's to redo, as on Lambda
                if self.on_error:
                    self.on_error(error)


# ---- the local stack's part (devstack/stack.py calls these) ------------------------------------------------


def stripe_api(stack: Any) -> dict[str, str]:
    """STRIPE_API_BASE and STRIPE_API_KEY of the Stripe API the stack's functions read: the stack's Stripe
    (devstack/local_stripe.py: the environment's API when both are set, else the stand-in), none without one."""
    stripe = getattr(stack, "stripe", None)
    return {name: value for name, value in stripe.environment().items() if name in STRIPE_ENV} if stripe else {}


def secret_values(stack: Any, key_logical_id: str) -> dict[str, str]:
    """The StripeApiKey secret's local value: the API's key, as a deployment puts it there (none: it stays "none")."""
    key = stripe_api(stack).get("STRIPE_API_KEY")
    return {key_logical_id: key} if key else {}


def function_variables(stack: Any) -> dict[str, str]:
    """What the forwarder and catch-up read besides the template's variables: the Stripe API's address."""
    base = stripe_api(stack).get("STRIPE_API_BASE")
    return {"STRIPE_API_BASE": base} if base else {}


def start(stack: Any, local: Mapping[str, str]) -> CatchUpSchedule | None:
    """Load CatchUpFunction (a cold start, with the template's environment, the local endpoints and the Stripe
    API) and run it on its schedule; None when the template has no such function or a schedule it cannot run."""
    template: Template = stack.template
    if FUNCTION not in template.resources:
        return None
    expression = schedule_expression(template, stack.resources.resolve)
    every = str(stack.options.environ.get(EVERY_ENV, "")).strip()
    every_s = float(every) if every else rate_seconds(expression)
    if not every_s or every_s <= 0:
        stack.say(f"Catch-up: {expression} is not run locally (set {EVERY_ENV}=<seconds>)")
        return None
    environment = {
        **template.function_environment(FUNCTION, stack.resources.resolve),
        **local,
        **function_variables(stack),
    }
    handler = load_handler(template, FUNCTION, environment)
    api = stripe_api(stack).get("STRIPE_API_BASE")

    def report(answer: Mapping[str, Any]) -> None:
        if answer.get("recovered") or answer.get("status") not in ("complete", "disabled"):
            stack.say(
                f"→ catch-up: {answer.get('status')}, {answer.get('checked', 0)} Stripe events checked, "
                f"{answer.get('recovered', 0)} recovered (enqueued)"
            )

    def failed(error: Exception) -> None:
        stack.say(f"→ catch-up failed: {type(error).__name__}: {error}")

    schedule = CatchUpSchedule(
        handler, lambda: context_for(template, FUNCTION), every_s, on_run=report, on_error=failed
    ).start()
    where = f"Stripe's events at {api}" if api else "no Stripe API key, so it does nothing (and says so once)"
    stack.say(f"Catch-up: {FUNCTION} every {every_s:g} s ({expression} deployed): {where}")
    return schedule
