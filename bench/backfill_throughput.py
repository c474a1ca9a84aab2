"""Backfill throughput: Stripe objects per second read by the backfill's parallel reader vs stripe-python's
sequential auto-pager, against the local Stripe API with 300 ms on every list request; and the forwarder's
events per second on a backfill-sized backlog.

The Stripe stand-in runs in its own process (bench/services.py `stripe`) with Stripe's read limit for the key's
mode (25 requests a second in test mode, 100 live) and answers 429 above it, so "faster" is only allowed by
staying under the limit: every run reports the 429s it met and the busiest second's requests, from the
stand-in's request log. Both readers list the same PaymentIntents (`expand[]=data.latest_charge`, 100 a page):
- the library: `client.v1.payment_intents.list(...).auto_paging_iter()`, one request after another;
- the backfill's reader (revenue_webhooks/adapters/stripe_reader.py): time slices read by 16 threads (32 for a
  live key), one rate limiter at 80% of Stripe's limit, idle threads splitting busy slices.

The forwarder's part feeds the real ForwarderFunction handler (moto, the DynamoDB stand-in, the local Mixpanel,
as bench/forwarder_throughput.py does) the messages the backfill enqueues for a history of Checkout payments:
`checkout.session.completed` events built from the objects as the backfill builds them.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from typing import Any

from .common import ratio, table
from .services import Service

LIST_LATENCY_S = 0.3
TARGET_RATIO = 5.0


def _log(log_url: str) -> list[dict[str, Any]]:
    """The stand-in's requests since the last call (bench/services.py serves its log beside it)."""
    with urllib.request.urlopen(log_url, timeout=30) as response:  # 127.0.0.1 only
        return list(json.loads(response.read()))


def _sequential(url: str, key: str) -> dict[str, Any]:
    import stripe

    client = stripe.StripeClient(key, base_addresses={"api": url})
    started = time.perf_counter()
    count = 0
    pages = client.v1.payment_intents.list(params={"limit": 100, "expand": ["data.latest_charge"]})
    for _ in pages.auto_paging_iter():
        count += 1
    return {"objects": count, "seconds": time.perf_counter() - started}


def _parallel(url: str, key: str, concurrency: int) -> dict[str, Any]:
    from revenue_webhooks.adapters.stripe_reader import RateLimiter, StripeReader, default_rate, read_all, stripe_client

    limiter = RateLimiter(default_rate(key))
    reader = StripeReader(stripe_client(key, url), limiter, concurrency=concurrency)
    started = time.perf_counter()
    found, _ = read_all(reader, ["payment_intents"], int(time.time()) - 91 * 86400, int(time.time()) + 60)
    seconds = time.perf_counter() - started
    return {
        "objects": len(found["payment_intents"]),
        "seconds": seconds,
        "rate_limit": limiter.rate,
        "concurrency": concurrency,
        "throttled": limiter.throttled,
    }


def _requests(entries: list[dict[str, Any]]) -> dict[str, Any]:
    times = sorted(e["at"] for e in entries)
    busiest, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return {
        "requests": len(entries),
        "rate_limited": sum(1 for e in entries if e["status"] == 429),
        "busiest_second": busiest,
    }


def reader(objects: int, live: bool) -> dict[str, Any]:
    extra = ["--objects", str(objects), *(["--live"] if live else [])]
    with Service("stripe", latency_s=LIST_LATENCY_S, extra=extra) as stand_in:
        url, key, log_url = stand_in.url.split(" ")
        sequential = _sequential(url, key)
        sequential.update(_requests(_log(log_url)))
        time.sleep(1.1)  # a fresh second for the limiter
        parallel = _parallel(url, key, 32 if live else 16)
        parallel.update(_requests(_log(log_url)))
    for run in (sequential, parallel):
        run["objects_per_s"] = run["objects"] / run["seconds"]
    if parallel["objects"] != sequential["objects"] or sequential["objects"] != objects:
        raise RuntimeError(f"the readers listed {sequential['objects']} and {parallel['objects']} of {objects}")
    return {
        "mode": "live" if live else "test",
        "limit_per_s": 100 if live else 25,
        "objects": objects,
        "sequential": sequential,
        "parallel": parallel,
        "ratio": ratio(parallel["objects_per_s"], sequential["objects_per_s"]),
    }


