"""`make demo`: every sample in `events/` through the local pipeline, then what reached Mixpanel.

The stack is the one `make dev` runs (template.yaml's queues, batching window and redrive policy,
the real handlers, the built-in Mixpanel), started in this process on free ports with a throwaway
state directory. Each sample is posted over HTTP with a fresh signature. Refund webhooks are sent
once the payments they refund are delivered, as they arrive days later in real life (a refund
that shares a batch with its payment would wait a whole visibility timeout for it). Nothing leaves
127.0.0.1; any failure ends the demo with a non-zero exit and the reason.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from . import first_day, local_stores
from .local_stripe import StripeOptions
from .samples import Sample, describe, samples
from .stack import LocalStack, Options, StackError

REQUEST_TIMEOUT_S = 15
WRONG_SIGNATURE = "(wrong signature)"


class DemoFailed(Exception):
    """A step of the demo went wrong; the message says which and why."""


@dataclass
class Sent:
    sample: Sample
    event_type: str
    status: int
    answer: dict[str, Any]


def run(timeout_s: float = 80.0) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="revenue-webhooks-demo-") as state:
        options = Options(
            port=0,
            mixpanel_port=0,
            state_dir=Path(state),
            persist_secrets=False,
            stripe=StripeOptions(port=0, history_end=first_day.history_end()),
        )
        out = sys.stdout  # the functions' own stdout goes to a log file while the stack runs
        try:
            stack = LocalStack(options, out=out).start()
        except StackError as error:
            print(f"make demo: the local stack did not start: {error}", file=sys.stderr)
            return 1
        failure: DemoFailed | None = None
        try:
            sent = _send_all(stack, timeout_s)
            table = report(stack, sent)
            reconciled, reconcile = first_day.run(stack, Path(state), lambda what: _settle(stack, what, timeout_s))
            if reconciled != 0:
                raise DemoFailed(f"reconcile found differences (exit status {reconciled}):\n{reconcile}")
        except (DemoFailed, RuntimeError) as error:
            failure = error if isinstance(error, DemoFailed) else DemoFailed(str(error))
        finally:
            stack.stop()
        if failure is not None:
            print(f"\nmake demo FAILED: {failure}", file=sys.stderr)
            _show_log_tail(stack)
            return 1
    print(f"\n{table}\n\n{reconcile}", file=out)
    print(
        f"\nmake demo: done in {time.monotonic() - started:.0f} s; everything it started has stopped, "
        "and nothing was sent beyond 127.0.0.1.",
        file=out,
    )
    return 0


def _settle(stack: LocalStack, what: str, timeout_s: float) -> None:
    if not stack.wait_settled(timeout_s):
        raise DemoFailed(f"the queue did not drain within {timeout_s:.0f} s after {what}")


def _show_log_tail(stack: LocalStack, lines: int = 20) -> None:
    """The functions' last log lines: why a step failed is usually there."""
    if stack.function_log and stack.function_log.is_file():
        tail = stack.function_log.read_text(errors="replace").splitlines()[-lines:]
        print("\nLast function log lines:\n" + "\n".join(tail), file=sys.stderr)


