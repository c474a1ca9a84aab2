"""`make dev SAM_LOCAL=1`: the `--env-vars` file that points `sam local`'s functions at this local stack.

`sam local` sets only the variables template.yaml declares (samcli/local/lambdafn/env_vars.py), so
the file gives each function every declared variable as the local stack runs it (queue URLs, secret
ARNs, table, Mode=any, the demo sender's mapping), with the local endpoints (moto, the local Mixpanel)
moved to the address a container reaches (devstack.bridge). AWS credentials and the region are not
template variables: SAM passes the shell's credentials (moto accepts any) and `--region` the region.
The commands that use the file are built here too, for the dev banner and for tests/sam_local.
"""

from __future__ import annotations

import json
import platform
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .template import Template

ENV_FILE = "sam-env.json"
SAM_PORT = 3002  # `sam local start-api`'s port in the printed commands (make dev's own API is on 3000)
FORWARDER_EVENT = "events/sqs/stripe.invoice.paid.json"


def native_architecture() -> str:
    """The template's Architecture value that runs without emulation on this machine."""
    return "x86_64" if platform.machine().lower() in ("x86_64", "amd64") else "arm64"


def env_vars(
    template: Template, environments: Mapping[str, Mapping[str, str]], moved: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Per function, the variables it declares with the values it runs with here.

    `moved` maps a local base URL (http://127.0.0.1:port) to the one a container uses; every value
    under such a URL (the endpoint itself, the queue URLs moto hands out) is rebased onto it.
    """

    def rebase(value: str) -> str:
        for local, remote in moved.items():
            if value == local or value.startswith(local + "/"):
                return remote + value[len(local) :]
        return value

    return {
        function: {name: rebase(environment[name]) for name in template.variables(function) if name in environment}
        for function, environment in environments.items()
    }


def write(path: Path, document: Mapping[str, Mapping[str, str]]) -> Path:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    path.chmod(0o600)  # secret ARNs and URLs, no secret values; private like .devstack/secrets.json
    return path


@dataclass(frozen=True)
class SamCommands:
    """The commands a developer types to run the functions with `sam local` against the local stack."""

    env_file: str
    region: str
    architecture: str = "arm64"
    port: int = SAM_PORT

    @property
    def _overrides(self) -> list[str]:
        """The template defaults to arm64: anything else is a parameter override (on build and on run)."""
        return [] if self.architecture == "arm64" else ["--parameter-overrides", f"Architecture={self.architecture}"]

    @property
    def _local(self) -> list[str]:
        return ["--env-vars", self.env_file, *self._overrides, "--region", self.region]

    def build(self) -> list[str]:
        return ["make", "build", *([] if self.architecture == "arm64" else [f"ARCHITECTURE={self.architecture}"])]

    def start_api(self) -> list[str]:
        return ["sam", "local", "start-api", *self._local, "--port", str(self.port)]

    def invoke(self, function: str, event: str) -> list[str]:
        return ["sam", "local", "invoke", function, "-e", event, *self._local]

    def lines(self, stripe_secret: str) -> list[str]:
        """The banner's lines: build, serve the API, and each function on its own."""
        event = str(Path(self.env_file).with_name("event.json"))
        return [
            shlex.join(self.build()),
            shlex.join(self.start_api()),
            f"stripe listen --forward-to 127.0.0.1:{self.port}/webhooks/stripe   (with this stack's secret: see above)",
            f"STRIPE_WEBHOOK_SECRET={shlex.quote(stripe_secret)} make -s event > {shlex.quote(event)}",
            shlex.join(self.invoke("ReceiverFunction", event)),
            shlex.join(self.invoke("ForwarderFunction", FORWARDER_EVENT)),
        ]
