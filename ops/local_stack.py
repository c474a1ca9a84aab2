"""The running local stack (`make dev`) as the operator tools find it: the state file `.devstack/stack.json`.

`make dev` writes this file once everything listens and removes it when it stops. `make event`,
`make replay` and `make redrive` read it when they are given no queue, URL or secret, so they work
against the local stack with nothing to paste. The format is defined here, beside its reader, because
the tools (ops/) never import the dev stack (devstack/); the dev stack writes it with `write`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "stack.json"
FORMAT = "revenue-webhooks/local-stack/1"
# Where `make dev` keeps its state (secrets, the local Mixpanel's data, this file); the same variable moves it.
STATE_DIR_VARIABLE = "DEVSTACK_DIR"
DEFAULT_STATE_DIR = ".devstack"


class LocalStackError(Exception):
    """The state file is there but cannot be read; the message says why."""


@dataclass(frozen=True)
class LocalStackState:
    """What the tools need of a running `make dev`: where its API, queues and AWS are, and its signing secrets."""

    pid: int  # the `make dev` process: a file left by one that died is recognised as stale
    webhook_url: str  # the base URL: POST <webhook_url>/<route>
    routes: tuple[str, ...]  # every route it serves (built-in providers, then Standard Webhooks senders)
    secrets: Mapping[str, str]  # route -> the signing secret its receiver verifies with
    aws_endpoint_url: str  # moto's server
    region: str
    access_key_id: str
    secret_access_key: str
    events_queue_url: str
    dead_letter_queue_url: str
    mixpanel_url: str  # the local Mixpanel (or the real API when `make dev` forwards to a project)
    path: Path = field(default=Path(DEFAULT_STATE_DIR) / FILE_NAME, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return {"format": FORMAT, **data, "routes": list(self.routes), "secrets": dict(self.secrets)}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> LocalStackState:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise LocalStackError(f"{path}: not a local stack state file of format {FORMAT} (found {found!r})")
        try:
            return cls(
                pid=int(data["pid"]),
                webhook_url=str(data["webhook_url"]),
                routes=tuple(str(route) for route in data["routes"]),
                secrets={str(k): str(v) for k, v in dict(data["secrets"]).items()},
                aws_endpoint_url=str(data["aws_endpoint_url"]),
                region=str(data["region"]),
                access_key_id=str(data["access_key_id"]),
                secret_access_key=str(data["secret_access_key"]),
                events_queue_url=str(data["events_queue_url"]),
                dead_letter_queue_url=str(data["dead_letter_queue_url"]),
                mixpanel_url=str(data["mixpanel_url"]),
                path=path,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise LocalStackError(f"{path}: incomplete local stack state ({type(error).__name__}: {error})") from None

    def client(self, service: str, **options: Any) -> Any:
        """A boto3 client of the local stack's AWS (moto), whatever AWS settings this shell has."""
        import boto3

        session = boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )
        make_client: Any = session.client  # typed per service name; the name is a variable here
        return make_client(service, endpoint_url=self.aws_endpoint_url, **options)

    def describe(self) -> str:
        """How the tools name it in what they print."""
        return f"the local stack (make dev, process {self.pid}, {_shown(self.path)})"


def state_path(environ: Mapping[str, str]) -> Path:
    """Where `make dev` writes the file: $DEVSTACK_DIR/stack.json, else .devstack/stack.json here."""
    directory = environ.get(STATE_DIR_VARIABLE, "").strip() or DEFAULT_STATE_DIR
    return Path(directory) / FILE_NAME


def find(environ: Mapping[str, str]) -> tuple[LocalStackState | None, str]:
    """(the running local stack, "") or (None, why not), the reason worded for an error message."""
    path = state_path(environ)
    if not path.is_file():
        return None, f"no local stack is running: {_shown(path)} not found"
    try:
        state = LocalStackState.from_json(json.loads(path.read_text()), path)
    except ValueError as error:
        return None, f"{_shown(path)}: not JSON ({error})"
    except LocalStackError as error:
        return None, str(error)
    if not _alive(state.pid):
        return None, f"the local stack that wrote {_shown(path)} (process {state.pid}) is not running"
    return state, ""


def write(state: LocalStackState, path: Path) -> None:
    """Write the file readable by its owner only (it holds signing secrets), replacing any old one at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(state.to_json(), file, indent=2)
        file.write("\n")
    os.replace(partial, path)


def remove(path: Path, pid: int) -> None:
    """Remove the file if this process wrote it (another `make dev` may have replaced it since)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("pid") == pid:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