def _send_all(stack: LocalStack, timeout_s: float) -> list[Sent]:
    served = set(stack.providers)
    chosen = [s for s in samples() if s.route in served]
    skipped = sorted({s.route for s in samples()} - served)
    if skipped:
        stack.say(f"(samples of {', '.join(skipped)} skipped: no such route in this stack)")
    if not chosen:
        raise DemoFailed("no samples in events/<provider>/*.json")
    typed = [(sample, _event_type(stack, sample)) for sample in chosen]
    refunds = _refund_types(stack)
    first = [(s, t) for s, t in typed if (s.route, t) not in refunds]
    later = [(s, t) for s, t in typed if (s.route, t) in refunds]
    refunds_later = (
        f": {len(first)} now, then {_count(len(later), 'refund')} once the payments it refunds are delivered "
        "(in real life a refund comes days later)"
        if later
        else ""
    )
    stack.say(
        f"sending the {_count(len(chosen), 'sample webhook')} of events/ to {stack.api.url if stack.api else '?'}, "
        f"each freshly signed{refunds_later}; then one more with a wrong signature, which must be refused"
    )
    sent: list[Sent] = []
    deadline = time.monotonic() + timeout_s
    for wave in (first, later):
        if not wave:
            continue
        sent += [_post(stack, sample, event_type) for sample, event_type in wave]
        stack.say(
            f"waiting for the forwarder: like Lambda, the event source mapping gathers messages for its batching "
            f"window ({stack.source.batching_window_s:g} s, ForwarderBatchingWindowSeconds) before each run"
        )
        if not stack.wait_settled(max(0.0, deadline - time.monotonic())):
            raise DemoFailed(
                f"the queue did not drain within {timeout_s:.0f} s: {stack.tally.accepted} enqueued, "
                f"{stack.tally.delivered} delivered, {stack.tally.dead_lettered} dead-lettered, "
                f"{stack.tally.retried} retries pending"
            )
    _through_eventbridge(stack, chosen, deadline, timeout_s)
    checkout = [s for s in chosen if (s.route, s.name) == ("stripe", "checkout.session.completed")]
    sent.append(_bad_signature(stack, (checkout or chosen)[0]))
    return sent


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _through_eventbridge(stack: LocalStack, chosen: list[Sample], deadline: float, timeout_s: float) -> None:
    """Stripe's samples once more, through Stripe's EventBridge destination: already delivered by webhook,
    they must add nothing to Mixpanel (a team that sends both, or switches, counts nothing twice)."""
    from revenue_webhooks.providers.stripe import PRODUCES

    # The template's rule routes the mapped types only (others never leave the bus).
    stripe = [s for s in chosen if s.route == "stripe" and json.loads(s.body).get("type") in PRODUCES]
    if not stripe or stack.stripe_events is None or not stack.stripe_events.configured or stack.mixpanel is None:
        return
    before = len(stack.mixpanel.events())
    for sample in stripe:
        local_stores.send_to_eventbridge(stack, json.loads(sample.body))
    if not stack.wait_settled(max(0.0, deadline - time.monotonic())):
        raise DemoFailed(f"the Stripe events sent through EventBridge did not drain within {timeout_s:.0f} s")
    after = len(stack.mixpanel.events())
    if after != before:
        raise DemoFailed(f"Stripe events through EventBridge added {after - before} Mixpanel events to the webhooks'")
    stack.eventbridge_sent = len(stripe)


def _event_type(stack: LocalStack, sample: Sample) -> str:
    body, headers = local_stores.delivery(stack, sample)
    return describe(sample.route, body, headers, stack.receiver_settings)[0]


def _refund_types(stack: LocalStack) -> set[tuple[str, str]]:
    """(route, event type) pairs that can produce Refund Issued: the providers' tables and the senders' mapping."""
    from revenue_webhooks.domain import catalog as catalog
    from revenue_webhooks.providers import produced_by

    pairs = {(route, kind) for route, kinds in produced_by().get(catalog.REFUND_ISSUED, {}).items() for kind in kinds}
    mapping = json.loads(stack.template.parameters.get("StandardWebhooksMapping") or "{}")
    for sender, spec in mapping.items():
        for kind, rules in (spec.get("events") or {}).items():
            if any(
                rule.get("event") == catalog.REFUND_ISSUED for rule in (rules if isinstance(rules, list) else [rules])
            ):
                pairs.add((sender, kind))
    return pairs


def _post(stack: LocalStack, sample: Sample, event_type: str) -> Sent:
    assert stack.api is not None
    if sample.route not in stack.webhook_secrets:
        raise DemoFailed(f"no signing secret for route {sample.route}")
    url = f"{stack.api.url}/webhooks/{sample.route}"
    body, headers = local_stores.delivery(stack, sample)
    try:
        response = requests.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException as error:
        raise DemoFailed(f"POST {url} ({sample.path.name}): {error}") from None
    answer = _json(response)
    if response.status_code != 200:
        raise DemoFailed(
            f"the receiver answered {response.status_code} {answer or response.text[:200]} "
            f"to events/{sample.route}/{sample.path.name}"
        )
    return Sent(sample, event_type, response.status_code, answer)


def _bad_signature(stack: LocalStack, sample: Sample) -> Sent:
    """The same delivery signed with the wrong secret must be refused, and nothing enqueued."""
    assert stack.api is not None
    before = stack.tally.accepted
    url = f"{stack.api.url}/webhooks/{sample.route}"
    stack.say(f"sending events/{sample.route}/{sample.path.name} again, signed with a wrong secret")
    response = requests.post(url, data=sample.body, headers=sample.headers("not-the-secret"), timeout=REQUEST_TIMEOUT_S)
    if response.status_code != 400 or stack.tally.accepted != before:
        raise DemoFailed(f"a wrongly signed {sample.route} webhook was answered {response.status_code}, not 400")
    return Sent(sample, WRONG_SIGNATURE, response.status_code, _json(response))


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ---- the report ------------------------------------------------------------------------------


