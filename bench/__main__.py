"""`python -m bench [--smoke] [--suite NAME ...] [--out DIR]`: run the benchmarks, print tables, write JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .common import RESULTS, log, write_result

SUITES = ("batch_size", "cold", "receiver", "forwarder", "cost", "backfill")


def _template_batch_size() -> int:
    """The forwarder's BatchSize default in template.yaml (what a deployment gets)."""
    from devstack.template import Template

    return int(Template().parameters["ForwarderBatchSize"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts: checks the harness, not the figures")
    parser.add_argument("--suite", action="append", choices=SUITES, help="run only these suites (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON results go (default bench/results)")
    parser.add_argument("--reuse-builds", action="store_true", help="take .aws-sam/bench/ builds from a previous run")
    args = parser.parse_args(argv)
    suites = args.suite or list(SUITES)
    smoke = args.smoke
    started = time.monotonic()
    outputs: dict[str, dict[str, Any]] = {}
    batch_size = _template_batch_size()

    if "batch_size" in suites:
        from . import batch_size as suite

        outputs["batch_size"] = suite.run(batch_size=batch_size)
    if "cold" in suites:
        from . import cold

        outputs["cold"] = cold.run(runs=1 if smoke else 9, reuse_builds=args.reuse_builds)
    if "receiver" in suites:
        from . import receiver_cpu

        outputs["receiver"] = receiver_cpu.run(requests_per_size=3 if smoke else 200, rounds=1 if smoke else 7)
    if "forwarder" in suites:
        from . import batch_size as fit
        from . import forwarder_throughput

        if smoke:
            outputs["forwarder"] = forwarder_throughput.run(
                events=20, batch_size=10, latencies_ms=[0, 50], memory_batches=[5]
            )
        else:
            mix = fit.run(batch_size=batch_size)["results"][-1]["ours"]["messages_per_invocation_at_batch_size"]
            outputs["forwarder"] = forwarder_throughput.run(
                events=4 * mix, batch_size=mix, latencies_ms=[0, 50], memory_batches=[10, 100, 1000, mix]
            )
    if "backfill" in suites:
        from . import backfill_throughput

        if smoke:
            outputs["backfill"] = backfill_throughput.run(objects=300, forwarder_objects=40, batch_size=20, live=False)
        else:
            outputs["backfill"] = backfill_throughput.run(
                objects=6000, forwarder_objects=4000, batch_size=batch_size, live=True
            )
    if "cost" in suites:
        from . import cost

        outputs["cost"] = cost.run(args.out, smoke=smoke, fresh=outputs)

    for name, payload in outputs.items():
        path = write_result(name, payload, smoke=smoke, out_dir=args.out)
        print(f"\n## {name}  ({path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path})\n")
        print(payload.get("method", ""))
        print()
        print(payload["table"])
        for extra in ("phases_table", "memory_table"):
            if payload.get(extra):
                print()
                print(payload[extra])
    targets = {f"{suite}.{name}": t for suite, p in outputs.items() for name, t in (p.get("targets") or {}).items()}
    if targets:
        print("\n## targets\n")
        for name, target in targets.items():
            value = target["value"]
            shown = f"{value:.3g}" if isinstance(value, float) else value
            print(f"- {name}: {shown} (target {target['target']}): {'met' if target['met'] else 'NOT met'}")
    log(f"bench: done in {time.monotonic() - started:.0f} s")
    json.dumps(targets, default=str)  # the targets are JSON-serializable, as the result files are
    return 0


if __name__ == "__main__":
    sys.exit(main())
