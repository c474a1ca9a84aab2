"""Received requests are checked against Mixpanel's own OpenAPI spec, a verbatim copy."""

from __future__ import annotations

import hashlib
from pathlib import Path

from local_mixpanel_calls import NOW, TOKEN, event, post_engage, post_import, update

from devstack.mixpanel import SPEC_PATH, MixpanelServer


def test_the_spec_is_the_verbatim_copy_of_mixpanels() -> None:
    reference = Path(__file__).parents[2] / "fixtures" / "mixpanel" / "ingestion.openapi.yaml"
    digest = hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(reference.read_bytes()).hexdigest()
    assert digest == "0d1193e7fa0b1af4b5e70af8cacaf555ebbf3edd4051088d8db0f67aa5c0a95c"


def test_well_formed_requests_have_no_spec_violations(server: MixpanelServer) -> None:
    post_import(server, [event("a1")], compress=True)
    post_import(server, [event("a2")], ndjson=True)
    post_import(server, [event("a3")], auth=TOKEN, params={"strict": "1"})  # documented: no project_id with a token
    post_engage(
        server,
        [
            update(**{op: value})
            for op, value in [
                ("$set", {"a": 1}),
                ("$set_once", {"b": 1}),
                ("$add", {"n": 1}),
                ("$union", {"l": ["x"]}),
                ("$append", {"m": "y"}),
                ("$remove", {"l": "x"}),
                ("$unset", ["b"]),
                ("$delete", None),
            ]
        ],
        params={"verbose": "2", "ip": "0"},
    )
    assert server.spec_violations() == []


def test_spec_check_catches_a_request_mixpanels_spec_does_not_allow(server: MixpanelServer) -> None:
    bad = event(time=NOW + 0.5)  # the spec says integer
    bad["extra"] = True  # the spec allows only event and properties
    post_import(server, [bad], params={"project_id": "1"})  # and strict is required
    post_engage(server, [update(**{"$add": {"n": "1"}})], params={"verbose": "1", "ip": "2"})
    found = {(v["path"], v["operation"], v["where"]) for v in server.spec_violations()}
    assert found == {
        ("/import", "import-events", "query.strict"),
        ("/import", "import-events", "body[0].properties.time"),
        ("/import", "import-events", "body[0]"),
        ("/engage", "profile-batch-update", "query.ip"),
        ("/engage", "profile-numerical-add", "body[0].$add.n"),
    }


def test_spec_check_can_be_turned_off_for_benchmarks() -> None:
    with MixpanelServer(validate_spec=False) as mixpanel:
        post_import(mixpanel, [event()], params={"project_id": "1"})
        assert mixpanel.spec_violations() == []