def report(stack: LocalStack, sent: list[Sent]) -> str:
    """The table: events by name, revenue by currency, profiles, then what was ignored, rejected, dead-lettered."""
    from revenue_webhooks.domain.money import exponent

    mixpanel = stack.mixpanel
    if mixpanel is None:
        raise DemoFailed("the demo needs the local Mixpanel")
    events = mixpanel.events()
    lines = [f"What reached Mixpanel (local project, {len(events)} events):", ""]
    counts = Counter(event["event"] for event in events)
    lines += _table(["Event", "Count"], [[name, str(count)] for name, count in sorted(counts.items())])

    totals: dict[str, dict[str, float]] = {}
    for row in mixpanel.revenue():
        entry = totals.setdefault(row["currency"], {"gross": 0.0, "refunds": 0.0, "net": 0.0, "events": 0})
        for key in entry:
            entry[key] += row[key]
    lines += ["", "Revenue by currency:", ""]
    lines += _table(
        ["Currency", "Gross", "Refunds", "Net", "Events"],
        [
            [
                currency,
                _amount(t["gross"], exponent(currency)),
                _amount(t["refunds"], exponent(currency)),
                _amount(t["net"], exponent(currency)),
                str(int(t["events"])),
            ]
            for currency, t in sorted(totals.items())
        ],
    )

    reporting = stack.template.parameters.get("ReportingCurrency", "")
    lines += _economics(events, reporting, stack.rates.description)

    profiles = mixpanel.profiles()
    lines += ["", f"Profiles ({len(profiles)}):", ""]
    rows = []
    for distinct_id, properties in sorted(profiles.items()):
        rows.append(
            [
                distinct_id,
                str(properties.get("Purchase Count", "")),
                str(properties.get("Refund Count", "")),
                _per_currency(properties, "Lifetime Revenue "),
                _per_currency(properties, "MRR "),
                _reporting(properties, "Lifetime Revenue", reporting),
                _reporting(properties, "MRR", reporting),
                str(properties.get("Plan", "")),
                str(properties.get("Subscription Status", "")),
            ]
        )
    header = ["Distinct ID", "Purchases", "Refunds", "Lifetime revenue", "MRR"]
    header += [f"Lifetime ({reporting})", f"MRR ({reporting})"] if reporting else ["", ""]
    lines += _table([*header, "Plan", "Subscription"], rows)

    companies = mixpanel.groups()
    lines += ["", f"Company profiles (Group Analytics, {len(companies)}):", ""]
    lines += _table(
        ["Company", "Purchases", "Refunds", "Lifetime revenue", "MRR", "Plan", "Seats", "Subscription"],
        [
            [
                f"{key}={group_id}",
                str(properties.get("Purchase Count", "")),
                str(properties.get("Refund Count", "")),
                _per_currency(properties, "Lifetime Revenue "),
                _per_currency(properties, "MRR "),
                str(properties.get("Plan", "")),
                str(properties.get("Seats", "")),
                str(properties.get("Subscription Status", "")),
            ]
            for (key, group_id), properties in sorted(companies.items())
        ],
    )
    for project in mixpanel.projects[1:]:
        routed = project.events()
        lines += ["", f"Test project (project {project.project_id}: test-mode webhooks, {len(routed)} events):", ""]
        lines += _table(
            ["Event", "Distinct ID", "Order ID", "Revenue"],
            [
                [
                    e["event"],
                    str(e["properties"].get("distinct_id", "")),
                    str(e["properties"].get("Order ID", "")),
                    f"{e['properties'].get('Currency', '')} {e['properties'].get('Revenue', '')}".strip(),
                ]
                for e in routed
            ],
        )

    ignored = [s for s in sent if s.status == 200 and s.answer.get("status") == "ignored"]
    lines += ["", f"Ignored by the receiver (answered 200, not queued): {len(ignored)}", ""]
    lines += _table(
        ["Sample", "Event type", "Why"],
        [[f"{s.sample.route}/{s.sample.name}", s.event_type, str(s.answer.get("reason", ""))] for s in ignored],
    )
    rejected = [s for s in sent if s.status != 200]
    lines += ["", f"Rejected by the receiver: {len(rejected)}", ""]
    lines += _table(
        ["Sample", "Answer"],
        [
            [f"{s.sample.route}/{s.sample.name} {s.event_type}", f"{s.status} {s.answer.get('error', '')}"]
            for s in rejected
        ],
    )
    dead = stack.dead_letters()
    lines += ["", f"Dead-lettered: {len(dead)}"]
    if dead:
        lines += [""] + _table(
            ["Provider", "Event type", "Event ID", "Reason"],
            [[d["provider"], d["event_type"], d["event_id"], f"{d['reason']}: {d['detail']}"] for d in dead],
        )
        raise DemoFailed("\n".join(lines) + f"\n\n{len(dead)} sample(s) were dead-lettered: see the reasons above")
    violations = [v for project in mixpanel.projects for v in project.spec_violations()]
    if violations:
        raise DemoFailed(f"the requests to Mixpanel broke its API spec: {json.dumps(violations[:3])}")
    tally = stack.tally
    wrongly_signed = sum(1 for s in sent if s.event_type == WRONG_SIGNATURE)
    if stack.eventbridge_sent:
        lines += [
            "",
            f"Stripe through EventBridge: the {stack.eventbridge_sent} mapped Stripe samples were also put on the partner bus; "
            "all reached the forwarder and added no Mixpanel event (each was delivered by webhook already).",
        ]
    lines += [
        "",
        f"{len(sent)} webhooks sent ({len(sent) - wrongly_signed} samples and {wrongly_signed} wrongly signed): "
        f"{len(sent) - len(rejected)} answered 200 ({tally.accepted - stack.eventbridge_sent} enqueued, "
        f"{len(ignored)} ignored), {len(rejected)} rejected; of the enqueued (and the EventBridge copies), "
        f"{tally.delivered} delivered, {tally.retried} retries, 0 dead-lettered.",
    ]
    return "\n".join(lines)


