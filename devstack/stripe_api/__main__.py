"""Serve a written history until Ctrl-C: `python -m devstack.stripe_api --months 13 [--port N] [--seed N]`.

Prints STRIPE_API_BASE and STRIPE_API_KEY for the tools to use this API instead of Stripe's.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time

from . import StripeAccount, StripeApiServer, write_history
from .account import MONTH_S


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.stripe_api", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--months", type=int, default=13, help="months of history ending now (default 13)")
    parser.add_argument("--customers", type=int, default=6)
    parser.add_argument("--payments-per-month", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--list-latency", type=float, default=0.0, help="seconds added to each list request")
    args = parser.parse_args(argv)
    account = StripeAccount(seed=args.seed)
    start = int(time.time()) - args.months * MONTH_S
    write_history(
        account,
        start=start,
        months=args.months,
        customers=args.customers,
        payments_per_month=args.payments_per_month,
        seed=args.seed,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with StripeApiServer(account, port=args.port, list_latency_s=args.list_latency) as api:
        for name, value in api.environment().items():
            print(f"{name}={value}", flush=True)
        print(f"{account.store.count()} objects, {len(account.events())} events; Ctrl-C stops", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
