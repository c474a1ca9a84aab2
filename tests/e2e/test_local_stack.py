"""The local stack as a developer runs it (`python -m devstack.cli dev`), and the resources it builds.

The first tests start the real stack in a subprocess on free ports with a throwaway state directory,
post signed webhooks over HTTP and read what the local Mixpanel stored, through its JSON API and
its SQLite file. The others build the stack in this process to compare its queues and table with
template.yaml, and prove that a setting changed in the template reaches the stack with no other edit.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.apigw import HttpApi, Route, is_text
from devstack.aws import free_port
from devstack.samples import find
from devstack.stack import LocalStack, Options
from devstack.template import ROOT, TEMPLATE, Template
from ops import local_stack

STRIPE_SECRET = "whsec_e2e_" + "c" * 32
START_TIMEOUT_S = 60
DELIVERY_TIMEOUT_S = 40  # the template's batching window (10 s) plus the forwarder's work
STOP_TIMEOUT_S = 20


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    api: str
    mixpanel: str
    state: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MIXPANEL_", "AWS_")) and not k.endswith("_WEBHOOK_SECRET")
    }
    env["PYTHONPATH"] = os.pathsep.join(["layers/common", "."])
    env.update(extra)
    return env


def _wait_ready(stack: DevStack) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            pytest.fail(f"make dev exited with {stack.process.returncode}:\n{stack.output()}")
        try:
            api = requests.get(f"{stack.api}/", timeout=2)
            page = requests.get(f"{stack.mixpanel}/api/summary", timeout=2)
            if api.status_code == 404 and page.status_code == 200 and "Ready." in stack.output():
                return
        except (requests.ConnectionError, requests.Timeout):  # bound but not serving yet: the stack is starting
            pass
        time.sleep(0.2)
    pytest.fail(f"make dev was not ready within {START_TIMEOUT_S} s:\n{stack.output()}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    state = tmp_path_factory.mktemp("devstack")
    port, mixpanel_port = free_port(), free_port()
    log = state / "console.log"
    env = _subprocess_env(
        PORT=str(port), MIXPANEL_PORT=str(mixpanel_port), DEVSTACK_DIR=str(state), STRIPE_WEBHOOK_SECRET=STRIPE_SECRET
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.cli", "dev"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    stack = DevStack(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mixpanel_port}", state, log)
    try:
        _wait_ready(stack)
        yield stack
    finally:
        _stop(process)


def _post_sample(stack: DevStack, name: str, secret: str, **extra_headers: str) -> requests.Response:
    sample = find("stripe", name)
    headers = {**sample.headers(secret), **extra_headers}
    return requests.post(f"{stack.api}/webhooks/stripe", data=sample.body, headers=headers, timeout=15)


def _events_with(stack: DevStack, order_id: str) -> list[dict[str, Any]]:
    """The local Mixpanel's events for one order, once they arrived (bounded wait)."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        events = requests.get(f"{stack.mixpanel}/api/events", timeout=5).json()["events"]
        found = [e for e in events if e["properties"].get("Order ID") == order_id]
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"no Mixpanel event for {order_id} within {DELIVERY_TIMEOUT_S} s:\n{stack.output()}")


def test_the_banner_lists_a_url_and_secret_per_route_and_the_stripe_cli_command(dev_stack: DevStack) -> None:
    port = dev_stack.api.rsplit(":", 1)[1]
    text = dev_stack.output()
    for route in ("stripe", "shopify", "paddle", "lemonsqueezy", "revenuecat"):
        assert f"http://127.0.0.1:{port}/webhooks/{route}" in text
    assert f"{STRIPE_SECRET}  (from STRIPE_WEBHOOK_SECRET)" in text
    assert f"stripe listen --forward-to 127.0.0.1:{port}/webhooks/stripe" in text
    assert "VisibilityTimeout 390 s, maxReceiveCount 5 -> EventsDeadLetterQueue" in text
    # ...and describes itself for the tools in another terminal (make event, replay, redrive).
    found, why_not = local_stack.find({"DEVSTACK_DIR": str(dev_stack.state)})
    assert found is not None, why_not
    assert (found.webhook_url, found.secrets["stripe"]) == (f"{dev_stack.api}/webhooks", STRIPE_SECRET)
    assert found.pid == dev_stack.process.pid


