"""What every operator command reads the same way: counts, and where a route's signing secret is given."""

from __future__ import annotations

import argparse


def positive_int(value: str) -> int:
    """An argparse type for counts: 1 or more."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def secret_variable(route: str) -> str:
    """Where a route's signing secret is given to the tools: STRIPE_WEBHOOK_SECRET, DEMO_BILLING_WEBHOOK_SECRET..."""
    return route.upper().replace("-", "_") + "_WEBHOOK_SECRET"
