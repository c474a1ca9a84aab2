"""The rate cache in the ledger's table (`LedgerTable`): one item per reference source and fact day.

Item `rates#<source>#<YYYY-MM-DD>`: the reference table used for facts of that UTC day (the newest published
on or before it), written once with a conditional put, so concurrent forwarders agree on the first one and
every later rendering of a fact of that day (redrive, replay) converts at the same rate. Items are small
(~1 KB, one a day) and never expire: a replay a year later must still render the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..domain.fx import RateTable
from ..service.ports import RateCache, RatesUnavailable
from .aws import error_code, error_detail

MAX_BATCH_GET_KEYS = 100


class DynamoDbRateCache(RateCache):
    """The `RateCache` port on the ledger's DynamoDB table."""

    def __init__(self, table_name: str, client: Any) -> None:
        if not table_name:
            raise ValueError("LEDGER_TABLE is not set")
        self.table = table_name
        self.db = client

    def rate_tables(self, source: str, days: Iterable[str]) -> dict[str, RateTable]:
        keys = sorted({f"rates#{source}#{day}" for day in days})
        found: dict[str, RateTable] = {}
        for start in range(0, len(keys), MAX_BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.table: {"Keys": [{"pk": {"S": pk}} for pk in keys[start : start + MAX_BATCH_GET_KEYS]]}
            }
            request[self.table]["ConsistentRead"] = True
            while request:
                try:
                    response = self.db.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as error:
                    raise RatesUnavailable(error_detail(error)) from error
                for item in response.get("Responses", {}).get(self.table, []):
                    found[item["pk"]["S"].rsplit("#", 1)[1]] = RateTable.from_json(json.loads(item["table"]["S"]))
                request = response.get("UnprocessedKeys") or {}
        return found

    def keep_rate_tables(self, source: str, tables: Mapping[str, RateTable]) -> dict[str, RateTable]:
        for day, table in tables.items():
            try:
                self.db.put_item(
                    TableName=self.table,
                    Item={
                        "pk": {"S": f"rates#{source}#{day}"},
                        "table": {"S": json.dumps(table.to_json(), separators=(",", ":"), sort_keys=True)},
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":  # another forwarder kept one first
                    raise RatesUnavailable(error_detail(error)) from error
            except BotoCoreError as error:
                raise RatesUnavailable(error_detail(error)) from error
        return self.rate_tables(source, tables)
