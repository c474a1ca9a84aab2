"""`make dev SAM_LOCAL=1`'s --env-vars file and printed commands (devstack.sam_env), and the bridge guard (devstack.bridge).

The file only works if it names variables the template declares (sam local ignores the others) and
moves every local URL to the container's address; `make sam-local-test` runs it with Docker.
"""

from __future__ import annotations

import sys

import pytest

from devstack.bridge import BridgeError, container_route
from devstack.sam_env import SamCommands, env_vars
from devstack.template import Template

MOTO = "http://127.0.0.1:5005"
MIXPANEL = "http://127.0.0.1:3001"


def test_env_file_holds_only_declared_variables_with_local_urls_moved_to_the_bridge() -> None:
    template = Template()
    environments = {
        "ReceiverFunction": {
            "EVENTS_QUEUE_URL": f"{MOTO}/123456789012/local-EventsQueue",
            "AWS_ENDPOINT_URL": MOTO,
            "MODE": "any",
            "AWS_ACCESS_KEY_ID": "local",  # not declared: sam local would ignore it, so the file leaves it out
        },
        "ForwarderFunction": {
            "AWS_ENDPOINT_URL": MOTO,
            "MIXPANEL_API_URL": MIXPANEL,
            "LEDGER_TABLE": "local-LedgerTable",
            "DEAD_LETTER_QUEUE_URL": "http://127.0.0.1:50051/123456789012/other",  # another port: not moto's
        },
    }
    moved = {MOTO: "http://172.17.0.1:5005", MIXPANEL: "http://172.17.0.1:3001"}

    document = env_vars(template, environments, moved)

    assert document["ReceiverFunction"] == {
        "EVENTS_QUEUE_URL": "http://172.17.0.1:5005/123456789012/local-EventsQueue",
        "AWS_ENDPOINT_URL": "http://172.17.0.1:5005",
        "MODE": "any",
    }
    assert document["ForwarderFunction"] == {
        "AWS_ENDPOINT_URL": "http://172.17.0.1:5005",
        "MIXPANEL_API_URL": "http://172.17.0.1:3001",
        "LEDGER_TABLE": "local-LedgerTable",
        "DEAD_LETTER_QUEUE_URL": "http://127.0.0.1:50051/123456789012/other",
    }
    for function, variables in document.items():
        assert set(variables) <= set(template.variables(function))


def test_commands_override_the_architecture_only_when_it_is_not_the_templates_default() -> None:
    template = Template()
    parameter = template.doc["Parameters"]["Architecture"]
    native = SamCommands(".devstack/sam-env.json", "us-east-1", "x86_64", port=3002)
    assert native.build() == ["make", "build", "ARCHITECTURE=x86_64"]
    start = native.start_api()
    assert start[start.index("--parameter-overrides") + 1] == "Architecture=x86_64"
    assert "x86_64" in parameter["AllowedValues"]
    assert start[start.index("--env-vars") + 1] == ".devstack/sam-env.json" and "--region" in start

    default = SamCommands(".devstack/sam-env.json", "us-east-1", parameter["Default"])
    assert default.build() == ["make", "build"]
    assert "--parameter-overrides" not in default.invoke("ForwarderFunction", "events/sqs/x.json")


def test_lines_sign_the_receivers_event_with_the_stacks_secret() -> None:
    lines = SamCommands(".devstack/sam-env.json", "us-east-1", "arm64").lines("whsec_abc")
    assert "STRIPE_WEBHOOK_SECRET=whsec_abc make -s event > .devstack/event.json" in lines
    assert any(line.startswith("sam local invoke ReceiverFunction -e .devstack/event.json") for line in lines)


@pytest.mark.skipif(sys.platform != "linux", reason="Linux bridges only")
def test_only_a_bridge_is_listened_on() -> None:
    # The loopback device is no bridge: a typo must not put moto on some other interface.
    with pytest.raises(BridgeError, match="lo is not a bridge"):
        container_route({"DOCKER_BRIDGE": "lo"})