def test_a_signed_checkout_reaches_the_local_mixpanel_and_a_bad_signature_does_not(dev_stack: DevStack) -> None:
    forged = _post_sample(dev_stack, "checkout.session.completed.jpy", "whsec_not_the_secret")
    assert forged.status_code == 400
    assert forged.json() == {"error": "signature verification failed"}

    signed = _post_sample(dev_stack, "checkout.session.completed", STRIPE_SECRET)
    assert signed.status_code == 200
    assert signed.json() == {"status": "accepted"}

    (purchase,) = _events_with(dev_stack, "cs_live_a1QaDemoAdaOneTimeUsd0001")
    assert purchase["event"] == "Purchase Completed"
    assert purchase["properties"]["Revenue"] == 49
    assert purchase["properties"]["Currency"] == "USD"
    assert purchase["properties"]["distinct_id"] == "user_1001"
    assert purchase["properties"]["Purchase Type"] == "one_time"

    with sqlite3.connect(dev_stack.state / "mixpanel.sqlite") as db:
        rows = db.execute("SELECT event, properties FROM events").fetchall()
    orders = [json.loads(properties).get("Order ID") for _, properties in rows]
    assert "cs_live_b1QbDemoHarukiJpy00001" not in orders  # the forged one never reached the queue
    assert orders.count("cs_live_a1QaDemoAdaOneTimeUsd0001") == 1

    profiles = requests.get(f"{dev_stack.mixpanel}/api/profiles", timeout=5).json()["profiles"]
    ada = next(p for p in profiles if p["distinct_id"] == "user_1001")
    assert ada["properties"]["Purchase Count"] == 1
    assert ada["properties"]["Lifetime Revenue USD"] == 49

    console = dev_stack.output()
    assert "stripe checkout.session.completed evt_1QbDemoCheckoutJpy0001: 400 signature verification failed" in console
    assert "stripe checkout.session.completed evt_1QaDemoCheckoutUsd0001: 200 received, enqueued" in console
    assert "evt_1QaDemoCheckoutUsd0001: delivered to Mixpanel: Purchase Completed" in console


def test_a_binary_content_type_arrives_base64_and_still_verifies(dev_stack: DevStack) -> None:
    # API Gateway base64-encodes every body that is not text/*, JSON, XML or JavaScript.
    response = _post_sample(
        dev_stack, "checkout.session.completed.jpy", STRIPE_SECRET, **{"content-type": "application/octet-stream"}
    )
    assert response.status_code == 200
    (purchase,) = _events_with(dev_stack, "cs_live_b1QbDemoHarukiJpy00001")
    assert purchase["properties"]["Revenue"] == 3000
    assert purchase["properties"]["Currency"] == "JPY"


def test_other_paths_are_404_and_the_dead_letter_queue_is_shown_on_the_page(dev_stack: DevStack) -> None:
    assert requests.post(f"{dev_stack.api}/webhooks", data=b"{}", timeout=5).status_code == 404
    assert requests.get(f"{dev_stack.api}/webhooks/stripe", timeout=5).json() == {"message": "Not Found"}
    assert requests.get(f"{dev_stack.mixpanel}/api/dead-letters", timeout=5).json() == {
        "connected": True,
        "items": [],
    }


def test_ctrl_c_stops_everything_it_started(dev_stack: DevStack) -> None:
    assert _stop(dev_stack.process) == 0
    assert "Stopped." in dev_stack.output()
    assert not (dev_stack.state / local_stack.FILE_NAME).exists()  # the tools no longer find it
    for url in (dev_stack.api, dev_stack.mixpanel):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)


# ---- the API Gateway adapter, in this process ----------------------------------------------------------


def test_http_api_events_have_payload_2_0_shape_and_api_gateways_base64_rule() -> None:
    seen: list[dict[str, Any]] = []
    api = HttpApi(
        {Route("POST", "/webhooks/{provider}"): lambda event: seen.append(event) or {"statusCode": 202, "body": "ok"}},
        max_payload_bytes=1024,
    ).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
        connection.putrequest("POST", "/webhooks/paddle?a=1&a=2")
        for name, value in [("Content-Type", "text/plain"), ("X-Dup", "one"), ("X-Dup", "two"), ("Cookie", "k=v; j=w")]:
            connection.putheader(name, value)
        connection.putheader("Content-Length", "5")
        connection.endheaders(b"caf\xc3\xa9")
        answer = connection.getresponse()
        response = (answer.status, answer.read().decode())
        connection.close()
        binary = requests.post(f"{api.url}/webhooks/paddle", data=b"a=1", timeout=5)  # no content type
        too_large = requests.post(f"{api.url}/webhooks/paddle", data=b"x" * 1025, timeout=5)
    finally:
        api.stop()
    assert response == (202, "ok") and binary.status_code == 202
    event = seen[0]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/{provider}"
    assert event["rawPath"] == "/webhooks/paddle"
    assert event["rawQueryString"] == "a=1&a=2"
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["pathParameters"] == {"provider": "paddle"}
    assert event["headers"]["x-dup"] == "one,two"
    assert event["cookies"] == ["k=v", "j=w"]
    assert "cookie" not in event["headers"]
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert isinstance(event["requestContext"]["timeEpoch"], int)
    assert (event["body"], event["isBase64Encoded"]) == ("café", False)
    assert (seen[1]["body"], seen[1]["isBase64Encoded"]) == ("YT0x", True)
    assert too_large.status_code == 413 and len(seen) == 2


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain", True),
        ("application/xml", True),
        ("application/javascript", True),
        ("application/x-www-form-urlencoded", False),
        ("application/octet-stream", False),
        (None, False),
    ],
)
def test_which_bodies_api_gateway_passes_as_text(content_type: str | None, text: bool) -> None:
    assert is_text(content_type) is text


