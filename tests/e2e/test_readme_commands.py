"""Every command in the README's shell blocks, run as written where this machine can, each skip with its reason.

The commands are extracted from README.md's ```bash / ```sh blocks and each is one test. They run
through bash from the repository's root, as a reader pastes them, with these differences: `make dev`
listens on free ports with its state in a temporary folder (PORT, MIXPANEL_PORT and DEVSTACK_DIR,
which it documents), so a developer's own `make dev` is never disturbed; a path under /tmp/ is in the
test's temporary folder, and one under .devstack/ in that stack's state folder; `whsec_...` stands
for a generated secret. The tools (`make event`, `make replay`, `make redrive`) find that running
stack by themselves, as they would in a reader's second terminal. A command this file does not know
fails the test until a rule says how to run it or why it cannot run here.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from reader_shell import VENV, make_is_ready, reader_environment
from revenue_webhooks.config import from_environ
from revenue_webhooks.providers import get_provider
from revenue_webhooks.providers.base import WebhookRequest

from devstack.aws import free_port
from devstack.stack import demo_sender_mapping
from devstack.template import ROOT
from ops import local_stack

README = ROOT / "README.md"
START_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 90
# What `make test` runs itself (its prerequisites): a README block naming one is covered by the suite.
MAKE_TEST_PARTS = ("lint", "docs-check", "unit", "integration", "fuzz", "e2e", "template", "security")


@dataclass(frozen=True)
class Command:
    text: str  # as written, continuation lines joined
    heading: str  # the README section it is in

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text, comments=True)

    @property
    def assignments(self) -> dict[str, str]:
        """`NAME=value` words before the program, as the shell reads them."""
        found: dict[str, str] = {}
        for word in self.words:
            name, sep, value = word.partition("=")
            if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
                break
            found[name] = value
        return found

    @property
    def program(self) -> list[str]:
        return self.words[len(self.assignments) :]

    def __str__(self) -> str:
        return self.text


def readme_commands(text: str) -> list[Command]:
    """Each command of the ```bash/```sh blocks: comment lines dropped, `\\` and open quotes continued."""
    commands: list[Command] = []
    heading, block, pending = "", None, ""
    for line in text.splitlines():
        if block is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            elif re.fullmatch(r"```(bash|sh|shell)\s*", line):
                block = []
            continue
        if line.startswith("```"):
            block = None
            continue
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quoted string goes on on the next line
            continue
        commands.append(Command(pending.replace("\\\n", " "), heading))
        pending = ""
    return commands


COMMANDS = readme_commands(README.read_text())


# ---- the environment the commands run in --------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def venv_is_make_ready() -> None:
    """make's commands build .venv first; they must find it built (`make test` did), not start a long install."""
    why_not = make_is_ready()
    if why_not:
        pytest.skip(why_not)


