"""How `make event`, `make replay` and `make redrive` find their stack with nothing pasted.

The running local stack through the state file `make dev` writes (here written as `make dev` writes it, pointing
at a moto server and a verifying endpoint), and a deployed stack through CloudFormation and Secrets Manager with
`--stack NAME` (moto's, over HTTP). moto's CloudFormation cannot create secrets, so the test stack holds each
secret's logical id as an SSM parameter whose physical id is the name of a real secret in moto's Secrets Manager:
the tools' calls (DescribeStacks, DescribeStackResource, GetSecretValue) are the ones they make on AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import stripe
from revenue_webhooks.providers import specs
from webhook_endpoint import MAPPING, SECRETS, SENDER, Endpoint

from devstack import cli as dev_cli
from ops import local_stack, redrive, replay
from ops.deployed_stack import STANDARD_WEBHOOKS_SECRETS_RESOURCE

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FAST = ["--wait-seconds", "0", "--empty-receives", "2"]
REGION = "us-east-1"


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
    )


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def queues(moto_endpoint: str) -> tuple[str, str]:
    """(EventsQueue URL, dead-letter queue URL) with one dead letter waiting."""
    sqs = client("sqs", moto_endpoint)
    suffix = uuid.uuid4().hex[:8]
    dead_letter_queue = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    queue = sqs.create_queue(QueueName=f"q-{suffix}")["QueueUrl"]
    sqs.send_message(
        QueueUrl=dead_letter_queue,
        MessageBody="{}",
        MessageAttributes={
            "provider": {"DataType": "String", "StringValue": "stripe"},
            "event_type": {"DataType": "String", "StringValue": "invoice.paid"},
            "event_id": {"DataType": "String", "StringValue": f"evt_{suffix}"},
            "dead_letter_reason": {"DataType": "String", "StringValue": "mapping_error"},
        },
    )
    return queue, dead_letter_queue


@pytest.fixture
def running(
    tmp_path: Path, moto_endpoint: str, endpoint: Endpoint, queues: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> local_stack.LocalStackState:
    """A state file as `make dev` writes it, for a stack that is running (this process), and no AWS in the shell."""
    for name in list(os.environ):  # what other tests of this process may have left, and a developer's shell
        if (
            name.startswith("AWS_")
            or name.endswith("_SECRET")
            or name in (redrive.ENV["queue"], redrive.ENV["dead_letter_queue"])
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("DEVSTACK_DIR", str(tmp_path))
    state = local_stack.LocalStackState(
        pid=os.getpid(),
        webhook_url=endpoint.url,
        routes=(*specs(), SENDER),
        secrets=SECRETS,
        aws_endpoint_url=moto_endpoint,
        region=REGION,
        access_key_id="local",
        secret_access_key="local",
        events_queue_url=queues[0],
        dead_letter_queue_url=queues[1],
        mixpanel_url="http://127.0.0.1:9",
        path=tmp_path / local_stack.FILE_NAME,
    )
    local_stack.write(state, state.path)
    return state


# ---- the local stack ------------------------------------------------------------------------------------


def test_the_state_file_reads_back_and_only_its_owner_can_read_it(running: local_stack.LocalStackState) -> None:
    found, why_not = local_stack.find(os.environ)
    assert (found, why_not) == (running, "")
    assert running.path.stat().st_mode & 0o777 == 0o600  # it holds signing secrets


def test_replay_posts_to_the_local_stack_signed_with_its_secret(
    running: local_stack.LocalStackState, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted((FIXTURES / "stripe").glob("*.json"))
    assert replay.main(["--provider", "stripe", str(FIXTURES / "stripe"), "--no-progress"]) == 0
    assert len(endpoint.verified) == len(files)
    err = capsys.readouterr().err
    assert "the local stack (make dev" in err and "signed with its secret" in err

    # The same with the URL written out, as docs/operations.md shows it.
    assert replay.main(["--url", endpoint.url, "--provider", SENDER, str(FIXTURES / "standard-webhooks")]) == 0


def test_replay_to_another_url_still_needs_a_secret(
    running: local_stack.LocalStackState, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay.main(["--url", "http://127.0.0.1:9/webhooks", "--provider", "stripe", str(FIXTURES / "stripe")]) == 2
    err = capsys.readouterr().err
    assert "no signing secret for http://127.0.0.1:9/webhooks" in err and "STRIPE_WEBHOOK_SECRET" in err


def test_an_unknown_provider_lists_the_routes(
    running: local_stack.LocalStackState, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay.main(["--provider", "strype", str(FIXTURES / "stripe")]) == 2
    assert f"its routes: {', '.join(running.routes)}" in capsys.readouterr().err


def test_redrive_lists_the_local_stacks_dead_letters(
    running: local_stack.LocalStackState, capsys: pytest.CaptureFixture[str]
) -> None:
    assert redrive.main(["--list", *FAST]) == 0
    out, err = capsys.readouterr()
    assert "mapping_error" in out and "total 1" in out
    assert "the queues of the local stack" in err


def test_make_event_signs_with_the_local_stacks_secret(running: local_stack.LocalStackState, tmp_path: Path) -> None:
    output = tmp_path / "event.json"
    assert dev_cli.main(["event", "--provider", "stripe", "--name", "invoice.paid", "-o", str(output)]) == 0
    event = json.loads(output.read_text())
    stripe.WebhookSignature.verify_header(event["body"], event["headers"]["stripe-signature"], SECRETS["stripe"], 300)


def test_a_file_left_by_a_stack_that_died_is_not_used(
    running: local_stack.LocalStackState, capsys: pytest.CaptureFixture[str]
) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    local_stack.write(local_stack.LocalStackState(**{**vars(running), "pid": ended.pid}), running.path)

    assert redrive.main(["--list", *FAST]) == 2
    assert f"(process {ended.pid}) is not running" in capsys.readouterr().err
    assert dev_cli.main(["event", "--provider", "stripe", "--name", "invoice.paid"]) == 2
    err = capsys.readouterr().err
    assert "no signing secret for stripe" in err and "make dev" in err and "STRIPE_WEBHOOK_SECRET" in err


def test_the_file_is_removed_only_by_the_stack_that_wrote_it(running: local_stack.LocalStackState) -> None:
    local_stack.remove(running.path, pid=running.pid + 1)
    assert running.path.exists()
    local_stack.remove(running.path, pid=running.pid)
    assert not running.path.exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{", "not JSON"),
        ('{"format": "something-else/1"}', "not a local stack state file"),
        (json.dumps({"format": local_stack.FORMAT, "pid": 1}), "incomplete local stack state"),
    ],
)
def test_a_broken_state_file_says_why(tmp_path: Path, content: str, why: str) -> None:
    (tmp_path / local_stack.FILE_NAME).write_text(content)
    found, why_not = local_stack.find({"DEVSTACK_DIR": str(tmp_path)})
    assert found is None and why in why_not


# ---- a deployed stack, by name -------------------------------------------------------------------------


@pytest.fixture
def deployed(moto_endpoint: str, endpoint: Endpoint, queues: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A stack with the template's outputs, its StandardWebhooksMapping parameter and its secrets (Stripe's rotating)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    name = f"revenue-webhooks-{uuid.uuid4().hex[:6]}"
    values = {spec.signing.resource: SECRETS[route] for route, spec in specs().items() if not spec.signing.whole}
    values[specs()["stripe"].signing.resource] = "whsec_the_old_one," + SECRETS["stripe"]  # mid-rotation
    values[STANDARD_WEBHOOKS_SECRETS_RESOURCE] = json.dumps({SENDER: SECRETS[SENDER]})
    secretsmanager = client("secretsmanager", moto_endpoint)
    resources = {}
    for logical_id, value in values.items():
        secretsmanager.create_secret(Name=f"{name}-{logical_id}", SecretString=value)
        resources[logical_id] = {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": f"{name}-{logical_id}", "Type": "String", "Value": "-"},
        }
    template = {
        "Parameters": {"StandardWebhooksMapping": {"Type": "String", "Default": "{}"}},
        "Resources": resources,
        "Outputs": {
            "WebhookUrl": {"Value": endpoint.url},
            "EventsQueueUrl": {"Value": queues[0]},
            "EventsDeadLetterQueueUrl": {"Value": queues[1]},
        },
    }
    client("cloudformation", moto_endpoint).create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "StandardWebhooksMapping", "ParameterValue": json.dumps(MAPPING)}],
    )
    return name


def test_replay_to_a_deployed_stack_by_name(deployed: str, endpoint: Endpoint) -> None:
    assert replay.main(["--stack", deployed, "--provider", "stripe", str(FIXTURES / "stripe"), "--no-progress"]) == 0
    assert replay.main(["--stack", deployed, "--provider", SENDER, str(FIXTURES / "standard-webhooks")]) == 0
    assert {route for route, _, _ in endpoint.verified} == {"stripe", SENDER}  # the newest of "old,new" signed


def test_a_route_the_deployed_stack_lacks_is_named_with_its_routes(
    deployed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay.main(["--stack", deployed, "--provider", "acme", str(FIXTURES / "stripe")]) == 2
    assert f"has no route 'acme'; its routes: {', '.join([*specs(), SENDER])}" in capsys.readouterr().err


def test_make_event_signs_with_the_deployed_stacks_secret(deployed: str, tmp_path: Path) -> None:
    output = tmp_path / "event.json"
    assert dev_cli.main(["event", "--name", "invoice.paid", "--stack", deployed, "-o", str(output)]) == 0
    event = json.loads(output.read_text())
    stripe.WebhookSignature.verify_header(event["body"], event["headers"]["stripe-signature"], SECRETS["stripe"], 300)


def test_redrive_lists_a_deployed_stacks_dead_letters(deployed: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert redrive.main(["--stack", deployed, "--list", *FAST]) == 0
    assert "total 1" in capsys.readouterr().out


def test_an_unknown_stack_is_a_usage_error(deployed: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay.main(["--stack", "no-such-stack", "--provider", "stripe", str(FIXTURES / "stripe")]) == 2
    assert "stack no-such-stack" in capsys.readouterr().err
