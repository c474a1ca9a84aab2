"""Read template.yaml as the truth about resources, so the local stack cannot drift from `sam deploy`.

Understands the intrinsic functions the template uses (Ref, Fn::GetAtt, Fn::Sub, Fn::If,
Fn::Not, Fn::And, Fn::Or, Fn::Equals) well enough to resolve environment variables, queue attributes,
table keys and the forwarder's event source mapping against local resources.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _Loader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short-form tags into their long form."""


def _tag(name: str) -> Callable[[yaml.Loader, yaml.Node], Any]:
    def construct(loader: yaml.Loader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]  # a MappingNode here
        return {name: value}

    return construct


for _short in ("Ref", "GetAtt", "Sub", "If", "Not", "Equals", "Join", "Select", "Split", "Condition", "And", "Or"):
    _Loader.add_constructor(f"!{_short}", _tag(_short if _short in ("Ref", "Condition") else f"Fn::{_short}"))


@dataclass(frozen=True)
class EventSource:
    """The forwarder's SQS event source mapping as the template declares it."""

    queue: str
    batch_size: int
    batching_window_s: int
    report_batch_item_failures: bool


class Template:
    def __init__(self, path: Path = TEMPLATE, parameters: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.doc: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 (SafeLoader subclass)
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in (self.doc.get("Parameters") or {}).items()
        }
        self.parameters.update(parameters or {})
        self.resources: dict[str, dict[str, Any]] = self.doc["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r["Type"] == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resources[logical_id].get("Properties") or {}

    def variables(self, logical_id: str) -> dict[str, Any]:
        """A function's environment as declared: Globals' variables overlaid with its own, unresolved."""
        merged = dict(
            ((self.doc.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables", {})
        )
        merged.update((self.properties(logical_id).get("Environment") or {}).get("Variables", {}))
        return merged

    def function_environment(self, logical_id: str, resolve: Callable[[Any], Any]) -> dict[str, str]:
        """Globals' variables overlaid with the function's own, resolved."""
        return {name: str(resolve(value)) for name, value in self.variables(logical_id).items()}

    def function_setting(self, logical_id: str, name: str) -> Any:
        own = self.properties(logical_id).get(name)
        return own if own is not None else ((self.doc.get("Globals") or {}).get("Function") or {}).get(name)

    def sqs_event_source(self, function_id: str, resolve: Callable[[Any], Any]) -> EventSource:
        """The function's first SQS event source (the forwarder's: EventsQueue)."""
        sources = self.sqs_event_sources(function_id, resolve)
        if not sources:
            raise LookupError(f"{function_id} has no SQS event source in the template")
        return sources[0]

    def sqs_event_sources(self, function_id: str, resolve: Callable[[Any], Any]) -> list[EventSource]:
        """Every SQS event source of a function, in template order (the forwarder's: EventsQueue, EventsTestQueue)."""
        sources = []
        for event in (self.properties(function_id).get("Events") or {}).values():
            if event.get("Type") == "SQS":
                props = event["Properties"]
                queue = props["Queue"]
                queue_id = queue["Fn::GetAtt"][0] if isinstance(queue, dict) and "Fn::GetAtt" in queue else str(queue)
                sources.append(
                    EventSource(
                        queue=queue_id,
                        batch_size=int(resolve(props.get("BatchSize", 10))),
                        batching_window_s=int(resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in (props.get("FunctionResponseTypes") or []),
                    )
                )
        return sources

    def condition_holds(self, logical_id: str) -> bool:
        """Whether a resource exists with these parameters (its `Condition`, if any, is true)."""
        condition = self.resources[logical_id].get("Condition")
        if condition is None:
            return True
        return bool(Resolver(self, {}, {}, {})(self.doc["Conditions"][condition]))

    def http_routes(self, function_id: str) -> list[tuple[str, str]]:
        """(method, path) of each HttpApi event of a function."""
        return [
            (str(event["Properties"].get("Method", "ANY")).upper(), str(event["Properties"]["Path"]))
            for event in (self.properties(function_id).get("Events") or {}).values()
            if event.get("Type") == "HttpApi"
        ]


class Resolver:
    """Resolves intrinsic functions against parameters and local physical resources."""

    def __init__(
        self,
        template: Template,
        refs: Mapping[str, str],
        attributes: Mapping[tuple[str, str], str],
        pseudo: Mapping[str, str],
    ) -> None:
        self.template = template
        self.refs = refs
        self.attributes = attributes
        self.pseudo = pseudo

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self(item) for key, item in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self._ref(arg)
        if key == "Fn::GetAtt":
            return self.attributes[(arg[0], arg[1])]
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::Equals":
            left, right = (self(item) for item in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self(arg[0])
        if key == "Condition":  # a condition named inside another (Fn::And, Fn::Or, Fn::Not)
            return self._condition(arg)
        if key == "Fn::And":
            return all(self(item) for item in arg)
        if key == "Fn::Or":
            return any(self(item) for item in arg)
        if key == "Fn::If":
            condition, when_true, when_false = arg
            return self(when_true) if self._condition(condition) else self(when_false)
        return {key: self(arg)}

    def _condition(self, name: str) -> bool:
        return bool(self(self.template.doc.get("Conditions", {})[name]))

    def _ref(self, name: str) -> str:
        if name in self.template.parameters:
            return self.template.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        return self.refs[name]

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return self.attributes[(logical, attribute)]
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)
