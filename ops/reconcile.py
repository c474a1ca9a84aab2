"""Does Mixpanel agree with Stripe? Per currency, Stripe's gross payments, refunds and net for a period, the
ledger's and Mixpanel's; then every difference by object id, with the command that repairs it.

Stripe's side is read from its list endpoints (the backfill's parallel reader), Mixpanel's from its Raw Event
Export API with the service account (deduplicated as Mixpanel deduplicates), the ledger's by key
(revenue_webhooks/service/reconcile.py says how each payment is matched and which period it belongs to).

Exit status: 0 all agree, 1 differences, 2 usage or configuration error (the message says what to set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from revenue_webhooks.domain.money import Money
from revenue_webhooks.service.reconcile import Report

from .arguments import positive_int
from .targets import Deployment, UsageError, day_after, iso, moment

EXIT_AGREE, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="revenue-webhooks reconcile",
        description="Stripe's payments and refunds for a period against the ledger's and Mixpanel's, per currency "
        "and per object, with the command that repairs each difference.",
        epilog="Stripe: STRIPE_API_KEY (and STRIPE_API_BASE). Mixpanel: MIXPANEL_PROJECT_ID, "
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME, MIXPANEL_SERVICE_ACCOUNT_SECRET (or --stack: its MixpanelCredentials), "
        "MIXPANEL_REGION (US, EU, IN) or MIXPANEL_EXPORT_URL. Exit status: 0 all agree, 1 differences, 2 usage "
        "or configuration error.",
    )
    p.add_argument("--since", type=moment, required=True, help="first day (YYYY-MM-DD, UTC) or time (ISO 8601)")
    p.add_argument("--until", required=True, help="last day, inclusive (YYYY-MM-DD), or an ISO 8601 time")
    p.add_argument("--json", action="store_true", help="print one JSON object (with a `differences` list)")
    p.add_argument("--concurrency", type=positive_int, default=8, help="Stripe reading threads (default 8)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one Stripe answer (default 30)")
    p.add_argument(
        "--rate", type=float, help="Stripe requests per second (default 80%% of Stripe's read limit: 80 live, 20 test)"
    )
    where = p.add_argument_group("the deployment (flags, else --stack outputs, else the environment)")
    where.add_argument("--stack", help="CloudFormation stack name: reads LedgerTableName and MixpanelCredentials")
    where.add_argument("--ledger-table", help="the ledger (else LedgerTableName or LEDGER_TABLE; none: not compared)")
    where.add_argument(
        "--lane",
        choices=("live", "test"),
        help="test: a test-mode key's test project and ledger namespace, when the stack has a test lane "
        "(Mode=any, TestEventsTo=test-project; MIXPANEL_TEST_* or MixpanelTestCredentials); default: from the key",
    )
    return p


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    """`revenue-webhooks reconcile` and `make reconcile ARGS=...`."""
    stream = out or sys.stdout
    args = parser().parse_args(argv)  # a usage error exits 2, as argparse does
    try:
        report = run(args)
    except UsageError as error:
        print(f"reconcile: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.as_json(), indent=2), file=stream)
    else:
        print(render(report), file=stream)
    return EXIT_AGREE if report.agree else EXIT_DIFFERENT


def run(args: argparse.Namespace) -> Report:
    """The report for the period the flags name (raises UsageError on what the user must set)."""
    import boto3
    import stripe
    from botocore.exceptions import BotoCoreError, ClientError
    from revenue_webhooks.adapters.dynamodb_ledger import DynamoDbLedger
    from revenue_webhooks.adapters.stripe_reader import RateLimiter, StripeReader, default_rate, read_all, stripe_client
    from revenue_webhooks.config import ConfigError, from_environ
    from revenue_webhooks.mixpanel.client import Credentials
    from revenue_webhooks.mixpanel.export import ExportClient, ExportError, day, export_base_url
    from revenue_webhooks.providers import get_provider
    from revenue_webhooks.service.reconcile import KINDS, Reconciler

    since, until = int(args.since), day_after(args.until)
    if until <= since:
        raise UsageError(f"--until {iso(until)} is not after --since {iso(since)}")
    if args.rate is not None and args.rate <= 0:
        raise UsageError("--rate must be above 0")
    try:
        settings = from_environ(os.environ)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    deployment = Deployment.find(args)
    key, base = deployment.stripe()
    lane = deployment.lane(key, args.lane)
    try:
        credentials = Credentials.from_secret(deployment.mixpanel_credentials(lane))
    except ValueError as error:
        raise UsageError(f"Mixpanel credentials: {error}") from None
    if not credentials.uses_service_account:
        raise UsageError("the Export API needs a service account: project_id, username and secret, not only a token")
    exporter = ExportClient(export_base_url(settings, os.environ.get("MIXPANEL_EXPORT_URL", "")), credentials)
    table = deployment.value(args.ledger_table, "LedgerTableName", "LEDGER_TABLE")
    reader = StripeReader(
        stripe_client(key, base, timeout_s=args.timeout),
        RateLimiter(args.rate or default_rate(key)),
        concurrency=args.concurrency,
    )
    reconciler = Reconciler(
        settings,
        get_provider("stripe", settings),  # type: ignore[arg-type]
        lambda low, high: read_all(reader, KINDS, low, high),
        lambda low, high, names: exporter.events(day(low), day(high - 1), names),
        DynamoDbLedger(table, boto3.client("dynamodb"), namespace="" if lane == "live" else lane) if table else None,
    )
    try:
        return reconciler.run(since, until)
    except stripe.AuthenticationError as error:
        raise UsageError(f"Stripe refused STRIPE_API_KEY: {error.user_message or error}") from None
    except stripe.PermissionError as error:
        raise UsageError(f"the Stripe key may not read this: {error.user_message or error}") from None
    except ExportError as error:
        if error.status in (401, 403):
            raise UsageError(f"{error} (check the service account and MIXPANEL_REGION / MIXPANEL_EXPORT_URL)") from None
        raise
    except (stripe.StripeError, ClientError, BotoCoreError) as error:
        raise SystemExit(f"reconcile: {type(error).__name__}: {error}") from None


def render(report: Report) -> str:
    """The report as a table per currency, then the differences and the repair command."""
    lines = [f"Reconcile {iso(report.since)} to {iso(report.until)} (Stripe's payments by the time they were paid)", ""]
    header = ("Currency", "Source", "Gross", "Refunds", "Net", "Payments", "Refunds #")
    rows = []
    for currency, by_source in sorted(report.totals.items()):
        for index, (source, totals) in enumerate(by_source.items()):
            if source == "ledger" and not report.ledger_checked:
                continue
            rows.append(
                (
                    currency if index == 0 else "",
                    source.capitalize(),
                    _amount(totals.gross, currency),
                    _amount(totals.refunds, currency),
                    _amount(totals.net, currency),
                    str(totals.payments_count),
                    str(totals.refunds_count),
                )
            )
    lines += _columns(header, rows) if rows else ["  (no payments or refunds in the period)"]
    lines.append("")
    if report.agree:
        lines.append("All agree: no difference per currency or per object.")
    else:
        lines.append(f"Differences: {len(report.differences)}")
        diff_rows = [
            (
                d.object_id,
                d.kind,
                d.currency,
                _money(d.stripe),
                _money(d.ledger),
                _money(d.mixpanel),
                d.problem,
            )
            for d in report.differences
        ]
        lines += _columns(("Object", "Kind", "Currency", "Stripe", "Ledger", "Mixpanel", "Problem"), diff_rows)
        command = report.repair_command()
        if command:
            lines += ["", f"Repair: {command}"]
    lines += [f"Note: {note}" for note in report.notes]
    return "\n".join(lines)


def _amount(minor: int, currency: str) -> str:
    money = Money(minor, currency)
    return f"{money.major:,}"


def _money(money: Money | None) -> str:
    return "-" if money is None else f"{money.major:,}"


def _columns(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6} if header[0] == "Currency" else {3, 4, 5}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            (str(cell).rjust(widths[i]) if i in numeric else str(cell).ljust(widths[i])) for i, cell in enumerate(row)
        ]
        return "  " + "  ".join(cells).rstrip()

    return [line(header), "  " + "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


if __name__ == "__main__":
    raise SystemExit(main())
