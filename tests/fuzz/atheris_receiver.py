"""Coverage-guided fuzzing of ReceiverFunction with atheris (libFuzzer), on the same rig and properties.

libFuzzer mutates a byte string; `one_input` turns it into a route, a body (a real provider payload or
raw bytes), a signature made with the real secret at some time (or none), header damage, a base64
flag and, rarely, a queue that is down, then lets `ReceiverRig.check` judge the answer. A broken
property raises AssertionError, which atheris reports with the input that caused it.

    make fuzz-atheris                                     # short: 3,000 inputs (also in CI)
    .venv/bin/python tests/fuzz/atheris_receiver.py -max_total_time=600 .devstack/fuzz-corpus

atheris 3.1.0 installs on Python 3.13 from PyPI (a cp313 wheel), so it runs in the project venv.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["revenue_webhooks"]):
    pass

from receiver_rig import ROUTES, SIGNATURE_HEADERS, ReceiverRig, api_event, seed_bodies, sign

HEADER_NAMES = (
    *SIGNATURE_HEADERS,
    "x-shopify-topic",
    "x-shopify-event-id",
    "x-shopify-triggered-at",
    "webhook-id",
    "webhook-timestamp",
    "content-type",
)
SEEDS = seed_bodies()
RIG: ReceiverRig | None = None
STATS_EVERY = int(os.environ.get("FUZZ_STATS_EVERY", "1000"))


def one_input(data: bytes) -> None:
    assert RIG is not None
    fdp = atheris.FuzzedDataProvider(data)
    # libFuzzer's inputs are often short: a provider that runs out of bytes answers the low end of a
    # range, so the low end is the common case (a signed real payload) and rare cases sit at the top.
    shape = fdp.ConsumeIntInRange(0, 7)
    if shape == 7:  # an event of any shape, from JSON text
        try:
            event = json.loads(fdp.ConsumeUnicodeNoSurrogates(4096))
        except ValueError:
            event = {"body": fdp.ConsumeUnicodeNoSurrogates(256)}
        RIG.check(RIG.invoke(event))
        return
    route = ROUTES[fdp.ConsumeIntInRange(0, len(ROUTES) - 1)]
    options: dict[str, str] = {}
    if shape <= 3:
        body, options = SEEDS[route][fdp.ConsumeIntInRange(0, len(SEEDS[route]) - 1)]
    else:
        body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096))
    offset = fdp.PickValueInList([0, -5, -299, -301, 59, 61, 3600, -86_401, fdp.ConsumeIntInRange(-(10**9), 10**9)])
    headers = (
        sign(route, body, RIG_NOW() + offset, **options)
        if fdp.ConsumeIntInRange(0, 4) != 4
        else {"content-type": "application/json"}
    )
    for _ in range(fdp.ConsumeIntInRange(0, 3)):  # header damage: replace, append or drop
        name = fdp.PickValueInList(list(HEADER_NAMES))
        action = fdp.ConsumeIntInRange(0, 2)
        if action == 0:
            headers[name] = fdp.ConsumeUnicodeNoSurrogates(128)
        elif action == 1:
            headers[name] = headers.get(name, "") + fdp.ConsumeUnicodeNoSurrogates(64)
        else:
            headers.pop(name, None)
    if body and fdp.ConsumeIntInRange(0, 3) == 3:  # a flipped byte after signing
        index = fdp.ConsumeIntInRange(0, len(body) - 1)
        body = body[:index] + bytes([body[index] ^ fdp.ConsumeIntInRange(1, 255)]) + body[index + 1 :]
    base64_body = fdp.ConsumeBool()  # forced for a body that is not UTF-8, as API Gateway does
    queue_down = fdp.ConsumeIntInRange(0, 31) == 31
    RIG.check(RIG.invoke(api_event(route, body, headers, base64_body=base64_body), queue_down=queue_down))
    if RIG.stats.inputs % STATS_EVERY == 0:
        print(f"atheris receiver fuzz: {RIG.stats.line()}", flush=True)


def RIG_NOW() -> int:
    import time

    return int(time.time())


def main() -> None:
    global RIG
    RIG = ReceiverRig()
    atheris.Setup(sys.argv, one_input)
    # Never returns: libFuzzer ends the process (no `finally`, no atexit), which also ends moto's threads;
    # hence the figures every FUZZ_STATS_EVERY inputs, next to libFuzzer's own "Done N runs" line.
    atheris.Fuzz()


if __name__ == "__main__":
    main()
