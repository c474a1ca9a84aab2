"""A DynamoDB stand-in for throughput runs: the ledger's calls, thread-safe, with DynamoDB-like latencies.

moto cannot stand in for the ledger under load: its TransactWriteItems deep-copies the whole
table on every call (so each write gets slower as the table grows) and concurrent transactions
fail inside moto (`dictionary changed size during iteration`, answered as HTTP 500). Correctness
of the ledger is tested against moto elsewhere; this endpoint only answers the ledger's
GetItem, BatchGetItem and TransactWriteItems (Put with `attribute_not_exists(pk)`, `version = :v` or a link's
`attribute_not_exists(pk) OR #fact = :fact` condition, and ConditionCheck `attribute_not_exists(pk)`) after a
fixed delay, over keep-alive HTTP, as DynamoDB would.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .json_endpoint import JsonEndpoint

PREFIX = "DynamoDB_20120810."
DEFAULT_READ_MS = 4.0  # GetItem / BatchGetItem, consistent reads in-region
DEFAULT_WRITE_MS = 10.0  # TransactWriteItems (two-phase, about twice a single write)


class DynamoDbEndpoint(JsonEndpoint):
    def __init__(self, read_ms: float = DEFAULT_READ_MS, write_ms: float = DEFAULT_WRITE_MS) -> None:
        super().__init__()
        self.read_s = read_ms / 1000
        self.write_s = write_ms / 1000
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: dict[str, int] = {}
        self.write_units = 0  # items written in transactions (each costs 2 WRU per KB on DynamoDB)
        self._lock = threading.Lock()

    def answer(self, target: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            return self._answer(target.removeprefix(PREFIX), request)
        except (KeyError, ValueError) as error:
            return 400, {"__type": "com.amazon.coral.validate#ValidationException", "message": str(error)}

    def _answer(self, operation: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
        if operation == "GetItem":
            time.sleep(self.read_s)
            with self._lock:
                item = self.items.get((request["TableName"], request["Key"]["pk"]["S"]))
            return 200, ({"Item": item} if item else {})
        if operation == "BatchGetItem":
            time.sleep(self.read_s)
            responses: dict[str, list[dict[str, Any]]] = {}
            with self._lock:
                for table, spec in request["RequestItems"].items():
                    found = [self.items.get((table, key["pk"]["S"])) for key in spec["Keys"]]
                    responses[table] = [item for item in found if item]
            return 200, {"Responses": responses, "UnprocessedKeys": {}}
        if operation == "TransactWriteItems":
            time.sleep(self.write_s)
            return self._transact(request["TransactItems"])
        if operation == "Stats":
            return 200, {"calls": self.calls, "items": len(self.items), "transact_items": self.write_units}
        return 400, {
            "__type": "com.amazon.coral.validate#ValidationException",
            "message": f"{operation} is not emulated",
        }

    def _transact(self, operations: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            reasons, failed = [], False
            for operation in operations:
                put = operation.get("Put") or operation.get("ConditionCheck")
                if put is None:
                    return 400, {
                        "__type": "com.amazon.coral.validate#ValidationException",
                        "message": "only Put and ConditionCheck are emulated",
                    }
                key = put["Item"]["pk"]["S"] if "Item" in put else put["Key"]["pk"]["S"]
                current = self.items.get((put["TableName"], key))
                ok = _condition_holds(
                    put.get("ConditionExpression"), put.get("ExpressionAttributeValues") or {}, current
                )
                reasons.append(
                    {"Code": "None"}
                    if ok
                    else {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
                )
                failed |= not ok
            if failed:
                return 400, {
                    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                    "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
                    "CancellationReasons": reasons,
                }
            for operation in operations:
                if "Put" in operation:
                    put = operation["Put"]
                    self.items[(put["TableName"], put["Item"]["pk"]["S"])] = put["Item"]
                    self.write_units += 1
        return 200, {}


def _condition_holds(expression: str | None, values: dict[str, Any], current: dict[str, Any] | None) -> bool:
    if not expression:
        return True
    if expression == "attribute_not_exists(pk)":
        return current is None
    if expression == "version = :v":
        return current is not None and current.get("version") == values.get(":v")
    if expression == "attribute_not_exists(pk) OR #fact = :fact":  # a PaymentIntent's own link
        return current is None or current.get("fact") == values.get(":fact")
    raise ValueError(f"condition {expression!r} is not emulated")
