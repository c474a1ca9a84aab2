"""SnapStart: what the functions register with Lambda's runtime hooks, and what a restore changes.

`snapshot_restore_py` is the library Lambda's Python runtime ships (pinned here as a dev dependency);
its registry is what the runtime calls after restoring a snapshot.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import snapshot_restore_py
from revenue_webhooks import runtime


@pytest.fixture
def registry() -> Iterator[list[Any]]:
    hooks = snapshot_restore_py._after_restore_registry
    saved = list(hooks)
    hooks.clear()
    yield hooks
    hooks[:] = saved


def restore(hooks: list[Any]) -> None:
    """What Lambda's runtime does after a restore: call each registered hook, in order."""
    for function, args, kwargs in hooks:
        function(*args, **kwargs)


def test_the_after_restore_hook_is_registered(registry: list[Any]) -> None:
    assert runtime.register_snapstart_hooks() is True
    assert [function for function, _, _ in registry] == [runtime.after_restore]


def test_environments_restored_from_one_snapshot_draw_different_jitter(registry: list[Any]) -> None:
    runtime.register_snapstart_hooks()
    snapshot = random.getstate()
    draws = []
    for _ in range(2):  # two environments resumed from the same memory
        random.setstate(snapshot)
        restore(registry)
        draws.append(random.random())
    random.setstate(snapshot)
    without_hook = [random.random()]
    random.setstate(snapshot)
    without_hook.append(random.random())
    assert without_hook[0] == without_hook[1], "the snapshot's state alone repeats itself"
    assert draws[0] != draws[1]


class CountingSecrets:
    """A Secrets Manager client double (pure-logic test of the cache, no AWS): counts reads."""

    def __init__(self) -> None:
        self.reads = 0

    def get_secret_value(self, **_: Any) -> dict[str, Any]:
        self.reads += 1
        return {"SecretString": f"whsec_{self.reads}"}


def test_a_restore_reads_secrets_afresh(registry: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    client = CountingSecrets()
    runtime.reset()
    monkeypatch.setattr(runtime, "aws", lambda service: client)
    try:
        runtime.register_snapstart_hooks()
        assert runtime.secret_values("stripe") == ["whsec_1"]
        assert runtime.secret_values("stripe") == ["whsec_1"], "cached for five minutes"
        restore(registry)
        assert runtime.secret_values("stripe") == ["whsec_2"]
    finally:
        monkeypatch.undo()
        runtime.reset()


def test_snapshot_init_is_told_by_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    assert runtime.snapshot_init()
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
    assert not runtime.snapshot_init()