# ---- the resources, in this process --------------------------------------------------------------------


def _in_process_stack(tmp_path: Path, template_path: Path = TEMPLATE) -> LocalStack:
    options = Options(
        port=0,
        mixpanel_port=0,
        state_dir=tmp_path,
        template_path=template_path,
        stack_name=f"t{uuid.uuid4().hex[:10]}",  # moto's state is shared by every server in one process
        persist_secrets=False,
    )
    return LocalStack(options, out=io.StringIO())


def test_the_stacks_queues_and_table_are_the_templates(tmp_path: Path) -> None:
    template = Template()
    with _in_process_stack(tmp_path) as stack:
        resolve = stack.resources.resolver
        for logical_id in template.of_type("AWS::SQS::Queue"):
            props = template.properties(logical_id)
            url = stack.resources.queue_url(logical_id)
            attributes = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            for name in ("VisibilityTimeout", "MessageRetentionPeriod"):
                if name in props:
                    assert attributes[name] == str(resolve(props[name])), (logical_id, name)
            if "RedrivePolicy" in props:
                policy = json.loads(attributes["RedrivePolicy"])
                target = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                assert policy["deadLetterTargetArn"] == stack.resources.attributes[(target, "Arn")]
                assert int(policy["maxReceiveCount"]) == int(template.parameters["MaxReceiveCount"])
        assert stack.queue_attributes["VisibilityTimeout"] == "390"
        assert stack.dead_letter_queue == "EventsDeadLetterQueue"

        import boto3

        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=stack.moto.endpoint,  # type: ignore[union-attr]
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        for logical_id in template.of_type("AWS::DynamoDB::Table"):
            table = dynamodb.describe_table(TableName=stack.resources.refs[logical_id])["Table"]
            props = template.properties(logical_id)
            assert table["KeySchema"] == props["KeySchema"]
            assert table["AttributeDefinitions"] == props["AttributeDefinitions"]

        source = template.sqs_event_source("ForwarderFunction", resolve)
        assert (stack.esm.batch_size, stack.esm.batching_window_s) == (source.batch_size, source.batching_window_s)
        assert stack.esm.report_batch_item_failures is True


def test_changing_a_queue_setting_in_the_template_changes_the_local_stack(tmp_path: Path) -> None:
    text = TEMPLATE.read_text()
    changed = text.replace("VisibilityTimeout: 390", "VisibilityTimeout: 420").replace(
        "MessageRetentionPeriod: 1209600\n      SqsManagedSseEnabled: true\n      RedrivePolicy",
        "MessageRetentionPeriod: 345600\n      SqsManagedSseEnabled: true\n      RedrivePolicy",
    )
    changed = changed.replace(
        "  MaxReceiveCount:\n    Type: Number\n    Default: 5", "  MaxReceiveCount:\n    Type: Number\n    Default: 7"
    ).replace(
        "  ForwarderBatchingWindowSeconds:\n    Type: Number\n    Default: 10",
        "  ForwarderBatchingWindowSeconds:\n    Type: Number\n    Default: 12",
    )
    # EventsQueue and the test lane's EventsTestQueue share the settings.
    assert changed.count("420") == 2 and "Default: 7" in changed and "Default: 12" in changed
    path = tmp_path / "template.yaml"
    path.write_text(changed)
    with _in_process_stack(tmp_path, path) as stack:
        for esm in stack.esms:
            attributes = stack.sqs.get_queue_attributes(QueueUrl=esm.queue_url, AttributeNames=["All"])["Attributes"]
            assert attributes["VisibilityTimeout"] == "420"
        assert attributes["MessageRetentionPeriod"] == "345600"
        assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] in (7, "7")
        assert stack.esm.batching_window_s == 12
        assert stack.forwarder_environment["MAX_RECEIVE_COUNT"] == "7"
