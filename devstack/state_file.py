"""`make dev` says where it runs: `.devstack/stack.json`, which `make event`, `make replay` and `make redrive` read.

The format and its reader are the operator tools' (ops/local_stack.py), since they must not import
this package; here the running stack is described in it. The file is written once everything
listens and removed when the stack stops, so a file whose process is gone is recognised as stale.
"""

from __future__ import annotations

import os
from pathlib import Path

from ops import local_stack

from .aws import LOCAL_CREDENTIALS, REGION
from .stack import RECEIVER, LocalStack


def describe(stack: LocalStack) -> local_stack.LocalStackState:
    """The running stack as the tools need it: its webhook URL, routes, secrets, moto and queues."""
    if stack.api is None or stack.moto is None:
        raise RuntimeError("the local stack is not running")
    path = min(path for _, path in stack.template.http_routes(RECEIVER))
    base_path = path.split("{", 1)[0].rstrip("/")  # /webhooks/{provider} -> /webhooks
    mixpanel_url = stack.mixpanel.url if stack.mixpanel is not None else stack.forwarder_environment["MIXPANEL_API_URL"]
    return local_stack.LocalStackState(
        pid=os.getpid(),
        webhook_url=f"{stack.api.url}{base_path}",
        routes=tuple(stack.providers),
        secrets=dict(stack.webhook_secrets),
        aws_endpoint_url=stack.moto.endpoint,
        region=REGION,
        access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        events_queue_url=stack.queue_url,
        dead_letter_queue_url=stack.dead_letter_url,
        mixpanel_url=mixpanel_url,
        path=path_of(stack),
    )


def path_of(stack: LocalStack) -> Path:
    return stack.options.state_dir / local_stack.FILE_NAME


def publish(stack: LocalStack) -> Path:
    """Write the running stack's state file; returns its path."""
    state = describe(stack)
    local_stack.write(state, state.path)
    return state.path


def withdraw(stack: LocalStack) -> None:
    """Remove the state file if this process wrote it."""
    local_stack.remove(path_of(stack), os.getpid())
