"""The ledger (DynamoDB `LedgerTable`): each business fact once, and exact customer totals.

Items (partition key `pk`):
- `fact#<fact key>`: the canonical Mixpanel event of a fact, written once (conditional put).
  A later webhook about the same fact re-sends this event, so Mixpanel deduplicates it.
- `customer#<provider>:<customer>`: counters and newest-wins states, changed in the same
  transaction as the fact that changes them, guarded by a version number, so a retry or a
  concurrent forwarder never counts a fact twice.
- `link#<payment ref>`: who paid a payment, so a refund webhook that names only the
  payment lands on the same user.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from .facts import Fact, Identity

MAX_CONFLICT_RETRIES = 20


class LedgerUnavailable(Exception):
    """DynamoDB could not be read or written: the message must be retried, not dropped."""


def customer_key(fact: Fact) -> str | None:
    who = fact.identity.customer or fact.identity.user_id
    return f"{fact.provider}:{who}" if who else None


def apply(totals: dict[str, Any], fact: Fact) -> dict[str, Any]:
    """Customer totals after one new fact: counters add, states keep the newest event's value."""
    updated = dict(totals)
    updated["revenue"] = dict(totals.get("revenue") or {})
    effect = fact.profile
    if effect is not None:
        updated["purchases"] = int(totals.get("purchases", 0)) + effect.purchases
        updated["refunds"] = int(totals.get("refunds", 0)) + effect.refunds
        if effect.revenue is not None:
            currency = effect.revenue.currency
            updated["revenue"][currency] = int(updated["revenue"].get(currency, 0)) + effect.revenue.minor
        if effect.purchases:
            updated["last_purchase_at"] = max(int(totals.get("last_purchase_at") or 0), fact.time)
        for state in ("status", "plan"):
            value = getattr(effect, state)
            if value and fact.time >= int(totals.get(f"{state}_at") or 0):
                updated[state], updated[f"{state}_at"] = value, fact.time
    if fact.identity.user_id and fact.time >= int(totals.get("user_id_at") or 0):
        updated["user_id"], updated["user_id_at"] = fact.identity.user_id, fact.time
    if fact.identity.customer:
        updated["customer"] = fact.identity.customer
    if fact.email and fact.time >= int(totals.get("email_at") or 0):
        updated["email"], updated["email_at"] = fact.email, fact.time
    return updated


class Ledger:
    def __init__(self, table_name: str, client: Any = None) -> None:
        if not table_name:
            raise ValueError("LEDGER_TABLE is not set")
        self.table = table_name
        if client is None:
            import boto3  # the runtime's; honours AWS_ENDPOINT_URL(_DYNAMODB)

            client = boto3.client("dynamodb")
        self.client = client

    # ---- reads --------------------------------------------------------------------------

    def facts(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Canonical events already recorded for these fact keys."""
        items = self._batch_get([f"fact#{key}" for key in keys])
        return {pk[5:]: json.loads(item["event"]["S"]) for pk, item in items.items()}

    def links(self, refs: Iterable[str]) -> dict[str, Identity]:
        items = self._batch_get([f"link#{ref}" for ref in refs])
        return {pk[5:]: Identity(**json.loads(item["identity"]["S"])) for pk, item in items.items()}

    def customers(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        items = self._batch_get([f"customer#{key}" for key in keys])
        return {pk[9:]: json.loads(item["totals"]["S"]) for pk, item in items.items()}

    # ---- writes -------------------------------------------------------------------------

    def record(self, fact: Fact, event: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record `fact` with `event` unless already recorded; returns (canonical event, newly recorded)."""
        from botocore.exceptions import ClientError

        ck = customer_key(fact)
        fact_put = {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "pk": {"S": f"fact#{fact.key}"},
                    "event": {"S": json.dumps(event, separators=(",", ":"), sort_keys=True)},
                    "recorded_at": {"N": str(int(time.time() * 1000))},
                    **({"customer": {"S": ck}} if ck else {}),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        link_identity = json.dumps(
            {"user_id": fact.identity.user_id, "device_id": fact.identity.device_id, "customer": fact.identity.customer}
        )
        link_puts = [
            {"Put": {"TableName": self.table, "Item": {"pk": {"S": f"link#{ref}"}, "identity": {"S": link_identity}}}}
            for ref in fact.links
        ]
        for _ in range(MAX_CONFLICT_RETRIES):
            operations = [fact_put, *link_puts]
            if ck:
                operations.append(self._customer_put(ck, fact))
            try:
                self.client.transact_write_items(TransactItems=operations)
                return event, True
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code")
                if code != "TransactionCanceledException":
                    raise LedgerUnavailable(f"{code}: {error}") from error
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    stored = self.facts([fact.key]).get(fact.key)
                    if stored is not None:
                        return stored, False
                # Another forwarder changed this customer, or a transaction conflict: read again and retry.
                continue
        raise LedgerUnavailable(f"too many concurrent updates of customer {ck}")

    def _customer_put(self, ck: str, fact: Fact) -> dict[str, Any]:
        response = self._get(f"customer#{ck}")
        version = int(response["version"]["N"]) if response else 0
        totals = json.loads(response["totals"]["S"]) if response else {}
        updated = apply(totals, fact)
        condition = "attribute_not_exists(pk)" if version == 0 else "version = :v"
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {
                "pk": {"S": f"customer#{ck}"},
                "totals": {"S": json.dumps(updated, separators=(",", ":"), sort_keys=True)},
                "version": {"N": str(version + 1)},
            },
            "ConditionExpression": condition,
        }
        if version:
            put["ExpressionAttributeValues"] = {":v": {"N": str(version)}}
        return {"Put": put}

    # ---- plumbing -----------------------------------------------------------------------

    def _get(self, pk: str) -> dict[str, Any] | None:
        try:
            return self.client.get_item(TableName=self.table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")
        except Exception as error:
            raise LedgerUnavailable(str(error)) from error

    def _batch_get(self, pks: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(pks))
        try:
            for start in range(0, len(unique), 100):
                request = {
                    self.table: {
                        "Keys": [{"pk": {"S": pk}} for pk in unique[start : start + 100]],
                        "ConsistentRead": True,
                    }
                }
                while request:
                    response = self.client.batch_get_item(RequestItems=request)
                    for item in response.get("Responses", {}).get(self.table, []):
                        found[item["pk"]["S"]] = item
                    request = response.get("UnprocessedKeys") or {}
        except Exception as error:
            raise LedgerUnavailable(str(error)) from error
        return found
