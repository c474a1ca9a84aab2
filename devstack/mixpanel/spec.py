"""Every request the local Mixpanel receives, checked against Mixpanel's own ingestion OpenAPI spec.

The spec is a verbatim copy kept beside this module (`ingestion.openapi.yaml`, see SOURCES.md); what departs
from it is recorded as a spec violation, and tests assert there are none, so the client is held to the
published contract as well as to the rules the docs state in prose (`rules.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from email.message import Message
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30WriteValidator

from .bodies import FORM_TYPE, JSON_TYPES, Parsed, media_type
from .rules import ENGAGE_OPERATIONS, GROUP_OPERATIONS, is_number

SPEC_PATH = Path(__file__).with_name("ingestion.openapi.yaml")

# Where Mixpanel's own docs contradict its spec, the documented behaviour is not a violation.
SPEC_ALLOWANCES = (
    "/import query.project_id may be missing with Project Token auth (reference/import-events: "
    "'If project_id is not specified, the request will be authenticated using the provided token')",
    "/engage query.verbose may be 2 (Mixpanel's sample code sends it; it answers a real 400 on invalid input)",
    "/groups group-union and group-delete are checked against their own operation: the spec's `required` lists "
    "name `$unset` and `$set` there (a copy-paste slip; the descriptions say union and delete)",
    "/track properties.time may have a fraction: Mixpanel's own browser SDK (mixpanel-browser, src/utils.js) sends "
    "`_.timestamp() / 1000`, while the spec types it integer",
    "/track, /engage and /groups bodies may be form-encoded `data=` (what mixpanel-browser sends; the spec's "
    "batch-update operations describe that form) though their operations list application/json only",
)
# The spec's `required` slips, corrected (operationId -> (wrong entry, right entry)).
_REQUIRED_SLIPS = {"group-union": ("$unset", "$union"), "delete-group": ("$set", "$delete")}


class SpecChecker:
    """Checks received requests against Mixpanel's ingestion OpenAPI spec, operation by operation.

    The engage paths are `/engage#<operation>` fragments, so operations are chosen by hand: `/import` by its
    path, each `/engage` record by the one operation key it carries.
    """

    def __init__(self, spec_path: Path = SPEC_PATH) -> None:
        self._validators: dict[int, OAS30WriteValidator] = {}
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        spec = yaml.load(spec_path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
        self._import = spec["paths"]["/import"]["post"]
        self._import_body = OAS30WriteValidator(self._body_schema(self._import))
        self._engage_params = spec["paths"]["/engage#profile-batch-update"]["post"]
        self._engage_ops: dict[str, tuple[str, OAS30WriteValidator]] = {}
        for path, item in spec["paths"].items():
            if not path.startswith("/engage#"):
                continue
            operation = item["post"]
            schema = self._body_schema(operation)
            if schema.get("type") != "array":
                continue  # profile-batch-update: a string blob, each record is checked by its own operation
            chosen = [op for op in schema["items"].get("required", []) if op in ENGAGE_OPERATIONS]
            if len(chosen) != 1:
                raise ValueError(f"spec {path}: cannot tell which engage operation it describes")
            self._engage_ops[chosen[0]] = (operation["operationId"], OAS30WriteValidator(schema["items"]))
        missing = set(ENGAGE_OPERATIONS) - set(self._engage_ops)
        if missing:
            raise ValueError(f"spec has no /engage operation for {sorted(missing)}")
        self._groups_params = spec["paths"]["/groups#group-set"]["post"]
        self._group_ops: dict[str, tuple[str, OAS30WriteValidator]] = {}
        for path, item in spec["paths"].items():
            if not path.startswith("/groups#"):
                continue
            operation = item["post"]
            schema = self._body_schema(operation)
            if schema.get("type") != "array":
                continue  # group-batch-update: a string blob, each record is checked by its own operation
            record = dict(schema["items"])
            slip = _REQUIRED_SLIPS.get(operation["operationId"])
            if slip is not None:
                record["required"] = [slip[1] if name == slip[0] else name for name in record.get("required", [])]
            chosen = [op for op in record.get("properties", {}) if op in GROUP_OPERATIONS]
            if len(chosen) != 1:
                raise ValueError(f"spec {path}: cannot tell which group operation it describes")
            self._group_ops[chosen[0]] = (operation["operationId"], OAS30WriteValidator(record))
        if set(GROUP_OPERATIONS) - set(self._group_ops):
            raise ValueError(
                f"spec has no /groups operation for {sorted(set(GROUP_OPERATIONS) - set(self._group_ops))}"
            )
        self._track = spec["paths"]["/track"]["post"]
        self._track_body = OAS30WriteValidator(self._body_schema(self._track))

    @staticmethod
    def _body_schema(operation: dict[str, Any]) -> dict[str, Any]:
        return operation["requestBody"]["content"]["application/json"]["schema"]

    def check_import(
        self, query: Mapping[str, str], headers: Message, parsed: Parsed, auth: str | None
    ) -> list[tuple[str, str, str]]:
        """(operationId, where, message) for each way this `/import` request departs from the spec."""
        op_id = self._import["operationId"]
        found = [(op_id, w, m) for w, m in self._parameters(self._import, query, headers)]
        if auth == "project_token":
            found = [v for v in found if v[1] != "query.project_id"]
        if parsed.records is None:
            found.append((op_id, "body", f"not checked: {parsed.error}"))
        else:
            found.extend(
                (op_id, _where(e.absolute_path), e.message) for e in self._import_body.iter_errors(parsed.records)
            )
        return found

    def check_engage(self, query: Mapping[str, str], headers: Message, parsed: Parsed) -> list[tuple[str, str, str]]:
        """(operationId, where, message) for each way this `/engage` request departs from the spec."""
        found = self._check_updates(self._engage_params, self._engage_ops, ENGAGE_OPERATIONS, query, headers, parsed)
        return [v for v in found if not (v[1] == "query.verbose" and query.get("verbose") == "2")]

    def check_groups(self, query: Mapping[str, str], headers: Message, parsed: Parsed) -> list[tuple[str, str, str]]:
        """(operationId, where, message) for each way this `/groups` request departs from the spec."""
        return self._check_updates(self._groups_params, self._group_ops, GROUP_OPERATIONS, query, headers, parsed)

    def _check_updates(
        self,
        batch: dict[str, Any],
        by_operation: Mapping[str, tuple[str, OAS30WriteValidator]],
        operations: tuple[str, ...],
        query: Mapping[str, str],
        headers: Message,
        parsed: Parsed,
    ) -> list[tuple[str, str, str]]:
        """The batch operation's parameters and content type, then each record against its own operation."""
        op_id = batch["operationId"]
        found = [(op_id, w, m) for w, m in self._parameters(batch, query, headers)]
        media = media_type(headers)
        if media not in (*JSON_TYPES, FORM_TYPE):
            found.append((op_id, "header.Content-Type", f"{media!r} is not application/json, the only type listed"))
        if parsed.records is None:
            found.append((op_id, "body", f"not checked: {parsed.error}"))
            return found
        if not parsed.records:
            found.append((op_id, "body", "[] is too short (minItems 1)"))
        for index, record in enumerate(parsed.records):
            ops = [op for op in operations if isinstance(record, dict) and op in record]
            if len(ops) != 1:
                found.append((op_id, f"body[{index}]", f"no single operation of {operations} matches ({ops})"))
                continue
            record_op_id, validator = by_operation[ops[0]]
            found.extend(
                (record_op_id, _where([index, *e.absolute_path]), e.message) for e in validator.iter_errors(record)
            )
        return found

    def check_track(self, query: Mapping[str, str], headers: Message, parsed: Parsed) -> list[tuple[str, str, str]]:
        """(operationId, where, message) for each way this `/track` request departs from the spec (allowances above)."""
        op_id = self._track["operationId"]
        found = [(op_id, w, m) for w, m in self._parameters(self._track, query, headers)]
        if parsed.records is None:
            found.append((op_id, "body", f"not checked: {parsed.error}"))
            return found
        for error in self._track_body.iter_errors(parsed.records):
            path = list(error.absolute_path)
            fractional_time = path[1:] == ["properties", "time"] and error.validator == "type"
            if fractional_time and is_number(error.instance):
                continue
            found.append((op_id, _where(path), error.message))
        return found

    def _parameters(
        self, operation: dict[str, Any], query: Mapping[str, str], headers: Message
    ) -> list[tuple[str, str]]:
        return check_parameters(operation, query, headers, self._validators)