def forwarder(objects: int, batch_size: int) -> dict[str, Any]:
    """The forwarder's events per second on `objects` backfilled Checkout payments (messages as enqueued)."""
    from revenue_webhooks.providers._stripe_objects import checkout_session_events

    from devstack.stripe_api import StripeAccount

    from .forwarder_throughput import _ours, _Stack, records_for
    from .services import mixpanel_summary

    account = StripeAccount(seed=objects)
    now = int(time.time())
    step = 300 * 86400 // objects
    buyers = [account.customer(at=now - 400 * 86400, metadata={"user_id": f"user-{i}"}).object_id for i in range(50)]
    for index in range(objects):
        at = now - 1 - index * step
        account.pay_checkout(2900, ("usd", "eur", "jpy", "kwd")[index % 4], at=at, customer=buyers[index % 50])
    bodies = []
    for record in account.store.objects("checkout.session"):
        session = account.render(record["id"])
        intent = account.render(session["payment_intent"])
        intent["latest_charge"] = account.render(intent["latest_charge"])
        session["payment_intent"] = intent
        bodies += [json.dumps(event).encode() for event in checkout_session_events(session, account.api_version)]
    records = records_for(bodies)
    saved = dict(os.environ)
    try:
        with Service("moto") as moto, Service("dynamodb") as dynamodb, Service("mixpanel") as mixpanel:
            stack = _Stack(moto, mixpanel, dynamodb)
            ours = _ours(stack, records, batch_size)
            delivered = mixpanel_summary(mixpanel.url)["raw_events"]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if delivered != len(records) or ours["failed_messages"]:
        raise RuntimeError(f"the forwarder delivered {delivered} of {len(records)}: {ours}")
    return {
        "messages": len(records),
        "batch_size": batch_size,
        "invocations": ours["invocations"],
        "seconds": ours["seconds"],
        "events_per_s": delivered / ours["seconds"],
        "import_requests": ours["requests"].get("/import", 0),
    }


def run(*, objects: int, forwarder_objects: int, batch_size: int, live: bool = True) -> dict[str, Any]:
    readers = [reader(objects, live=False)]
    if live:
        readers.append(reader(objects, live=True))
    backlog = forwarder(forwarder_objects, batch_size)
    rows = []
    for entry in readers:
        for name, label in (("sequential", "stripe-python auto-pager"), ("parallel", "backfill reader")):
            run_ = entry[name]
            rows.append(
                [
                    entry["mode"],
                    label,
                    run_["objects"],
                    run_["objects_per_s"],
                    run_["requests"],
                    f"{run_['busiest_second']} / {entry['limit_per_s']}",
                    run_["rate_limited"],
                    entry["ratio"] if name == "parallel" else 1.0,
                ]
            )
    reader_table = table(
        ["mode", "reader", "objects", "objects/s", "requests", "busiest second / limit", "429s", "vs auto-pager"], rows
    )
    forwarder_table = table(
        ["backlog messages", "batch size", "invocations", "seconds in invocations", "events/s", "/import requests"],
        [
            [
                backlog["messages"],
                backlog["batch_size"],
                backlog["invocations"],
                backlog["seconds"],
                backlog["events_per_s"],
                backlog["import_requests"],
            ]
        ],
    )
    test_mode = readers[0]
    targets = {
        "parallel_vs_auto_pager_test_mode": {
            "value": test_mode["ratio"],
            "target": f">= {TARGET_RATIO:g} with no 429",
            "met": test_mode["ratio"] >= TARGET_RATIO and test_mode["parallel"]["rate_limited"] == 0,
        },
        "busiest_second_test_mode": {
            "value": test_mode["parallel"]["busiest_second"],
            "target": "<= 25 (Stripe's test-mode read limit)",
            "met": test_mode["parallel"]["busiest_second"] <= 25,
        },
    }
    return {
        "method": (__doc__ or "").strip(),
        "list_latency_s": LIST_LATENCY_S,
        "readers": readers,
        "forwarder": backlog,
        "table": reader_table + "\n\n" + forwarder_table,
        "targets": targets,
    }
