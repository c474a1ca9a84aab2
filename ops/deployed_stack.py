"""A deployed stack as the operator tools find it with `--stack NAME`: its outputs, parameters and secrets.

Everything is read through boto3 with the shell's usual AWS settings (AWS_PROFILE, AWS_REGION, ...):
CloudFormation's DescribeStacks for the outputs (WebhookUrl, the queue URLs) and the parameters
(StandardWebhooksMapping names the senders), DescribeStackResource for a signing secret's ARN, and
Secrets Manager for its value.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from revenue_webhooks.providers import specs

# template.yaml's JSON secret of the Standard Webhooks senders ({"sender": "whsec_..."}); the built-in
# providers' secrets are named by their SPEC (signing.resource). tests/unit/test_ops_stacks.py holds both to the template.
STANDARD_WEBHOOKS_SECRETS_RESOURCE = "StandardWebhooksSecrets"
OUTPUT_WEBHOOK_URL = "WebhookUrl"
OUTPUT_QUEUE_URL = "EventsQueueUrl"
OUTPUT_DEAD_LETTER_QUEUE_URL = "EventsDeadLetterQueueUrl"


class StackLookupError(Exception):
    """The stack, an output or a secret cannot be read; the message says which and AWS's reason."""


class DeployedStack:
    """One CloudFormation stack of this application; each answer is read once."""

    def __init__(self, name: str, cloudformation: Any = None, secretsmanager: Any = None) -> None:
        self.name = name
        self._cloudformation = cloudformation
        self._secretsmanager = secretsmanager

    @property
    def cloudformation(self) -> Any:
        if self._cloudformation is None:
            import boto3

            self._cloudformation = boto3.client("cloudformation")
        return self._cloudformation

    @property
    def secretsmanager(self) -> Any:
        if self._secretsmanager is None:
            import boto3

            self._secretsmanager = boto3.client("secretsmanager")
        return self._secretsmanager

    @cached_property
    def _description(self) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            stacks = self.cloudformation.describe_stacks(StackName=self.name)["Stacks"]
        except ClientError as error:
            raise StackLookupError(f"stack {self.name}: {_message(error)}") from None
        except BotoCoreError as error:
            raise StackLookupError(f"stack {self.name}: {error}") from None
        return dict(stacks[0])

    @property
    def outputs(self) -> dict[str, str]:
        return {o["OutputKey"]: o.get("OutputValue", "") for o in self._description.get("Outputs") or []}

    @property
    def parameters(self) -> dict[str, str]:
        return {p["ParameterKey"]: p.get("ParameterValue", "") for p in self._description.get("Parameters") or []}

    def output(self, key: str) -> str:
        value = self.outputs.get(key, "")
        if not value:
            raise StackLookupError(f"stack {self.name} has no output {key} (is it a revenue-webhooks stack?)")
        return value

    @property
    def senders(self) -> list[str]:
        """The Standard Webhooks senders its StandardWebhooksMapping parameter configures."""
        try:
            mapping = json.loads(self.parameters.get("StandardWebhooksMapping") or "{}")
        except ValueError:
            return []
        return sorted(mapping) if isinstance(mapping, dict) else []

    @property
    def routes(self) -> list[str]:
        return [*specs(), *self.senders]

    def signing_secret(self, route: str) -> str:
        """The secret a route's webhooks are signed with; while one rotates ("old,new"), the newest, listed last."""
        spec = specs().get(route)
        if spec is not None and spec.signing.whole:
            raise StackLookupError(
                f"{route}'s notifications are signed by the store itself, not with a secret of stack {self.name} "
                f"({spec.signing.resource} is its configuration): `make replay` posts them as stored"
            )
        logical_id = spec.signing.resource if spec else STANDARD_WEBHOOKS_SECRETS_RESOURCE
        value = self._secret_string(logical_id)
        if spec is None:
            try:
                by_sender = json.loads(value or "{}")
            except ValueError:
                raise StackLookupError(f"stack {self.name}: {logical_id} is not a JSON object of senders") from None
            value = str(by_sender.get(route, "")) if isinstance(by_sender, dict) else ""
            if not value:
                known = ", ".join(sorted(by_sender)) if isinstance(by_sender, dict) and by_sender else "none"
                raise StackLookupError(f"stack {self.name}: {logical_id} has no secret for {route} (it has: {known})")
        values = [part.strip() for part in value.split(",") if part.strip()]
        if not values:
            raise StackLookupError(f"stack {self.name}: the secret {logical_id} is empty")
        return values[-1]

    def _secret_string(self, logical_id: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resource = self.cloudformation.describe_stack_resource(StackName=self.name, LogicalResourceId=logical_id)
            arn = resource["StackResourceDetail"]["PhysicalResourceId"]
            answer = self.secretsmanager.get_secret_value(SecretId=arn)
        except ClientError as error:
            raise StackLookupError(f"stack {self.name}, secret {logical_id}: {_message(error)}") from None
        except BotoCoreError as error:
            raise StackLookupError(f"stack {self.name}, secret {logical_id}: {error}") from None
        if "SecretString" in answer:
            return str(answer["SecretString"])
        return bytes(answer.get("SecretBinary") or b"").decode()


def _message(error: Any) -> str:
    info = error.response.get("Error", {})
    return str(info.get("Message") or info.get("Code") or error)
