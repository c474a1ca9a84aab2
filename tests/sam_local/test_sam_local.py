"""`sam local` for real: both functions in Lambda containers, against `make dev`'s services, into the local Mixpanel.

`make sam-local-test` runs this (RUN_SAM_LOCAL=1; any other pytest run skips it). As root on Linux it
installs docker.io when missing and starts a Docker engine kept to this machine (docker_engine.py),
finds the Lambda Python 3.13 image or builds a stand-in (standin_image.py), runs `make dev --sam-local`
on free ports and `sam build` for this machine's architecture, then, with the commands `make dev` prints:
- `sam local invoke ReceiverFunction`, a freshly signed Stripe event: accepted, and the webhook's
  Mixpanel events arrive in the local Mixpanel (through the dev stack's queue and forwarder);
- `sam local invoke ForwarderFunction`, an SQS event from events/sqs/: its Mixpanel events arrive;
- `sam local start-api`, a signed webhook POSTed to it: 200 and in the local Mixpanel; a forged one: 400.
What the run started is stopped and removed at the end. Where the machine cannot run it (not root,
not Linux, no apt-get, no Docker engine possible), every test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from docker_engine import Engine, EngineSession, Unavailable, timed
from standin_image import RuntimeImage, runtime_image

from devstack.aws import REGION, free_port
from devstack.cli import main as revenue_webhooks
from devstack.events_cli import sqs_event
from devstack.sam_env import ENV_FILE, FORWARDER_EVENT, SamCommands, native_architecture
from devstack.samples import Sample, find
from devstack.template import ROOT

pytestmark = pytest.mark.skipif(
    not os.environ.get("RUN_SAM_LOCAL"), reason="sam local not checked: run it with make sam-local-test"
)

STRIPE_SECRET = "whsec_sam_local_" + "5" * 32
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 60
SAM_TIMEOUT_S = 300  # a first invoke builds SAM's image (the emulator and the layer on the runtime image)
DELIVERY_TIMEOUT_S = 60


def log(message: str) -> None:
    print(f"[sam-local] {message}", flush=True)


def refusal() -> str | None:
    """Why this machine cannot run the check, if it cannot."""
    if sys.platform != "linux":
        return f"needs Linux (this is {sys.platform}): the check starts its own Docker engine and bridge"
    if os.geteuid() != 0:
        return "needs root: it may install docker.io, starts dockerd and adds an iptables rule (run as root on Debian)"
    return None


# ---- the machine --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sam-local")


@pytest.fixture(scope="module")
def engine(work: Path) -> Iterator[Engine]:
    why = refusal()
    if why:
        pytest.skip(f"sam local not checked: {why}")
    session = EngineSession(work, log)
    try:
        running = session.__enter__()
    except Unavailable as error:
        pytest.skip(f"sam local not checked: {error}")
    try:
        yield running
    finally:
        session.close()


@pytest.fixture(scope="module")
def image(engine: Engine, work: Path) -> RuntimeImage:
    try:
        return runtime_image(engine, native_architecture(), work, log)
    except Unavailable as error:
        pytest.skip(f"sam local not checked: {error}")


# ---- the project: make dev, sam build ----------------------------------------------------


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    mixpanel: str
    state: Path
    output: Path

    @property
    def env_file(self) -> Path:
        return self.state / ENV_FILE

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@pytest.fixture(scope="module")
def dev(engine: Engine, work: Path) -> Iterator[DevStack]:
    """`make dev --sam-local` as a developer starts it, on free ports, its batching window shortened."""
    state, output = work / "devstack", work / "dev.log"
    mixpanel_port = free_port()
    env = {
        **_clean_environ(),
        "PORT": str(free_port()),
        "MIXPANEL_PORT": str(mixpanel_port),
        "DEVSTACK_DIR": str(state),
        "DOCKER_BRIDGE": engine.bridge,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "PYTHONPATH": os.pathsep.join(["layers/common", "."]),
    }
    command = [
        sys.executable,
        "-m",
        "devstack.cli",
        "dev",
        "--sam-local",
        "--parameter",
        "ForwarderBatchingWindowSeconds=1",
    ]
    with output.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    stack = DevStack(process, f"http://127.0.0.1:{mixpanel_port}", state, output)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "Ready." not in stack.text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"make dev --sam-local did not start:\n{stack.text()}")
            time.sleep(0.2)
        assert stack.env_file.is_file(), stack.text()
        log(f"make dev --sam-local ready; --env-vars {stack.env_file}")
        yield stack
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def template(engine: Engine, work: Path) -> Path:
    """`sam build` for this machine's architecture, into this run's own directory (the checkout's .aws-sam stays)."""
    architecture = native_architecture()
    build, cache = work / "build", work / "cache"
    command = [str(BIN / "sam"), "build", "--build-dir", str(build), "--cache-dir", str(cache)]
    command += ["--parameter-overrides", f"Architecture={architecture}"]
    with timed(log, f"sam build (Architecture={architecture})"):
        _run(command, {**_sam_environ(engine), "ARCHITECTURE": architecture})
    return build / "template.yaml"


@pytest.fixture(scope="module")
def sam(engine: Engine, image: RuntimeImage, dev: DevStack, template: Path) -> SamCommands:
    return SamCommands(str(dev.env_file), REGION, native_architecture(), port=free_port())


def sam_argv(engine: Engine, image: RuntimeImage, template: Path, printed: list[str]) -> list[str]:
    """A command as `make dev` prints it, with this run's template and image."""
    assert printed[0] == "sam"
    return [str(BIN / "sam"), *printed[1:], "--template", str(template), *image.sam_options()]


# ---- the checks -----------------------------------------------------------------------------


def test_receiver_under_sam_local_accepts_a_signed_webhook_that_reaches_mixpanel(
    engine: Engine, image: RuntimeImage, template: Path, dev: DevStack, sam: SamCommands, work: Path
) -> None:
    sample = find("stripe", "checkout.session.completed")
    event = work / "event.json"
    assert (
        revenue_webhooks(
            ["event", "--provider", "stripe", "--name", sample.name, "--secret", STRIPE_SECRET, "-o", str(event)]
        )
        == 0
    )
    argv = sam_argv(engine, image, template, sam.invoke("ReceiverFunction", str(event)))
    with timed(log, "sam local invoke ReceiverFunction"):
        answer = _invoke(argv, engine)
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["status"] == "accepted", answer
    _wait_in_mixpanel(dev, expected_insert_ids(sample), "the webhook the receiver enqueued")


def test_forwarder_under_sam_local_delivers_an_sqs_event_to_mixpanel(
    engine: Engine, image: RuntimeImage, template: Path, dev: DevStack, sam: SamCommands
) -> None:
    record = json.loads((ROOT / FORWARDER_EVENT).read_text())["Records"][0]
    argv = sam_argv(engine, image, template, sam.invoke("ForwarderFunction", FORWARDER_EVENT))
    with timed(log, "sam local invoke ForwarderFunction"):
        answer = _invoke(argv, engine)
    assert answer == {"batchItemFailures": []}, answer
    _wait_in_mixpanel(dev, _insert_ids(record), f"{FORWARDER_EVENT}'s events")


def test_start_api_serves_a_signed_webhook_into_mixpanel_and_refuses_a_forged_one(
    engine: Engine, image: RuntimeImage, template: Path, dev: DevStack, sam: SamCommands, work: Path
) -> None:
    argv = sam_argv(engine, image, template, sam.start_api())
    output = work / "start-api.log"
    with output.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=_sam_environ(engine), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{sam.port}/webhooks/stripe"
    try:
        _wait_listening(process, sam.port, output)
        sample = find("stripe", "invoice.paid.renewal")
        with timed(log, "sam local start-api: signed webhook"):
            signed = requests.post(
                url, data=sample.body, headers=_headers(sample, STRIPE_SECRET), timeout=SAM_TIMEOUT_S
            )
        assert signed.status_code == 200, f"{signed.status_code} {signed.text}\n{output.read_text(errors='replace')}"
        assert signed.json()["status"] == "accepted", signed.text
        forged = requests.post(
            url, data=sample.body, headers=_headers(sample, "whsec_" + "0" * 32), timeout=SAM_TIMEOUT_S
        )
        assert forged.status_code == 400, f"{forged.status_code} {forged.text}"
        _wait_in_mixpanel(dev, expected_insert_ids(sample), "the webhook posted to sam local start-api")
    finally:
        process.send_signal(signal.SIGINT)  # SAM stops its containers on Ctrl-C
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# ---- helpers --------------------------------------------------------------------------------


def expected_insert_ids(sample: Sample) -> set[str]:
    """The $insert_ids of the Mixpanel events this webhook becomes, by the project's own mapping."""
    return _insert_ids(sqs_event(sample)["Records"][0])


def _insert_ids(record: dict[str, Any]) -> set[str]:
    from revenue_webhooks.config import from_environ
    from revenue_webhooks.domain.facts import Fact
    from revenue_webhooks.mixpanel.rendering import insert_id
    from revenue_webhooks.providers import get_provider
    from revenue_webhooks.service.envelope import from_record

    queued = from_record(record)
    provider = get_provider(queued.provider, from_environ({"MODE": "any"}))
    assert provider is not None
    ids = {insert_id(fact) for fact in provider.map(queued) if isinstance(fact, Fact)}
    assert ids, f"{queued.provider} {queued.event_type} maps to no Mixpanel event: pick another sample"
    return ids


def _wait_in_mixpanel(dev: DevStack, insert_ids: set[str], what: str) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        events = requests.get(f"{dev.mixpanel}/api/events", params={"limit": "10000"}, timeout=5).json()["events"]
        arrived = {event["properties"].get("$insert_id") for event in events}
        if insert_ids <= arrived:
            log(f"{what}: {len(insert_ids)} event(s) in the local Mixpanel")
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not reach the local Mixpanel in {DELIVERY_TIMEOUT_S} s:\n{dev.text()[-3000:]}")
        time.sleep(0.5)


def _headers(sample: Sample, secret: str) -> dict[str, str]:
    return {"content-type": "application/json", **sample.headers(secret)}


def _invoke(argv: list[str], engine: Engine) -> dict[str, Any]:
    """Run `sam local invoke`; the function's answer is the last line SAM prints on stdout."""
    done = _run(argv, _sam_environ(engine))
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, f"sam local invoke printed no answer:\n{done.stderr}"
    try:
        return json.loads(lines[-1])
    except ValueError:
        pytest.fail(f"not the function's answer: {lines[-1]!r}\n{done.stderr}")


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SAM_TIMEOUT_S, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(argv[:4])} exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    return done


def _wait_listening(process: subprocess.Popen[bytes], port: int, output: Path) -> None:
    deadline = time.monotonic() + SAM_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"sam local start-api exited with {process.returncode}:\n{output.read_text(errors='replace')}")
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"sam local start-api did not listen within {SAM_TIMEOUT_S} s:\n{output.read_text()}")
        time.sleep(0.5)


def _clean_environ() -> dict[str, str]:
    """This environment without what would send the stack or SAM elsewhere (AWS profiles, endpoints, secrets)."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "MIXPANEL_", "DOCKER_")) and not name.endswith("_WEBHOOK_SECRET")
    }


def _sam_environ(engine: Engine) -> dict[str, str]:
    """SAM's environment: the venv first on PATH (python3.13 for the build), this engine, credentials moto accepts."""
    env = {
        **_clean_environ(),
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "SAM_CLI_TELEMETRY": "0",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if engine.docker_host:
        env["DOCKER_HOST"] = engine.docker_host
    return env
