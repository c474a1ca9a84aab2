"""`revenue-webhooks backfill`: Stripe's history (ops/backfill.py), or Apple's with `--provider appstore`
(ops/appstore_backfill.py). Each owns its flags: `revenue-webhooks backfill [--provider appstore] --help`."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from . import appstore_backfill, backfill


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    choice = argparse.ArgumentParser(add_help=False)
    choice.add_argument("--provider", choices=backfill.PROVIDERS, default=backfill.PROVIDER)
    chosen, _ = choice.parse_known_args(given)
    if chosen.provider == appstore_backfill.PROVIDER:
        return appstore_backfill.main(given, out=out)
    return backfill.main(given, out=out)


if __name__ == "__main__":
    raise SystemExit(main())