@dataclass
class DevStack:
    """`make dev` running in the background, as in a reader's first terminal."""

    process: subprocess.Popen[bytes]
    state: Path
    log: Path
    secret: str
    env: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def found(self) -> local_stack.LocalStackState:
        found, why_not = local_stack.find({"DEVSTACK_DIR": str(self.state)})
        assert found is not None, why_not
        return found

    def stop(self) -> None:
        """Ctrl-C, as in the terminal: SIGINT to make and its child."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def start_dev(command: str, folder: Path) -> DevStack:
    state = folder / "devstack"
    state.mkdir(parents=True, exist_ok=True)
    secret = "whsec_" + secrets.token_hex(16)
    env = reader_environment(state, PORT=str(free_port()), MIXPANEL_PORT=str(free_port()))
    log = folder / "make-dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command.replace("whsec_...", secret)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for Ctrl-C
        )
    stack = DevStack(process, state, log, secret, env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while "Ready." not in stack.output():
        if process.poll() is not None or time.monotonic() > deadline:
            stack.stop()
            pytest.fail(f"`{command}` did not become ready (exit {process.returncode}):\n{stack.output()}")
        time.sleep(0.2)
    return stack


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """The local stack the tools' commands work on: the README's own `make dev`."""
    stack = start_dev("make dev", tmp_path_factory.mktemp("readme-dev"))
    yield stack
    stack.stop()


def rewritten(text: str, env: dict[str, str], tmp_path: Path) -> str:
    """/tmp/ is the test's folder, and .devstack/ the running stack's state folder (DEVSTACK_DIR)."""
    return text.replace("/tmp/", f"{tmp_path}/").replace(".devstack/", f"{env['DEVSTACK_DIR']}/")


def run(command: Command, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    text = rewritten(command.text, env, tmp_path)
    return subprocess.run(
        ["bash", "-c", text], cwd=ROOT, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )


# ---- what each command is, and how it is checked ------------------------------------------------------


def check_help(command: Command, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    done = run(command, reader_environment(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    documented = re.findall(r"^([a-z0-9-]+):.*## ", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    listed = re.findall(r"^  make (\S+)", done.stdout, flags=re.MULTILINE)
    assert listed == documented and "e2e" in listed


def check_demo(command: Command, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Run once for this file and tests/e2e/test_demo.py, which checks its table (the demo_run fixture)."""
    assert command.program == ["make", "demo"], "the demo_run fixture runs `make demo` exactly"
    done: subprocess.CompletedProcess[str] = request.getfixturevalue("demo_run")
    assert done.args == ["make", "demo"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Dead-lettered: 0" in done.stdout and "make demo: done in" in done.stdout


def check_dev(command: Command, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Started as written; it describes itself for the tools while it runs, and Ctrl-C stops it and withdraws that."""
    stack = start_dev(command.text, tmp_path)
    try:
        found = stack.found()
        if "STRIPE_WEBHOOK_SECRET" in command.assignments:
            assert found.secrets["stripe"] == stack.secret
        assert requests.get(f"{found.mixpanel_url}/api/summary", timeout=5).status_code == 200
    finally:
        stack.stop()
    assert "Stopped." in stack.output()
    assert not (stack.state / local_stack.FILE_NAME).exists()


def check_build(command: Command, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """`sam build` with the venv's tools first on PATH, as the Deploy section asks (`.venv/bin` has sam and a
    python3.13); `make build` as it is."""
    env = reader_environment(tmp_path)
    if command.program[0] == "sam":
        env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    done = run(command, env, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (ROOT / ".aws-sam" / "build" / "template.yaml").is_file()


def check_event(command: Command, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A valid API Gateway event whose signature the provider's own code verifies with the running stack's secret."""
    dev: DevStack = request.getfixturevalue("dev")
    done = run(command, dev.env, tmp_path)
    assert done.returncode == 0, done.stderr
    written = re.search(r">\s*(\S+)", command.text)
    text = Path(rewritten(written.group(1), dev.env, tmp_path)).read_text() if written else done.stdout
    event = json.loads(text)
    assert event["version"] == "2.0" and event["requestContext"]["http"]["method"] == "POST"
    route = event["pathParameters"]["provider"]
    body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
    settings = from_environ({"MODE": "any", "STANDARD_WEBHOOKS_MAPPING": json.dumps(demo_sender_mapping())})
    provider = get_provider(route, settings)
    assert provider is not None
    provider.verify(
        WebhookRequest(body, {k.lower(): v for k, v in event["headers"].items()}, int(time.time() * 1000), route),
        [dev.found().secrets[route]],
    )


def check_replay(command: Command, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    dev: DevStack = request.getfixturevalue("dev")
    done = run(command, dev.env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"replayed \d+ events to {re.escape(dev.found().webhook_url)}/", done.stdout), done.stdout
    assert "failed" not in done.stdout


def check_redrive(command: Command, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    dev: DevStack = request.getfixturevalue("dev")
    done = run(command, dev.env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the queues of the local stack" in done.stderr
    assert re.search(r"^total \d+$", done.stdout, flags=re.MULTILINE) or "moved" in done.stdout, done.stdout


Check = Callable[[Command, pytest.FixtureRequest, Path], None]


def classify(command: Command) -> Check | str:
    """How a command is checked here, or why it cannot run on this machine (the skip's reason)."""
    program = command.program
    if not program:
        return "an assignment only"
    if "$(stripe " in command.text:
        return "needs the Stripe CLI and a Stripe account (it gives the secret)"
    if program[0] in ("export", "cd", "source", "."):
        return f"{program[0]} sets up the reader's shell for the commands after it"
    if program[0] == "docker":
        return "needs Docker"
    if program[0] == "sam":
        if program[1:2] == ["build"]:
            return check_build
        if program[1:2] == ["local"]:
            return "sam local: needs Docker (make sam-local-test runs it)"
        return f"sam {' '.join(program[1:2])}: needs an AWS account"
    if program[0] == "aws":
        return "needs an AWS account and a deployed stack"
    if program[0] == "stripe":
        return "needs the Stripe CLI and a Stripe account"
    if program[0] != "make":
        return f"unknown program {program[0]!r}"
    target = next((w for w in program[1:] if "=" not in w and not w.startswith("-")), "help")
    arguments = " ".join(w for w in program[1:] if w.startswith("ARGS="))
    if "--stack" in arguments:
        return "--stack: needs an AWS account and a deployed stack"
    if re.search(r"<[^>]+>", command.text):
        return "has placeholders to fill in"
    if target == "test":
        return "make test is the suite that runs this test"
    if target in MAKE_TEST_PARTS:
        return f"make test runs `make {target}`"
    if target == "sam-local-test":
        return "needs Docker (make sam-local-test)"
    if target == "dev" and ("SAM_LOCAL" in command.text or "--sam-local" in command.text):
        return "make dev for sam local: needs Docker"
    checks: dict[str, Check] = {
        "help": check_help,
        "build": check_build,
        "demo": check_demo,
        "dev": check_dev,
        "event": check_event,
        "replay": check_replay,
        "redrive": check_redrive,
    }
    return checks.get(target, f"unknown make target {target!r}")


def test_make_help_lists_every_target_it_documents(tmp_path: Path) -> None:
    """The README names `make help` in its text (Quick start), not in a block."""
    assert "`make help` lists every command" in README.read_text()
    check_help(Command("make help", "Quick start"), None, tmp_path)


def test_the_readme_has_commands_and_each_is_known() -> None:
    assert len(COMMANDS) >= 8
    unknown = [str(c) for c in COMMANDS if isinstance(classify(c), str) and "unknown" in str(classify(c))]
    assert unknown == [], "README commands this test cannot classify: add a rule to classify()"


@pytest.mark.parametrize("command", COMMANDS, ids=[c.text.split("#")[0].strip()[:70] for c in COMMANDS])
def test_readme_command(command: Command, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    how = classify(command)
    if isinstance(how, str):
        if "unknown" in how:
            pytest.fail(f"{command}: {how}")
        pytest.skip(f"{command.text.split('#')[0].strip()[:60]}: {how}")
    how(command, request, tmp_path)
