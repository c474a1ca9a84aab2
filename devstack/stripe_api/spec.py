"""Checks what the local Stripe API serves against Stripe's published OpenAPI spec.

The pinned spec (tests/fixtures/stripe-openapi/, see its SOURCES.md) is the newest complete one that could be
obtained: API version 2023-08-16. Objects served in a later shape depart from it where Stripe changed the
API since; such a departure is allowed only when Stripe's own published example of the same resource in the
later version (fixtures3, 2026-07-29) departs in the same way, at the same place. Anything else is a
violation.

Stripe writes OpenAPI 3.0 `nullable: true` beside `anyOf` and `enum`, which JSON Schema validators do not
combine; the checker reads `{nullable: true, ...}` as "null or `...`", which is what Stripe means (its own
2023 examples validate cleanly only under that reading, as the tests show).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30ReadValidator

from .shapes import FIXTURES, current_example

SPEC_PATH = FIXTURES / "stripe-openapi" / "spec3.extract.json"


@dataclass(frozen=True)
class Violation:
    """One departure from the spec: where in the body, why, and whether Stripe's later example shows it too."""

    schema: str
    where: str
    message: str
    allowed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"schema": self.schema, "where": self.where, "message": self.message, "allowed": self.allowed}


def _nullable(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: _nullable(value) for key, value in node.items()}
        if node.pop("nullable", False):
            return {"anyOf": [{"enum": [None]}, node]}
        return node
    if isinstance(node, list):
        return [_nullable(value) for value in node]
    return node


def _where(path: Iterable[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "."


def _signature(schema: str, error: ValidationError) -> tuple[str, str, str]:
    """The place and kind of a departure, with list positions generalised (`items[*]`)."""
    path = ["*" if isinstance(p, int) else str(p) for p in error.absolute_path]
    if error.validator == "required":
        path.append(str(error.message).split("'")[1])
    return schema, "/".join(path), str(error.validator)


class SpecChecker:
    """Validates objects, events and API answers against the pinned spec's schemas."""

    def __init__(self, spec_path: Path = SPEC_PATH, later_examples: Mapping[str, Any] | None = None) -> None:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        self.version: str = spec["info"]["version"]
        self.paths: dict[str, Any] = spec["paths"]
        self._components = _nullable(spec["components"])
        self._lock = threading.Lock()
        self._validators: dict[str, OAS30ReadValidator] = {}
        examples = later_examples if later_examples is not None else self._stripe_examples()
        self.allowances: frozenset[tuple[str, str, str]] = frozenset(
            _signature(kind, error)
            for kind, example in examples.items()
            if kind in self.schemas
            for error in self._validator(kind).iter_errors(example)
        )

    @staticmethod
    def _stripe_examples() -> dict[str, Any]:
        kinds: tuple[str, ...] = ("balance_transaction", "charge", "checkout.session", "customer", "event", "invoice")
        kinds += ("line_item", "payment_intent", "refund", "subscription", "subscription_item")
        return {kind: current_example(kind) for kind in kinds}

    @property
    def schemas(self) -> dict[str, Any]:
        return self._components["schemas"]

    def _validator(self, schema: str) -> OAS30ReadValidator:
        with self._lock:
            validator = self._validators.get(schema)
            if validator is None:
                root = {"$ref": f"#/components/schemas/{schema}", "components": self._components}
                validator = self._validators[schema] = OAS30ReadValidator(root)
            return validator

    def check_object(self, obj: Mapping[str, Any], schema: str | None = None) -> list[Violation]:
        """Departures of one object (its schema is its `object` field unless given); events: their object too."""
        name = schema or str(obj.get("object"))
        if name not in self.schemas:
            if name in NEWER_RESOURCES:
                return _check_by_example(name, obj, current_example(name))
            return [Violation(name, ".", f"not checked: the {self.version} spec has no schema {name!r}")]
        found = [
            Violation(name, _where(e.absolute_path), e.message, _signature(name, e) in self.allowances)
            for e in self._validator(name).iter_errors(obj)
        ]
        data = obj.get("data") if name == "event" else None
        if isinstance(data, Mapping) and isinstance(data.get("object"), Mapping):
            inner = self.check_object(data["object"])
            found.extend(Violation(v.schema, ".data.object" + v.where, v.message, v.allowed) for v in inner)
        return found

    def check_answer(self, path: str, status: int, body: Any) -> list[Violation]:
        """Departures of an answer to GET `path` (a path template of the spec) with this status."""
        operation = self.paths.get(path, {}).get("get")
        if operation is None:
            return [Violation(path, ".", f"not checked: the {self.version} spec has no GET {path}")]
        if status != 200:
            return self.check_object(body, "error")
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        if "$ref" in schema:
            return self.check_object(body, schema["$ref"].rsplit("/", 1)[1])
        if "anyOf" in schema:  # e.g. a customer or a deleted customer: the body's `object` says which
            return self.check_object(body)
        # A list: the envelope here, each item by its own schema.
        envelope = {**body, "data": []} if isinstance(body, Mapping) else body
        found = [
            Violation(path, _where(e.absolute_path), e.message)
            for e in OAS30ReadValidator(_nullable(schema)).iter_errors(envelope)
            if e.validator != "$ref"
        ]
        for index, item in enumerate(body.get("data", []) if isinstance(body, Mapping) else []):
            found.extend(
                Violation(v.schema, f".data[{index}]" + v.where, v.message, v.allowed) for v in self.check_object(item)
            )
        return found


# Resources Stripe added after the pinned spec (InvoicePayment came with 2025-03-31.basil): checked against Stripe's
# own 2026-07-29 example of them instead (tests/fixtures/stripe-openapi/SOURCES.md).
NEWER_RESOURCES = ("invoice_payment",)


def _check_by_example(name: str, obj: Mapping[str, Any], example: Mapping[str, Any]) -> list[Violation]:
    """A resource newer than the spec: exactly the top-level fields of Stripe's example, each of the example's JSON
    type where both hold a value (nested objects are the example's where it shows them; Stripe's examples leave
    out optional nested fields, so those are not compared)."""
    found = [Violation(name, ".", f"{field!r} is in Stripe's 2026-07-29 example") for field in example.keys() - obj]
    found += [Violation(name, f".{field}", "not in Stripe's 2026-07-29 example") for field in obj.keys() - example]
    for field in sorted(obj.keys() & example.keys()):
        value, shown = obj[field], example[field]
        if value is not None and shown is not None and type(value) is not type(shown):
            found.append(
                Violation(name, f".{field}", f"{type(value).__name__}, the example's is {type(shown).__name__}")
            )
        elif isinstance(value, Mapping) and isinstance(shown, Mapping):
            found += [
                Violation(name, f".{field}.{k}", "not in Stripe's 2026-07-29 example") for k in shown.keys() - value
            ]
    return found


@functools.cache
def spec_checker(spec_path: Path = SPEC_PATH) -> SpecChecker:
    """One checker per spec file: loading the spec takes longer than starting a server."""
    return SpecChecker(spec_path)
