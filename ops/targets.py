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

STRIPE_KEY_ENV = "STRIPE_API_KEY"
STRIPE_BASE_ENV = "STRIPE_API_BASE"
# Stack outputs the tools read (template.yaml).
OUTPUT_QUEUE = "EventsQueueUrl"
OUTPUT_LEDGER = "LedgerTableName"
OUTPUT_MIXPANEL = "MixpanelCredentialsArn"
OUTPUT_STRIPE_KEY = "StripeApiKeyArn"
# The local Mixpanel's and Mixpanel's service account, as the local stack reads them.
MIXPANEL_ENV = ("MIXPANEL_PROJECT_ID", "MIXPANEL_SERVICE_ACCOUNT_USERNAME", "MIXPANEL_SERVICE_ACCOUNT_SECRET")


class UsageError(Exception):
    """A flag or setting is missing or wrong: the message says what to set (exit status 2)."""


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """--stack, --queue-url and --ledger-table, as every tool that writes to the pipeline takes them."""
    where = parser.add_argument_group("the deployment (flags, else --stack outputs, else the environment)")
    where.add_argument("--stack", help="CloudFormation stack name: reads its outputs (queue, table, secrets)")
    where.add_argument("--queue-url", help=f"EventsQueue (else {OUTPUT_QUEUE} or EVENTS_QUEUE_URL)")
    where.add_argument("--ledger-table", help=f"the ledger (else {OUTPUT_LEDGER} or LEDGER_TABLE)")


@dataclass
class Deployment:
    """What a tool found: the stack's outputs (if a stack was named) and the environment."""

    outputs: Mapping[str, str]
    environ: Mapping[str, str]
    secretsmanager: Any = None

    @classmethod
    def find(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Deployment:
        env = os.environ if environ is None else environ
        return cls(stack_outputs(args.stack) if getattr(args, "stack", None) else {}, env)

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
        if not key:
            where = f" or put it in the stack's StripeApiKey secret ({OUTPUT_STRIPE_KEY})" if self.outputs else ""
            raise UsageError(
                f"no Stripe API key: set {STRIPE_KEY_ENV} to a restricted key (rk_live_... or rk_test_...){where}; "
                "docs/operations.md lists the read permissions it needs"
            )
        from revenue_webhooks.adapters.stripe_reader import key_mode

        try:
            key_mode(key)
        except ValueError as error:
            raise UsageError(f"{STRIPE_KEY_ENV}: {error}") from None
        base = self.environ.get(STRIPE_BASE_ENV, "").strip()
        if base and not base.startswith(("https://", "http://")):
            raise UsageError(f"{STRIPE_BASE_ENV}={base!r}: expected an http(s) URL such as https://api.stripe.com")
        return key, base

    def mixpanel_credentials(self) -> dict[str, str]:
        """The service account: MIXPANEL_PROJECT_ID, _USERNAME, _SECRET, else the stack's MixpanelCredentials."""
        given = {name: self.environ.get(name, "").strip() for name in MIXPANEL_ENV}
        if all(given.values()):
            return {
                "project_id": given["MIXPANEL_PROJECT_ID"],
                "service_account_username": given["MIXPANEL_SERVICE_ACCOUNT_USERNAME"],
                "service_account_secret": given["MIXPANEL_SERVICE_ACCOUNT_SECRET"],
            }
        if any(given.values()):
            missing = [name for name, value in given.items() if not value]
            raise UsageError(f"a Mixpanel service account needs {', '.join(MIXPANEL_ENV)}; missing {missing}")
        if self.outputs.get(OUTPUT_MIXPANEL):
            value = json.loads(self.secret(self.outputs[OUTPUT_MIXPANEL]))
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items()}
        raise UsageError(
            f"no Mixpanel service account: set {', '.join(MIXPANEL_ENV)}, or pass --stack to read MixpanelCredentials"
        )


def stack_outputs(stack: str, cloudformation: Any = None) -> dict[str, str]:
    """A CloudFormation stack's outputs by key."""
    from botocore.exceptions import ClientError

    if cloudformation is None:
        import boto3

        cloudformation = boto3.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        raise UsageError(f"stack {stack}: {error.response.get('Error', {}).get('Message', error)}") from None
    return {output["OutputKey"]: output.get("OutputValue", "") for output in stacks[0].get("Outputs") or []}


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
