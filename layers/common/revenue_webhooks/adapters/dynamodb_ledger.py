"""The ledger on DynamoDB (`LedgerTable`): each business fact once, and exact customer totals.

Items (partition key `pk`):
- `fact#<fact key>`: the canonical Mixpanel event of a fact, written once (conditional put).
  A later webhook about the same fact re-sends this event, so Mixpanel deduplicates it.
- `customer#<provider>:<customer>`: counters and newest-wins states, changed in the same
  transaction as the fact that changes them, guarded by a version number, so a retry or a
  concurrent forwarder never counts a fact twice.
- `company#<company id>`: a company's totals (Group Analytics), changed in the same transaction
  as the facts of every member's payments, guarded the same way.
- `link#<payment ref>`: who paid a payment, so a refund webhook that names only the
  payment lands on the same user.

A ledger with a `namespace` (the test lane's is "test") prefixes every key with `<namespace>/`, so
test-mode facts and totals never meet live ones in the one table.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..domain.facts import Fact, Identity
from ..domain.totals import apply, apply_company, company_key, customer_key
from ..service.ports import Ledger, LedgerUnavailable, Recorded
from .aws import error_code, error_detail

MAX_CONFLICT_RETRIES = 20
MAX_TRANSACTION_ITEMS = 100  # DynamoDB's TransactWriteItems limit
MAX_BATCH_GET_KEYS = 100  # DynamoDB's BatchGetItem limit
MAX_UNPROCESSED_ROUNDS = 8  # BatchGetItem answers that still leave keys unread before the read counts as failed
# Requests in flight at once: a batch's transactions and reads wait on DynamoDB, not on the CPU.
CONCURRENCY = 16


class DynamoDbLedger(Ledger):
    """The `Ledger` port on one DynamoDB table (items above)."""

    def __init__(self, table_name: str, client: Any, namespace: str = "") -> None:
        """`client`: a boto3 DynamoDB client (thread-safe; its pool should allow CONCURRENCY connections)."""
        if not table_name:
            raise ValueError("LEDGER_TABLE is not set")
        if "/" in namespace or "#" in namespace:
            raise ValueError(f"ledger namespace {namespace!r}: no '/' or '#'")
        self.table = table_name
        self.db = client
        self.namespace = namespace
        self._prefix = f"{namespace}/" if namespace else ""

    def _pk(self, kind: str, key: str) -> str:
        """The item key of a fact, customer, company or link: `[<namespace>/]<kind>#<key>`."""
        return f"{self._prefix}{kind}#{key}"

    def _key_of(self, pk: str, kind: str) -> str:
        return pk[len(self._prefix) + len(kind) + 1 :]

    def _is(self, pk: str, kind: str) -> bool:
        return pk.startswith(f"{self._prefix}{kind}#")

    # ---- reads --------------------------------------------------------------------------

    def facts(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Canonical events already recorded for these fact keys."""
        items = self._batch_get([self._pk("fact", key) for key in keys])
        return {self._key_of(pk, "fact"): json.loads(item["event"]["S"]) for pk, item in items.items()}

    def mark_rejected(self, keys: Iterable[str]) -> None:
        """Mixpanel refused these facts' events: the next webhook or replay renders them afresh.

        The fact stays recorded (its money is already in the customer's totals), so a redrive after
        a fix in the mapping re-sends a corrected event without counting anything twice.
        """
        for key in set(keys):
            try:
                self.db.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": self._pk("fact", key)}},
                    UpdateExpression="SET rejected = :t",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":t": {"BOOL": True}},
                )
            except Exception:  # best effort: the stored event is then re-sent as it was
                logging.getLogger(__name__).warning("could not mark fact %s as refused by Mixpanel", key, exc_info=True)

    def _replace_event(self, key: str, event: dict[str, Any]) -> None:
        self.db.update_item(
            TableName=self.table,
            Key={"pk": {"S": self._pk("fact", key)}},
            UpdateExpression="SET event = :e REMOVE rejected",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":e": {"S": json.dumps(event, separators=(",", ":"), sort_keys=True)}},
        )

    def links(self, refs: Iterable[str]) -> dict[str, Identity]:
        items = self._batch_get([self._pk("link", ref) for ref in refs])
        return {self._key_of(pk, "link"): Identity(**json.loads(item["identity"]["S"])) for pk, item in items.items()}

    def customers(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        items = self._batch_get([self._pk("customer", key) for key in keys])
        return {self._key_of(pk, "customer"): json.loads(item["totals"]["S"]) for pk, item in items.items()}

    def companies(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        items = self._batch_get([self._pk("company", key) for key in keys])
        return {self._key_of(pk, "company"): json.loads(item["totals"]["S"]) for pk, item in items.items()}

    # ---- writes -------------------------------------------------------------------------

    def record_all(
        self,
        items: Sequence[tuple[Fact, dict[str, Any]]],
        written_totals: dict[str, dict[str, Any]] | None = None,
        written_companies: dict[str, dict[str, Any]] | None = None,
    ) -> list[Recorded]:
        """Record a batch of facts; per item (canonical event, newly recorded) or the error that stopped it.

        One concurrent read finds the facts already recorded and the totals they change; the new facts
        go in few transactions (up to 100 items each), run concurrently. Facts that change the same
        totals item (a customer, or a company its members share) go in the same transaction, each item
        folded into one versioned write; a transaction that a concurrent writer cancels falls back to
        `record`, one fact at a time. `written_totals` and `written_companies` receive the customer and
        company totals each committed transaction stored, so the profiles need not be read back.
        """
        results: list[tuple[dict[str, Any], bool] | Exception | None] = [None] * len(items)
        totals_pks = {pk for fact, _ in items for pk in self._totals_pks(fact)}
        try:
            found = self._batch_get([self._pk("fact", fact.key) for fact, _ in items] + sorted(totals_pks))
        except LedgerUnavailable as error:
            return [error] * len(items)
        # Per recorded fact: its canonical event, and whether Mixpanel refused it.
        known = {
            self._key_of(pk, "fact"): (json.loads(item["event"]["S"]), "rejected" in item)
            for pk, item in found.items()
            if self._is(pk, "fact")
        }
        states = {pk: _versioned_totals(item) for pk, item in found.items() if pk in totals_pks}
        first: dict[str, int] = {}  # the first copy of each fact to record
        for index, (fact, event) in enumerate(items):
            if fact.key not in known:
                first.setdefault(fact.key, index)
                continue
            stored, rejected = known[fact.key]
            if rejected:  # Mixpanel refused the stored one: send today's rendering (recorded, so no write of it)
                try:
                    self._replace_event(fact.key, event)
                    stored = event
                except Exception as error:
                    stored = _unavailable(error)
                known[fact.key] = (stored, False)  # later copies in this batch send it, or fail alike
            results[index] = stored if isinstance(stored, Exception) else (stored, False)
        groups = _connected([(index, self._totals_pks(items[index][0])) for index in sorted(first.values())])
        batches = _pack(
            groups,
            lambda indices: (
                sum(1 + len(items[i][0].links) for i in indices)
                + len({pk for i in indices for pk in self._totals_pks(items[i][0])})
            ),
        )

        def run(batch: list[str]) -> None:
            outcomes, stored = self._write({group: groups[group] for group in batch}, items, states)
            for index, outcome in outcomes.items():
                results[index] = outcome
            for pk, totals in stored.items():
                if self._is(pk, "customer") and written_totals is not None:
                    written_totals[self._key_of(pk, "customer")] = totals
                elif self._is(pk, "company") and written_companies is not None:
                    written_companies[self._key_of(pk, "company")] = totals

        _concurrently(run, batches)
        for index, (fact, _) in enumerate(items):
            if results[index] is None:  # a later duplicate of a fact in this batch
                outcome = results[first[fact.key]]
                results[index] = (outcome[0], False) if isinstance(outcome, tuple) else outcome
        return results  # type: ignore[return-value]

    def _totals_pks(self, fact: Fact) -> list[str]:
        """The totals items a fact changes: its customer's, and its company's when it changes revenue or state."""
        ck, co = customer_key(fact), company_key(fact) if fact.profile is not None else None
        return [pk for pk in (ck and self._pk("customer", ck), co and self._pk("company", co)) if pk]

    def _fold(self, pk: str, totals: dict[str, Any], fact: Fact) -> dict[str, Any]:
        return apply_company(totals, fact) if self._is(pk, "company") else apply(totals, fact)

    def _write(
        self,
        groups: dict[str, list[int]],
        items: Sequence[tuple[Fact, dict[str, Any]]],
        states: dict[str, tuple[int, dict[str, Any]]],
    ) -> tuple[dict[int, tuple[dict[str, Any], bool] | Exception], dict[str, dict[str, Any]]]:
        """One transaction for these groups, and the totals it stored by item key; on cancellation, each fact alone."""
        operations: list[dict[str, Any]] = []
        links: dict[str, dict[str, Any]] = {}
        folded: dict[str, dict[str, Any]] = {}
        indices = [index for group in groups.values() for index in group]
        for index in indices:
            fact, event = items[index]
            operations.append(self._fact_put(fact, event))
            links.update({op["Put"]["Item"]["pk"]["S"]: op for op in self._link_puts(fact)})
            for pk in self._totals_pks(fact):
                folded[pk] = self._fold(pk, folded[pk] if pk in folded else states.get(pk, (0, {}))[1], fact)
        operations += [self._versioned_put(pk, totals, states.get(pk, (0, {}))[0]) for pk, totals in folded.items()]
        operations += links.values()
        try:
            self._transact(operations)
            return {index: (items[index][1], True) for index in indices}, folded
        except (ClientError, BotoCoreError) as error:  # unreachable or refused after retries: these wait for a retry
            if error_code(error) not in ("TransactionCanceledException", "ValidationException"):
                return dict.fromkeys(indices, _unavailable(error)), {}
        outcomes: dict[int, tuple[dict[str, Any], bool] | Exception] = {}
        for index in indices:  # someone else wrote one of these facts or totals meanwhile
            try:
                outcomes[index] = self.record(*items[index])
            except Exception as error:
                outcomes[index] = _unavailable(error)
        return outcomes, {}

    def record(self, fact: Fact, event: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record one fact with `event` unless already recorded; returns (canonical event, newly recorded)."""
        pks = self._totals_pks(fact)
        for _ in range(MAX_CONFLICT_RETRIES):
            operations = [self._fact_put(fact, event), *self._link_puts(fact)]
            for pk in pks:
                version, totals = self._totals_state(pk)
                operations.append(self._versioned_put(pk, self._fold(pk, totals, fact), version))
            try:
                self._transact(operations)
                return event, True
            except (ClientError, BotoCoreError) as error:
                if not isinstance(error, ClientError) or error_code(error) != "TransactionCanceledException":
                    raise _unavailable(error) from error
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    stored = self.facts([fact.key]).get(fact.key)
                    if stored is not None:
                        return stored, False
                # Another forwarder changed these totals, or a transaction conflict: read again and retry.
                continue
        raise LedgerUnavailable(f"too many concurrent updates of {', '.join(pks)}")

    # ---- items --------------------------------------------------------------------------

    def _fact_put(self, fact: Fact, event: dict[str, Any]) -> dict[str, Any]:
        ck = customer_key(fact)
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "pk": {"S": self._pk("fact", fact.key)},
                    "event": {"S": json.dumps(event, separators=(",", ":"), sort_keys=True)},
                    "recorded_at": {"N": str(int(time.time() * 1000))},
                    **({"customer": {"S": ck}} if ck else {}),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _link_puts(self, fact: Fact) -> list[dict[str, Any]]:
        who = fact.identity
        identity = json.dumps(
            {"user_id": who.user_id, "device_id": who.device_id, "customer": who.customer}
            | ({"company": who.company} if who.company else {})
        )
        return [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {"pk": {"S": self._pk("link", ref)}, "identity": {"S": identity}},
                }
            }
            for ref in fact.links
        ]

    def _versioned_put(self, pk: str, totals: dict[str, Any], version: int) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {
                "pk": {"S": pk},
                "totals": {"S": json.dumps(totals, separators=(",", ":"), sort_keys=True)},
                "version": {"N": str(version + 1)},
            },
            "ConditionExpression": "attribute_not_exists(pk)" if version == 0 else "version = :v",
        }
        if version:
            put["ExpressionAttributeValues"] = {":v": {"N": str(version)}}
        return {"Put": put}

    def _totals_state(self, pk: str) -> tuple[int, dict[str, Any]]:
        item = self._get(pk)
        return _versioned_totals(item) if item else (0, {})

    # ---- plumbing -----------------------------------------------------------------------

    def _transact(self, operations: list[dict[str, Any]]) -> None:
        """One TransactWriteItems. botocore fills in `ClientRequestToken` once per call, so its retries are
        idempotent: a retry of a transaction that committed while its answer was lost succeeds instead of
        being cancelled by its own writes."""
        self.db.transact_write_items(TransactItems=operations)

    def _get(self, pk: str) -> dict[str, Any] | None:
        try:
            item: dict[str, Any] | None = self.db.get_item(
                TableName=self.table, Key={"pk": {"S": pk}}, ConsistentRead=True
            ).get("Item")
            return item
        except Exception as error:
            raise _unavailable(error) from error

    def _batch_get(self, pks: list[str]) -> dict[str, dict[str, Any]]:
        """Items by key, consistently read, 100 keys a request, the requests concurrently."""
        unique = list(dict.fromkeys(pks))
        chunks = [unique[start : start + MAX_BATCH_GET_KEYS] for start in range(0, len(unique), MAX_BATCH_GET_KEYS)]
        found: dict[str, dict[str, Any]] = {}

        def read(keys: list[str]) -> None:
            request = {self.table: {"Keys": [{"pk": {"S": pk}} for pk in keys], "ConsistentRead": True}}
            for attempt in range(MAX_UNPROCESSED_ROUNDS):
                if attempt:  # DynamoDB left keys unread (throttling): back off before asking again
                    time.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))  # noqa: S311  # nosec B311
                response = self.db.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    found[item["pk"]["S"]] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    return
            raise LedgerUnavailable(f"DynamoDB left keys unread after {MAX_UNPROCESSED_ROUNDS} rounds")

        try:
            _concurrently(read, chunks)
        except LedgerUnavailable:
            raise
        except Exception as error:
            raise _unavailable(error) from error
        return found


def _unavailable(error: Exception) -> LedgerUnavailable:
    """The error as the message's retry reason: DynamoDB's own message and request id when it answered."""
    if isinstance(error, LedgerUnavailable):
        return error
    return LedgerUnavailable(error_detail(error))


def _versioned_totals(item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return int(item["version"]["N"]), json.loads(item["totals"]["S"])


def _concurrently(work: Callable[[Any], None], jobs: Sequence[Any]) -> None:
    """`work` on every job, CONCURRENCY at a time (inline for one); the first error is raised."""
    if len(jobs) <= 1:
        for job in jobs:
            work(job)
        return
    with ThreadPoolExecutor(max_workers=min(CONCURRENCY, len(jobs))) as pool:
        for _ in pool.map(work, jobs):
            pass


def _connected(facts: list[tuple[int, list[str]]]) -> dict[str, list[int]]:
    """Facts grouped so that facts changing the same totals item share a group (their transaction).

    Connected components over the items: a customer's facts, and every customer of a company. A fact
    changing no totals is a group of its own. Groups keep the facts' order.
    """
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for _, pks in facts:
        for pk in pks[1:]:
            parent[root(pk)] = root(pks[0])
    groups: dict[str, list[int]] = {}
    for index, pks in facts:
        groups.setdefault(root(pks[0]) if pks else f"fact:{index}", []).append(index)
    return groups


def _pack(groups: dict[str, list[int]], size: Callable[[list[int]], int]) -> list[list[str]]:
    """Groups into transactions of at most MAX_TRANSACTION_ITEMS items; an oversized group goes alone."""
    batches: list[list[str]] = []
    current: list[str] = []
    used = 0
    for group, indices in groups.items():
        cost = size(indices)
        if current and used + cost > MAX_TRANSACTION_ITEMS:
            batches.append(current)
            current, used = [], 0
        current.append(group)
        used += cost
    if current:
        batches.append(current)
    return batches