@functools.cache
def spec_checker(spec_path: Path = SPEC_PATH) -> SpecChecker:
    """One checker per spec file: parsing the spec takes longer than starting a server."""
    return SpecChecker(spec_path)


def _where(path: Iterable[Any]) -> str:
    out = "body"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check_parameters(
    operation: dict[str, Any],
    query: Mapping[str, str],
    headers: Message,
    validators: dict[int, OAS30WriteValidator] | None = None,
) -> list[tuple[str, str]]:
    """(where, message) for each query or header parameter of `operation` that the request misses or gets wrong.

    Query values are text: an integer or boolean schema is checked on the value the text reads as.
    """
    cache = validators if validators is not None else {}
    found: list[tuple[str, str]] = []
    for param in operation.get("parameters", []):
        where, name = param["in"], param["name"]
        if where == "query":
            raw = query.get(name)
        elif where == "header":
            raw = media_type(headers) if name.lower() == "content-type" else headers.get(name)
            raw = raw or None
        else:
            continue
        location = f"{where}.{name}"
        if raw is None:
            if param.get("required"):
                found.append((location, "required parameter is missing"))
            continue
        schema = param.get("schema", {})
        value: Any = raw
        if schema.get("type") == "integer":
            try:
                value = int(raw)
            except ValueError:
                found.append((location, f"{raw!r} is not an integer"))
                continue
        elif schema.get("type") == "boolean":
            if raw.lower() not in ("true", "false"):
                found.append((location, f"{raw!r} is not a boolean (true or false)"))
                continue
            value = raw.lower() == "true"
        validator = cache.setdefault(id(schema), OAS30WriteValidator(schema))
        found.extend((location, e.message) for e in validator.iter_errors(value))
    return found
