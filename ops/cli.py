"""`revenue-webhooks <command>`: the operator tools for a deployed stack.

revenue-webhooks redrive    list dead letters by reason, move them back to EventsQueue (ops/redrive.py)
revenue-webhooks replay     post stored provider events, signed, to a webhook URL (ops/replay.py)
revenue-webhooks backfill   enqueue Stripe's (or, --provider appstore, Apple's) history as the webhooks it sent (ops/backfill_command.py)
revenue-webhooks reconcile  Stripe's payments, the ledger's and Mixpanel's, per currency and per object (ops/reconcile.py)

Each command owns its flags: `revenue-webhooks <command> --help`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

COMMANDS = {
    "redrive": "ops.redrive",
    "replay": "ops.replay",
    "backfill": "ops.backfill_command",
    "reconcile": "ops.reconcile",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        known = ", ".join(COMMANDS)
        print(__doc__ or "", file=sys.stdout if args and args[0] in ("-h", "--help") else sys.stderr)
        if args and args[0] not in ("-h", "--help"):
            print(f"revenue-webhooks: unknown command {args[0]!r}; the commands are {known}", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[args[0]])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
