"""Checkpoints (catch-up's) as items of the ledger table: `catch-up#<name>`, a small JSON value, read consistently."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..service.ports import LedgerUnavailable
from .aws import error_detail


class DynamoDbCheckpoints:
    """The `Checkpoints` port on the ledger table (`LedgerTable`), one item per name."""

    def __init__(self, table_name: str, client: Any) -> None:
        if not table_name:
            raise ValueError("LEDGER_TABLE is not set")
        self.table = table_name
        self.db = client

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            item = self.db.get_item(
                TableName=self.table, Key={"pk": {"S": f"catch-up#{name}"}}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as error:
            raise LedgerUnavailable(error_detail(error)) from error
        value: dict[str, Any] | None = json.loads(item["value"]["S"]) if item else None
        return value

    def put(self, name: str, value: dict[str, Any]) -> None:
        try:
            self.db.put_item(
                TableName=self.table,
                Item={"pk": {"S": f"catch-up#{name}"}, "value": {"S": json.dumps(value, sort_keys=True)}},
            )
        except (ClientError, BotoCoreError) as error:
            raise LedgerUnavailable(error_detail(error)) from error