def _economics(events: list[dict[str, Any]], reporting: str, rates: str) -> list[str]:
    """MRR movements by currency, and revenue in the reporting currency with where its rates came from."""
    from revenue_webhooks.domain.money import exponent

    movements: dict[tuple[str, str], list[float]] = {}
    for event in events:
        p = event["properties"]
        if "MRR Movement" in p and isinstance(p.get("MRR Change"), int | float):
            entry = movements.setdefault((p["MRR Movement"], p.get("Currency", "")), [0, 0.0])
            entry[0] += 1
            entry[1] += p["MRR Change"]
    lines = ["", "MRR movements (sum of MRR Change by MRR Movement):", ""]
    lines += _table(
        ["Movement", "Currency", "Events", "MRR Change"],
        [[m, cur, str(int(n)), _amount(total, exponent(cur))] for (m, cur), (n, total) in sorted(movements.items())],
    )
    if not reporting:
        return lines
    name = f"Revenue ({reporting})"
    gross = refunds = 0.0
    sources: dict[str, int] = {}
    unconverted = 0
    for event in events:
        p = event["properties"]
        if "Revenue" not in p or event["event"] not in ("Purchase Completed", "Refund Issued"):
            continue
        if name not in p:
            unconverted += 1
            continue
        sources[p.get("Exchange Rate Source", "same currency")] = (
            sources.get(p.get("Exchange Rate Source", "same currency"), 0) + 1
        )
        if event["event"] == "Refund Issued":
            refunds += p[name]
        else:
            gross += p[name]
    places = exponent(reporting)
    lines += [
        "",
        f"Revenue in the reporting currency {reporting} (each event at its own rate; rates from {rates}):",
        "",
    ]
    lines += _table(
        ["Gross", "Refunds", "Net", "Converted by", "Unconverted"],
        [
            [
                _amount(gross, places),
                _amount(refunds, places),
                _amount(gross - refunds, places),
                ", ".join(f"{k} {v}" for k, v in sorted(sources.items())),
                str(unconverted),
            ]
        ],
    )
    return lines


def _per_currency(properties: dict[str, Any], prefix: str) -> str:
    from revenue_webhooks.domain.money import exponent

    return "; ".join(
        f"{name[len(prefix) :]} {_amount(value, exponent(name[len(prefix) :]))}"
        for name, value in sorted(properties.items())
        if name.startswith(prefix) and len(name) == len(prefix) + 3 and isinstance(value, int | float)
    )


def _reporting(properties: dict[str, Any], name: str, currency: str) -> str:
    from revenue_webhooks.domain.money import exponent

    value = properties.get(f"{name} ({currency})") if currency else None
    return _amount(value, exponent(currency)) if isinstance(value, int | float) else ""


def _amount(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return (
            "  "
            + "  ".join(
                (str(c).rjust(w) if numeric[i] else str(c).ljust(w))
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )

    return [line(header), "  " + "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


def _is_number(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).replace("-", "", 1).isdigit()
