"""Secrets Manager through Powertools' parameters cache: webhook signing secrets by route, Mixpanel's credentials."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# A secret value is re-read after this long, so a rotated secret takes effect within five minutes.
MAX_AGE_S = 300


class Secrets:
    """The `WebhookSecrets` port, and the other secrets a function reads, on one Secrets Manager client."""

    def __init__(
        self,
        client: Any,
        route_secret_ids: Mapping[str, str],
        standard_webhooks_secrets_id: str = "",
        whole_routes: frozenset[str] = frozenset(),
    ) -> None:
        """`route_secret_ids`: every built-in route, with the Secrets Manager id of its signing secret ("" when
        none is configured); `standard_webhooks_secrets_id`: the JSON secret of the Standard Webhooks senders;
        `whole_routes`: routes whose secret is one JSON document (the app stores), never split at commas."""
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        self.cache = SecretsProvider(boto3_client=client)
        self.route_secret_ids = dict(route_secret_ids)
        self.standard_webhooks_secrets_id = standard_webhooks_secrets_id
        self.whole_routes = whole_routes

    def string(self, secret_id: str, *, force: bool = False) -> str:
        value = self.cache.get(secret_id, max_age=MAX_AGE_S, force_fetch=force)
        if isinstance(value, bytes):  # a SecretBinary
            return value.decode()
        if not isinstance(value, str):
            raise TypeError(f"secret {secret_id} is neither a string nor binary")
        return value

    def values(self, secret_id: str) -> list[str]:
        """A secret's comma-separated values (several while a secret is rotated)."""
        return _split(self.string(secret_id))

    def for_route(self, route: str) -> list[str]:
        """The signing secrets of `/webhooks/<route>`: a built-in provider's secret, else the sender's entry in
        the Standard Webhooks JSON secret; empty when none is configured (every signature then fails)."""
        if route in self.route_secret_ids:
            secret_id = self.route_secret_ids[route]
            if secret_id and route in self.whole_routes:
                return [self.string(secret_id)]
            return self.values(secret_id) if secret_id else []
        if not self.standard_webhooks_secrets_id:
            return []
        data = json.loads(self.string(self.standard_webhooks_secrets_id) or "{}")
        return _split(str(data.get(route, ""))) if isinstance(data, dict) else []

    def forget(self) -> None:
        """Drop every cached value (after a SnapStart restore): the next read goes to Secrets Manager."""
        self.cache.clear_cache()


def _split(raw: str) -> list[str]:
    return [value.strip() for value in raw.split(",") if value.strip()]
