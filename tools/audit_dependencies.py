"""`make security`'s pip-audit step, saying what was audited: "not audited: <why>" when no vulnerability database answered.

pip-audit prints "No known vulnerabilities found" and exits 0 even when it audited nothing: when PyPI's
JSON API answers 404 for every package (a mirror or proxy standing in for pypi.org), each package is
merely skipped. When the database cannot be reached at all, it stops with a ConnectionError traceback.
This runs pip-audit with its JSON report and says which case it was:

  vulnerabilities found   each one with its fix, exit 1 (CI fails)
  audited, none known     "audited N packages ...: no known vulnerabilities", exit 0
  no database answered    "not audited: <why>", exit 0: an unreachable database is no finding, and is said so

Packages skipped for a reason of their own are listed as not audited; the rest count as audited.
Usage: python tools/audit_dependencies.py --what "the layer's pins" -- <pip-audit arguments>
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOT_ON_PYPI = "Dependency not found on PyPI"
EDITABLE = "distribution marked as editable"  # the skip reason of --skip-editable  # pip-audit's skip reason when PyPI's JSON API answers 404
# What pip-audit's traceback ends with when the vulnerability service could not be reached or failed.
_UNREACHABLE = re.compile(
    r"requests\.exceptions\.(ConnectionError|ConnectTimeout|ReadTimeout|Timeout|SSLError|ProxyError)"
    r"|pip_audit\._service\.interface\.(ServiceError|ConnectionError)"
)
_HOST = re.compile(r"host='([^']+)', port=(\d+)")
_HTTP_ERROR = re.compile(r"HTTPError: (\d{3} [^\n]*?) for url: (\S+)")
_CAUSE = re.compile(
    r"(Failed to resolve '[^']+'|Connection refused|timed out|Name or service not known|\d{3} Server Error)"
)


@dataclass
class Verdict:
    exit_code: int
    lines: list[str] = field(default_factory=list)


def verdict(what: str, returncode: int, report: str | None, stderr: str) -> Verdict:
    """What pip-audit's exit status, JSON report and stderr say, in one honest sentence (and the findings)."""
    if not report:
        if _UNREACHABLE.search(stderr):
            return Verdict(0, [f"pip-audit, {what}: not audited: {_unreachable_why(stderr)}"])
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        return Verdict(returncode or 1, [f"pip-audit, {what}: failed (exit {returncode}):", tail])
    dependencies: list[dict[str, Any]] = [
        d for d in json.loads(report).get("dependencies", []) if EDITABLE not in str(d.get("skip_reason", ""))
    ]  # --skip-editable: the project itself, left out on purpose
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = [d for d in dependencies if not d.get("skip_reason")]
    vulnerable = [d for d in audited if d.get("vulns")]
    lines: list[str] = []
    if not dependencies:
        return Verdict(0, [f"pip-audit, {what}: nothing to audit"])
    if not audited:
        if all(str(d["skip_reason"]).startswith(NOT_ON_PYPI) for d in skipped):
            why = (
                f"PyPI's vulnerability API knew none of the {len(skipped)} packages (it answered 404 for each, "
                "as a mirror or proxy standing in for pypi.org does), so no vulnerability database was consulted"
            )
        else:
            why = "; ".join(sorted({str(d["skip_reason"]) for d in skipped}))
        return Verdict(0, [f"pip-audit, {what}: not audited: {why}"])
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            aliases = f" ({', '.join(vuln['aliases'])})" if vuln.get("aliases") else ""
            lines.append(
                f"  {dependency['name']} {dependency.get('version', '')}: {vuln['id']}{aliases}, fixed in {fixes}"
            )
    for dependency in skipped:
        lines.append(f"  not audited: {dependency['name']}: {dependency['skip_reason']}")
    count = f"{len(audited)} of {len(dependencies)} packages" if skipped else f"{len(audited)} packages"
    if returncode != (1 if vulnerable else 0):  # pip-audit exits 1 for findings only
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        return Verdict(returncode or 1, [f"pip-audit, {what}: failed (exit {returncode}):", tail])
    if vulnerable:
        found = sum(len(d["vulns"]) for d in vulnerable)
        return Verdict(1, [f"pip-audit, {what}: {found} known vulnerabilities in {count} audited:", *lines])
    return Verdict(0, [f"pip-audit, {what}: audited {count}: no known vulnerabilities", *lines])


def _unreachable_why(stderr: str) -> str:
    failed = _HTTP_ERROR.search(stderr)
    if failed:  # reached, but it answered with an error
        return f"the vulnerability database at {failed.group(2)} answered {failed.group(1)}"
    last = next((line for line in reversed(stderr.strip().splitlines()) if _UNREACHABLE.search(line)), "")
    host = _HOST.search(last)
    cause = _CAUSE.search(last)
    where = f"{host.group(1)}:{host.group(2)}" if host else "the vulnerability database"
    return f"could not reach {where} ({cause.group(1) if cause else last.split(':', 1)[0].rsplit('.', 1)[-1]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--what", required=True, help="what is audited, for the report line")
    parser.add_argument("pip_audit_args", nargs=argparse.REMAINDER, help="after --: pip-audit's own arguments")
    args = parser.parse_args(argv)
    extra = args.pip_audit_args[1:] if args.pip_audit_args[:1] == ["--"] else args.pip_audit_args
    with tempfile.TemporaryDirectory(prefix="pip-audit-") as folder:
        report_path = Path(folder) / "report.json"
        command = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--format", "json"]
        done = subprocess.run(  # noqa: S603 - this interpreter's pip-audit, with the caller's arguments
            [*command, "--output", str(report_path), *extra], capture_output=True, text=True, check=False
        )
        report = report_path.read_text() if report_path.is_file() else None
    result = verdict(args.what, done.returncode, report or None, done.stderr)
    print("\n".join(result.lines), file=sys.stdout if result.exit_code == 0 else sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
