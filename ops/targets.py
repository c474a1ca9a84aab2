"""Where the tools act and with which keys: flags first, then the stack's outputs, then the environment.

The backfill and reconcile read Stripe with STRIPE_API_KEY (or the stack's `StripeApiKey` secret) at
STRIPE_API_BASE (default Stripe's API; the local stack's stand-in prints its own), and find EventsQueue, the
ledger table and the Mixpanel credentials the same way redrive finds its queues.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .deployed_stack import DeployedStack, StackLookupError

STRIPE_KEY_ENV = "STRIPE_API_KEY"
STRIPE_BASE_ENV = "STRIPE_API_BASE"
# Stack outputs the tools read (template.yaml).
OUTPUT_QUEUE = "EventsQueueUrl"
OUTPUT_LEDGER = "LedgerTableName"
OUTPUT_MIXPANEL = "MixpanelCredentialsArn"
OUTPUT_STRIPE_KEY = "StripeApiKeyArn"
# The local Mixpanel's and Mixpanel's service account, as the local stack reads them.
MIXPANEL_ENV = ("MIXPANEL_PROJECT_ID", "MIXPANEL_SERVICE_ACCOUNT_USERNAME", "MIXPANEL_SERVICE_ACCOUNT_SECRET")
# The test lane (Mode=any, TestEventsTo=test-project): test-mode webhooks' own queue, ledger namespace and project.
TEST_QUEUE_ENV = "TEST_EVENTS_QUEUE_URL"
OUTPUT_TEST_QUEUE = "EventsTestQueueUrl"
OUTPUT_TEST_MIXPANEL = "MixpanelTestCredentialsArn"
MIXPANEL_TEST_ENV = (
    "MIXPANEL_TEST_PROJECT_ID",
    "MIXPANEL_TEST_SERVICE_ACCOUNT_USERNAME",
    "MIXPANEL_TEST_SERVICE_ACCOUNT_SECRET",
)
LANES = ("live", "test")


class UsageError(Exception):
    """A flag or setting is missing or wrong: the message says what to set (exit status 2)."""


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """--stack, --queue-url and --ledger-table, as every tool that writes to the pipeline takes them."""
    where = parser.add_argument_group("the deployment (flags, else --stack outputs, else the environment)")
    where.add_argument("--stack", help="CloudFormation stack name: reads its outputs (queue, table, secrets)")
    where.add_argument("--queue-url", help=f"EventsQueue (else {OUTPUT_QUEUE} or EVENTS_QUEUE_URL)")
    where.add_argument("--ledger-table", help=f"the ledger (else {OUTPUT_LEDGER} or LEDGER_TABLE)")
    where.add_argument(
        "--lane",
        choices=LANES,
        help="the pipeline's lane: test for a test-mode key when the stack sends test-mode webhooks to a test project "
        f"(Mode=any, TestEventsTo=test-project: {OUTPUT_TEST_QUEUE} or {TEST_QUEUE_ENV}), else live (the default)",
    )


@dataclass
class Deployment:
    """What a tool found: the stack's outputs (if a stack was named) and the environment."""

    outputs: Mapping[str, str]
    environ: Mapping[str, str]
    secretsmanager: Any = None
    parameters: Mapping[str, str] | None = None

    @classmethod
    def find(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Deployment:
        env = os.environ if environ is None else environ
        if not getattr(args, "stack", None):
            return cls({}, env)
        outputs, parameters = stack_description(args.stack)
        return cls(outputs, env, parameters=parameters)

    def lane(self, key: str, chosen: str | None = None) -> str:
        """Where a key's webhooks go: `test` for a test-mode key when the stack has a test lane, else `live`."""
        if chosen:
            return chosen
        from revenue_webhooks.adapters.stripe_api import key_mode

        return self.lane_for(key_mode(key) == "test")

    def lane_for(self, test_mode: bool, chosen: str | None = None) -> str:
        """Where test-mode (or live) events go: `test` when the stack has a test lane, else `live`."""
        if chosen:
            return chosen
        if not test_mode:
            return "live"
        if self.parameters is not None:
            separate = self.parameters.get("Mode") == "any" and self.parameters.get("TestEventsTo") == "test-project"
            return "test" if separate else "live"
        return "test" if self.environ.get(TEST_QUEUE_ENV, "").strip() else "live"

    def queue_url(self, lane: str, flag: str | None) -> str:
        if lane == "test":
            return self.value(flag, OUTPUT_TEST_QUEUE, TEST_QUEUE_ENV)
        return self.value(flag, OUTPUT_QUEUE, "EVENTS_QUEUE_URL")

    def value(self, flag: str | None, output: str, variable: str) -> str:
        return (flag or self.outputs.get(output) or self.environ.get(variable, "")).strip()

    def secret(self, arn: str) -> str:
        if self.secretsmanager is None:
            import boto3

            self.secretsmanager = boto3.client("secretsmanager")
        return str(self.secretsmanager.get_secret_value(SecretId=arn)["SecretString"])

    def stripe(self) -> tuple[str, str]:
        """(API key, API base); the key from STRIPE_API_KEY, else the stack's StripeApiKey secret."""
        key = self.environ.get(STRIPE_KEY_ENV, "").strip()
        if not key and self.outputs.get(OUTPUT_STRIPE_KEY):
            key = self.secret(self.outputs[OUTPUT_STRIPE_KEY]).strip()
            key = "" if key.lower() == "none" else key  # the secret as deployed: no key yet
        if not key:
            where = f" or put it in the stack's StripeApiKey secret ({OUTPUT_STRIPE_KEY})" if self.outputs else ""
            raise UsageError(
                f"no Stripe API key: set {STRIPE_KEY_ENV} to a restricted key (rk_live_... or rk_test_...){where}; "
                "docs/operations.md lists the read permissions it needs"
            )
        from revenue_webhooks.adapters.stripe_api import key_mode

        try:
            key_mode(key)
        except ValueError as error:
            raise UsageError(f"{STRIPE_KEY_ENV}: {error}") from None
        base = self.environ.get(STRIPE_BASE_ENV, "").strip()
        if base and not base.startswith(("https://", "http://")):
            raise UsageError(f"{STRIPE_BASE_ENV}={base!r}: expected an http(s) URL such as https://api.stripe.com")
        return key, base

    def mixpanel_credentials(self, lane: str = "live") -> dict[str, str]:
        """The lane's service account: MIXPANEL_PROJECT_ID, _USERNAME, _SECRET (the test lane's: MIXPANEL_TEST_...),
        else the stack's MixpanelCredentials (MixpanelTestCredentials)."""
        names, output = (MIXPANEL_TEST_ENV, OUTPUT_TEST_MIXPANEL) if lane == "test" else (MIXPANEL_ENV, OUTPUT_MIXPANEL)
        given = {name: self.environ.get(name, "").strip() for name in names}
        if all(given.values()):
            project, username, secret = given.values()
            return {"project_id": project, "service_account_username": username, "service_account_secret": secret}
        if any(given.values()):
            missing = [name for name, value in given.items() if not value]
            raise UsageError(f"a Mixpanel service account needs {', '.join(names)}; missing {missing}")
        if self.outputs.get(output):
            value = json.loads(self.secret(self.outputs[output]))
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items()}
        secret = output.removesuffix("Arn")
        raise UsageError(f"no Mixpanel service account: set {', '.join(names)}, or pass --stack to read {secret}")


def stack_outputs(stack: str, cloudformation: Any = None) -> dict[str, str]:
    """A CloudFormation stack's outputs by key."""
    return stack_description(stack, cloudformation)[0]


def stack_description(stack: str, cloudformation: Any = None) -> tuple[dict[str, str], dict[str, str]]:
    """A CloudFormation stack's outputs and parameters, by key."""
    found = DeployedStack(stack, cloudformation)
    try:
        return found.outputs, found.parameters
    except StackLookupError as error:
        raise UsageError(str(error)) from None


def moment(value: str) -> int:
    """Unix seconds from `YYYY-MM-DD` (midnight UTC) or an ISO 8601 time (UTC unless it says otherwise)."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected YYYY-MM-DD or an ISO 8601 time") from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())


def day_after(value: str) -> int:
    """`--until DATE` is inclusive: the end of that day (a time is taken as given)."""
    seconds = moment(value)
    return seconds + int(timedelta(days=1).total_seconds()) if len(value.strip()) == 10 else seconds


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
