"""What the README and the operator tools say about template.yaml is what template.yaml says.

The README's configuration table names every stack parameter with its default; the tools read stack
outputs and secrets by logical id. A parameter added, renamed or given another default fails here
until the README (or the tools) follow.
"""

from __future__ import annotations

import re

from revenue_webhooks.providers import specs

from devstack.template import ROOT, Template
from ops import deployed_stack

README = ROOT / "README.md"
NO_DEFAULT = "(none)"  # how the table shows an empty default


def configuration_table() -> dict[str, str]:
    """parameter -> default as the README's "Configuration" table shows them (`A` / `B` rows give two)."""
    text = README.read_text()
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        defaults = [NO_DEFAULT] if cells[1] == NO_DEFAULT else re.findall(r"`([^`]*)`", cells[1])
        assert len(names) == len(defaults), f"README row {line!r}: {len(names)} parameters, {len(defaults)} defaults"
        rows.update(zip(names, defaults, strict=True))
    return rows


def test_the_readme_table_names_every_parameter_with_the_templates_default() -> None:
    table = configuration_table()
    template = Template()
    declared = template.doc["Parameters"]
    assert sorted(table) == sorted(declared), "README's Configuration table and template.yaml's Parameters differ"
    for name, shown in table.items():
        default = str(declared[name].get("Default", ""))
        assert shown == (default or NO_DEFAULT), f"README says {name} defaults to {shown}; template.yaml: {default!r}"


def test_the_outputs_the_tools_read_are_the_templates() -> None:
    outputs = Template().doc["Outputs"]
    for key in (
        deployed_stack.OUTPUT_WEBHOOK_URL,
        deployed_stack.OUTPUT_QUEUE_URL,
        deployed_stack.OUTPUT_DEAD_LETTER_QUEUE_URL,
    ):
        assert key in outputs


def test_the_secrets_the_tools_read_are_the_ones_the_receiver_reads() -> None:
    template = Template()
    receiver = template.properties("ReceiverFunction")["Environment"]["Variables"]
    from revenue_webhooks.config import STANDARD_WEBHOOKS_SECRET_ENV

    assert receiver[STANDARD_WEBHOOKS_SECRET_ENV] == {"Ref": deployed_stack.STANDARD_WEBHOOKS_SECRETS_RESOURCE}
    for spec in specs().values():
        assert receiver[spec.signing.variable] == {"Ref": spec.signing.resource}
    for logical_id in [
        deployed_stack.STANDARD_WEBHOOKS_SECRETS_RESOURCE,
        *(s.signing.resource for s in specs().values()),
    ]:
        assert template.resources[logical_id]["Type"] == "AWS::SecretsManager::Secret"
