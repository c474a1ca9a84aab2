"""`python -m devstack.mixpanel --port 3001 --db PATH`: the local Mixpanel alone, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from . import __doc__ as package_doc
from .auth import DEMO_CREDENTIALS, Credentials
from .server import MixpanelServer

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; the page is at the printed URL."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.mixpanel", description=(package_doc or "").splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--db", default=":memory:", help="SQLite file that keeps what arrived across restarts")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every ingestion request")
    parser.add_argument("--project-id", default=DEMO_CREDENTIALS.project_id)
    parser.add_argument("--username", default=DEMO_CREDENTIALS.username, help="service account username")
    parser.add_argument("--secret", default=DEMO_CREDENTIALS.secret, help="service account secret")
    parser.add_argument("--token", default=DEMO_CREDENTIALS.project_token, help="project token")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    credentials = Credentials(args.project_id, args.username, args.secret, args.token)
    server = MixpanelServer(args.host, args.port, args.db, credentials, latency_s=args.latency)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with server:
        log.info(
            "local Mixpanel at %s (page: %s/), project_id=%s, db=%s", server.url, server.url, args.project_id, args.db
        )
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
