"""`revenue-webhooks-dev <command>`: the local stack, the demo, signed sample events, and the operator tools.

revenue-webhooks-dev dev        the whole pipeline on 127.0.0.1 until Ctrl-C (PORT, MIXPANEL_PORT to change;
                                --sam-local or SAM_LOCAL=1: also for `sam local`'s containers, on docker's bridge)
revenue-webhooks-dev demo       the sample events through the local pipeline, then a table of what reached Mixpanel
revenue-webhooks-dev event      a freshly signed API Gateway event for `sam local invoke`
revenue-webhooks-dev redrive    the operator tools (ops/), as `revenue-webhooks redrive` runs them
revenue-webhooks-dev replay
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ops.cli import COMMANDS as DELEGATED


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in DELEGATED:  # they own their flags and --help
        return _delegate(args[0], args[1:])
    parser = argparse.ArgumentParser(
        prog="revenue-webhooks-dev",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[1:]),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    dev = commands.add_parser("dev", help="run the local stack until Ctrl-C")
    dev.add_argument("--verbose", action="store_true", help="also show the functions' JSON logs and metrics")
    dev.add_argument(
        "--sam-local",
        action="store_true",
        help="moto and the local Mixpanel also listen on docker's bridge (for `sam local`), "
        "and .devstack/sam-env.json is written for --env-vars (same as SAM_LOCAL=1)",
    )
    dev.add_argument("--template", type=Path, help="another template file (default: the repository's template.yaml)")
    dev.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a template parameter override, like sam deploy --parameter-overrides (repeatable)",
    )

    demo = commands.add_parser("demo", help="send every sample through the local pipeline and report")
    demo.add_argument("--timeout", type=float, default=50.0, help="seconds to wait for the queue to drain")

    event = commands.add_parser("event", help="a freshly signed API Gateway HTTP API event (payload 2.0)")
    from .events_cli import add_arguments

    add_arguments(event)
    for name in DELEGATED:
        commands.add_parser(name, help=f"see `revenue-webhooks-dev {name} --help`")

    parsed = parser.parse_args(args)
    if parsed.command == "dev":
        return dev_command(parsed)
    if parsed.command == "demo":
        from .demo import run

        return run(timeout_s=parsed.timeout)
    if parsed.command == "event":
        from .events_cli import run as run_event

        return run_event(parsed)
    return 2


def dev_command(args: argparse.Namespace) -> int:
    """Start, print the banner, stream one line per webhook, stop everything on Ctrl-C or SIGTERM."""
    from .stack import LocalStack, Options, StackError

    try:
        options = Options.from_environ(os.environ)
        options.verbose = args.verbose
        options.sam_local = options.sam_local or args.sam_local
        if args.template:
            options.template_path = args.template.resolve()
        for item in args.parameter:
            key, sep, value = item.partition("=")
            if not sep or not key:
                print(f"--parameter {item!r}: expected KEY=VALUE", file=sys.stderr)
                return 2
            options.parameters[key] = value
        out = sys.stdout  # the functions' own stdout goes to .devstack/functions.log while the stack runs
        stack = LocalStack(options, out=out)
        stopping = threading.Event()

        def stop_requested(*_: object) -> None:
            stopping.set()
            for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C ends the process at once
                signal.signal(signum, signal.SIG_DFL)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop_requested)
        stack.start()
    except StackError as error:
        print(f"make dev: {error}", file=sys.stderr)
        return 1
    from . import state_file

    try:
        print(stack.banner(), file=out, flush=True)
        state_file.publish(stack)  # how make event / replay / redrive find this stack
        print("Ready. Ctrl-C stops everything.", file=out, flush=True)
        while not stopping.wait(0.5):
            pass
        print("\nStopping...", file=out, flush=True)
    finally:
        state_file.withdraw(stack)
        stack.stop()
    print("Stopped.", flush=True)
    return 0


def _delegate(command: str, rest: list[str]) -> int:
    from ops.cli import main as ops_main

    return ops_main([command, *rest])


if __name__ == "__main__":
    raise SystemExit(main())
