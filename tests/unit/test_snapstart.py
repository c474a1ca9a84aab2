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
from revenue_webhooks import bootstrap


@pytest.fixture
def registry() -> Iterator[list[Any]]:
    hooks = snapshot_restore_py._after_restore_registry
    saved = list(hooks)
    hooks.clear()
    bootstrap.reset()  # a fresh container: nothing registered yet
    yield hooks
    hooks[:] = saved
    bootstrap.reset()


def restore(hooks: list[Any]) -> None:
    """What Lambda's runtime does after a restore: call each registered hook, in order."""
    for function, args, kwargs in hooks:
        function(*args, **kwargs)


def test_the_after_restore_hook_is_registered_once(registry: list[Any]) -> None:
    assert bootstrap.register_snapstart_hooks() is True
    assert bootstrap.register_snapstart_hooks() is True
    assert [function for function, _, _ in registry] == [bootstrap.after_restore]


def test_environments_restored_from_one_snapshot_draw_different_jitter(registry: list[Any]) -> None:
    bootstrap.register_snapstart_hooks()
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
    monkeypatch.setattr(bootstrap, "aws", lambda service: client)
    try:
        bootstrap.register_snapstart_hooks()
        assert bootstrap.secrets().values("stripe") == ["whsec_1"]
        assert bootstrap.secrets().values("stripe") == ["whsec_1"], "cached for five minutes"
        restore(registry)
        assert bootstrap.secrets().values("stripe") == ["whsec_2"]
    finally:
        monkeypatch.undo()
        bootstrap.reset()


def test_snapshot_init_is_told_by_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    assert bootstrap.snapshot_init()
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
    assert not bootstrap.snapshot_init()
