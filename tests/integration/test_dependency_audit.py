"""`make security`'s pip-audit step says "not audited" when no vulnerability database answered, never "no vulnerabilities".

The real pip-audit runs (`--no-deps --disable-pip` on a one-line requirements file, so nothing is
installed) against an OSV API stand-in on 127.0.0.1 through its `--osv-url`: a finding, a clean audit,
a refused connection and a failing service. The stand-in answers `POST /v1/query` in the shape of OSV's
API (https://google.github.io/osv.dev/post-v1-query/), the fields pip-audit reads. The PyPI-service case
(every package answered 404, as on a machine whose pypi.org is a mirror) is pip-audit's JSON report as
recorded on such a machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from json_server import JsonServer

from devstack.template import ROOT

TOOL = ROOT / "tools" / "audit_dependencies.py"
sys.path.insert(0, str(TOOL.parent))
import audit_dependencies  # noqa: E402 - tools/ is not a package

VULNERABILITY = {
    "schema_version": "1.6.0",
    "id": "PYSEC-2099-1",
    "aliases": ["CVE-2099-0001"],
    "summary": "a made-up vulnerability of the stand-in",
    "affected": [
        {
            "package": {"name": "requests", "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.99.0"}]}],
        }
    ],
}


class Osv:
    """OSV's query API on 127.0.0.1: answers each query from `vulns` (by package name), or with `status`."""

    def __init__(self) -> None:
        self.vulns: dict[str, list[dict[str, Any]]] = {}
        self.status = 200
        self.queries: list[dict[str, Any]] = []
        self._server = JsonServer(self.answer)
        self.url = f"{self._server.base_url}/v1/query"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        query = json.loads(body)
        self.queries.append(query)
        found = self.vulns.get(query["package"]["name"], [])
        return self.status, ({"vulns": found} if found else {})

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def osv() -> Iterator[Osv]:
    server = Osv()
    yield server
    server.close()


def audit(tmp_path: Path, osv_url: str) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests==2.34.2\n")
    return subprocess.run(
        [sys.executable, str(TOOL), "--what", "the pins", "--", "-r", str(requirements), "--no-deps", "--disable-pip"]
        + ["-s", "osv", "--osv-url", osv_url, "--cache-dir", str(tmp_path / "cache"), "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_known_vulnerability_fails_with_its_fix(osv: Osv, tmp_path: Path) -> None:
    osv.vulns["requests"] = [VULNERABILITY]
    done = audit(tmp_path, osv.url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 known vulnerabilities in 1 packages audited" in done.stderr
    assert "requests 2.34.2: PYSEC-2099-1 (CVE-2099-0001), fixed in 2.99.0" in done.stderr
    assert osv.queries == [{"package": {"name": "requests", "ecosystem": "PyPI"}, "version": "2.34.2"}]


def test_a_clean_audit_says_how_many_packages_were_audited(osv: Osv, tmp_path: Path) -> None:
    done = audit(tmp_path, osv.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "pip-audit, the pins: audited 1 packages: no known vulnerabilities"


def test_an_unreachable_database_is_not_audited_and_does_not_fail(osv: Osv, tmp_path: Path) -> None:
    url = osv.url
    osv.close()  # nothing listens there any more
    done = audit(tmp_path, url)
    assert done.returncode == 0, done.stdout + done.stderr
    port = url.split(":")[2].split("/")[0]
    assert (
        done.stdout.strip()
        == f"pip-audit, the pins: not audited: could not reach 127.0.0.1:{port} (Connection refused)"
    )
    assert "No known vulnerabilities" not in done.stdout + done.stderr


def test_a_failing_database_is_not_audited(osv: Osv, tmp_path: Path) -> None:
    osv.status = 503
    done = audit(tmp_path, osv.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == (
        f"pip-audit, the pins: not audited: the vulnerability database at {osv.url} answered 503 Server Error: "
        "Service Unavailable"
    )


def test_any_other_pip_audit_failure_fails(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), "--what", "the pins", "--", "-r", str(tmp_path / "missing.txt")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "pip-audit, the pins: failed" in done.stderr


# pip-audit 2.10's JSON report on a machine whose pypi.org answers 404 for every package (recorded).
EVERY_PACKAGE_404 = {
    "dependencies": [
        {"name": n, "skip_reason": f"Dependency not found on PyPI and could not be audited: {n} ({v})"}
        for n, v in (("requests", "2.34.2"), ("idna", "3.20"), ("urllib3", "2.8.0"))
    ],
    "fixes": [],
}


def test_every_package_unknown_to_pypi_is_not_audited() -> None:
    result = audit_dependencies.verdict("the pins", 0, json.dumps(EVERY_PACKAGE_404), "No known vulnerabilities found")
    assert result.exit_code == 0
    assert result.lines[0].startswith("pip-audit, the pins: not audited: PyPI's vulnerability API knew none of the 3")


def test_a_partial_audit_lists_what_was_not_audited() -> None:
    report = {
        "dependencies": [{"name": "stripe", "version": "16.1.0", "vulns": []}, EVERY_PACKAGE_404["dependencies"][0]]
    }
    result = audit_dependencies.verdict("the pins", 0, json.dumps(report), "")
    assert result.exit_code == 0
    assert result.lines[0] == "pip-audit, the pins: audited 1 of 2 packages: no known vulnerabilities"
    assert result.lines[1].startswith("  not audited: requests: Dependency not found on PyPI")
