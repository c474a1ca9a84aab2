"""Cost per million webhooks on arm64, from the measured figures (the model is in docs/performance.md).

Durations scale with memory as Lambda allocates CPU: a function gets one full vCPU at 1,769 MB
and a proportional share below, so measured CPU time t (on one core here) takes t * 1769 / M ms
at M MB, while waiting on the network (SQS, DynamoDB, Mixpanel) does not shrink with memory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .common import table

# us-east-1 list prices (check https://aws.amazon.com/lambda/pricing/ and the others before quoting them).
PRICES = {
    "lambda_arm64_gb_s": 0.0000133334,
    "lambda_requests_per_million": 0.20,
    "sqs_requests_per_million": 0.40,  # standard queue; each 64 KB chunk of a payload is one request
    "dynamodb_wru_per_million": 0.625,  # on-demand; a transactional write costs 2 WRU per KB
    "dynamodb_rru_per_million": 0.125,  # on-demand; a strongly consistent read costs 1 RRU per 4 KB
    "api_gateway_http_per_million": 1.00,  # HTTP API, first 300 million a month
    "cloudwatch_logs_per_gb": 0.50,  # ingestion
}
FULL_VCPU_MB = 1769
MEMORY_SIZES = (128, 256, 512, 1024, 1769)
# Network waits the local run cannot show: an in-region SQS SendMessage, and Mixpanel from AWS.
SQS_SEND_MS = 10.0
PLATFORM_LOG_BYTES_PER_INVOCATION = 350  # START, END and REPORT lines
# A cold receiver answers within 30% of the strictest provider timeout (Shopify: 5 s), on the modeled CPU share.
RECEIVER_COLD_BUDGET_MS = 1500.0
# The forwarder's work is CPU, so its duration costs the same at any size below one vCPU: the size is
# chosen for how fast a backlog drains. A full batch within a second drains at least 1,000 events/s
# per concurrent forwarder (and stays far inside the 60 s timeout).
FORWARDER_BATCH_BUDGET_S = 1.0


def _load(out_dir: Path, name: str, smoke: bool, fresh: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if name in fresh:
        return fresh[name]
    path = out_dir / f"{name}{'.smoke' if smoke else ''}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _duration_ms(cpu_ms: float, wait_ms: float, memory_mb: int) -> float:
    return cpu_ms * max(1.0, FULL_VCPU_MB / memory_mb) + wait_ms


def _gb_s(duration_ms: float, memory_mb: int) -> float:
    return math.ceil(duration_ms) / 1000 * memory_mb / 1024


def run(out_dir: Path, *, smoke: bool, fresh: dict[str, dict[str, Any]]) -> dict[str, Any]:
    cold = _load(out_dir, "cold", smoke, fresh)
    receiver = _load(out_dir, "receiver", smoke, fresh)
    forwarder = _load(out_dir, "forwarder", smoke, fresh)
    batches = _load(out_dir, "batch_size", smoke, fresh)
    if not (cold and receiver and forwarder and batches):
        missing = [
            n
            for n, v in (("cold", cold), ("receiver", receiver), ("forwarder", forwarder), ("batch_size", batches))
            if not v
        ]
        return {"method": f"needs the results of {missing}: run those suites first", "table": "", "results": {}}

    # Receiver: the typical payload (a paid invoice, ~5 KB).
    typical = next(r for r in receiver["results"] if r["payload"] == "invoice.paid")
    receiver_cpu_ms = typical["ours_cpu_ms"]
    receiver_log_bytes = typical["ours_log_bytes"] + PLATFORM_LOG_BYTES_PER_INVOCATION
    cold_receiver = next(
        r for r in cold["results"] if r["logical_id"] == "ReceiverFunction" and r["variant"] == "this project"
    )
    cold_cpu_ms = cold_receiver["cold_request_ms"]["median"]

    # Forwarder: the run at 50 ms Mixpanel latency (closer to AWS -> Mixpanel than 0 ms).
    run50 = next((r for r in forwarder["results"] if r["latency_ms"] == 50), forwarder["results"][-1])
    fw = run50["forwarder"]
    events = fw["events"]
    messages_per_invocation = run50["batch_size"]
    fw_cpu_ms_per_event = fw["cpu_seconds"] * 1000 / events
    fw_wait_ms_per_event = max(0.0, (fw["seconds"] - fw["cpu_seconds"]) * 1000 / events)
    fw_log_bytes = fw["log_bytes"] / events + PLATFORM_LOG_BYTES_PER_INVOCATION / messages_per_invocation
    mix = batches["results"][-1]["ours"]
    record_kb = mix["record_bytes"] / 1024

    rows, by_memory = [], []
    for memory in MEMORY_SIZES:
        receiver_ms = _duration_ms(receiver_cpu_ms, SQS_SEND_MS, memory)
        receiver_cold_ms = _duration_ms(cold_cpu_ms, 0, memory)
        batch_ms = _duration_ms(fw_cpu_ms_per_event, fw_wait_ms_per_event, memory) * messages_per_invocation
        receiver_usd = _gb_s(receiver_ms, memory) * 1e6 * PRICES["lambda_arm64_gb_s"]
        forwarder_usd = _gb_s(batch_ms, memory) * (1e6 / messages_per_invocation) * PRICES["lambda_arm64_gb_s"]
        by_memory.append(
            {
                "memory_mb": memory,
                "receiver_warm_ms": receiver_ms,
                "receiver_cold_ms": receiver_cold_ms,
                "receiver_duration_usd_per_million": receiver_usd,
                "forwarder_batch_s": batch_ms / 1000,
                "forwarder_duration_usd_per_million": forwarder_usd,
            }
        )
        rows.append([memory, receiver_ms, receiver_cold_ms, receiver_usd, batch_ms / 1000, forwarder_usd])

    receiver_choice = next((m for m in by_memory if m["receiver_cold_ms"] <= RECEIVER_COLD_BUDGET_MS), by_memory[-1])
    forwarder_choice = next((m for m in by_memory if m["forwarder_batch_s"] <= FORWARDER_BATCH_BUDGET_S), by_memory[-1])

    per_million = 1e6
    sqs_send = math.ceil(mix["record_bytes"] / 1024 / 64) if record_kb > 64 else 1
    # send + receive (10 messages or 64 KB per request) + delete (10 per batch)
    sqs_requests = per_million * (sqs_send + max(0.1, record_kb / 64) + 0.1)
    wru = fw["transact_items_per_event"] * 2
    rru = 2.0  # per event, in the batch's BatchGetItem: its fact key and its customer, consistently read
    lines = {
        "API Gateway HTTP API": per_million * PRICES["api_gateway_http_per_million"] / 1e6,
        "Lambda requests (receiver)": PRICES["lambda_requests_per_million"],
        f"Lambda duration (receiver, {receiver_choice['memory_mb']} MB)": receiver_choice[
            "receiver_duration_usd_per_million"
        ],
        "Lambda requests (forwarder)": PRICES["lambda_requests_per_million"] / messages_per_invocation,
        f"Lambda duration (forwarder, {forwarder_choice['memory_mb']} MB)": forwarder_choice[
            "forwarder_duration_usd_per_million"
        ],
        "SQS requests": sqs_requests * PRICES["sqs_requests_per_million"] / 1e6,
        "DynamoDB writes": per_million * wru * PRICES["dynamodb_wru_per_million"] / 1e6,
        "DynamoDB reads": per_million * rru * PRICES["dynamodb_rru_per_million"] / 1e6,
        "CloudWatch Logs ingestion": per_million
        * (receiver_log_bytes + fw_log_bytes)
        / 1e9
        * PRICES["cloudwatch_logs_per_gb"],
    }
    total = sum(lines.values())
    cost_rows = [[name, usd, usd / total] for name, usd in lines.items()] + [["total", total, 1.0]]
    return {
        "method": (
            "measured CPU and waits scaled to Lambda memory sizes (1 vCPU at 1,769 MB); one Mixpanel event per "
            f"webhook; SQS send {SQS_SEND_MS:g} ms assumed; list prices in bench/cost.py"
        ),
        "inputs": {
            "receiver_warm_cpu_ms": receiver_cpu_ms,
            "receiver_cold_request_ms_one_core": cold_cpu_ms,
            "receiver_log_bytes_per_webhook": receiver_log_bytes,
            "forwarder_cpu_ms_per_event": fw_cpu_ms_per_event,
            "forwarder_wait_ms_per_event": fw_wait_ms_per_event,
            "forwarder_messages_per_invocation": messages_per_invocation,
            "forwarder_log_bytes_per_event": fw_log_bytes,
            "record_kb": record_kb,
            "dynamodb_wru_per_event": wru,
            "dynamodb_rru_per_event": rru,
            "prices": PRICES,
        },
        "by_memory": by_memory,
        "chosen_memory_mb": {"receiver": receiver_choice["memory_mb"], "forwarder": forwarder_choice["memory_mb"]},
        "usd_per_million_webhooks": lines,
        "total_usd_per_million_webhooks": total,
        "memory_table": table(
            [
                "memory MB",
                "receiver warm ms",
                "receiver cold ms",
                "receiver $/1M",
                "forwarder batch s",
                "forwarder $/1M",
            ],
            rows,
        ),
        "table": table(["item", "USD per 1M webhooks", "share"], cost_rows),
    }
