"""Run a template function's real handler in this process, with the environment the template gives it."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .template import ROOT, Template

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_s: float, memory_mb: int = 128) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(template: Template, logical_id: str, environment: Mapping[str, str]) -> Handler:
    """Import `<CodeUri>/<module>.py` under a unique name after applying its environment (a cold start)."""
    os.environ.update(environment)
    from revenue_webhooks import bootstrap

    bootstrap.reset()
    code_uri = template.properties(logical_id)["CodeUri"]
    module_name, function_name = str(template.function_setting(logical_id, "Handler")).rsplit(".", 1)
    path = ROOT / code_uri / f"{module_name}.py"
    unique = f"_{logical_id}_{module_name}"
    spec = importlib.util.spec_from_file_location(unique, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    spec.loader.exec_module(module)
    return getattr(module, function_name)


def context_for(template: Template, logical_id: str) -> LambdaContext:
    timeout = float(template.function_setting(logical_id, "Timeout") or 3)
    memory = int(template.function_setting(logical_id, "MemorySize") or 128)
    return LambdaContext(logical_id, timeout, memory)
