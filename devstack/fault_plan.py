"""Scripted failures for the local stand-ins (the local Mixpanel, the local Stripe API).

A test queues faults, each used by the next request it matches, or turns on a reproducible random mode
(a seed and a probability per fault name); the stand-in asks `take(path)` once per request.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar


class NamedFault(Protocol):
    @property
    def name(self) -> str: ...


F = TypeVar("F", bound=NamedFault)


class FaultPlan(Generic[F]):
    """A queue of faults consumed one per matching request, then an optional reproducible random mode.

    A stand-in subclasses it with its fault names (`NAMES`), how a name becomes a fault (`build`) and which
    requests a fault or the random mode applies to (`matches`, `in_scope`).
    """

    NAMES: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[F] = []
        self._rng: random.Random | None = None
        self._rates: list[tuple[str, float]] = []
        self._random_path: str | None = None
        self._slow_s = 0.0
        self._served: dict[str, int] = {}

    # ---- what a stand-in defines ----

    def build(self, name: str, path: str, slow_s: float) -> F:
        """The fault the random mode draws under `name`."""
        raise NotImplementedError

    def matches(self, fault: F, path: str) -> bool:
        """Whether a queued fault is for a request to `path`."""
        raise NotImplementedError

    def in_scope(self, scope: str | None, path: str) -> bool:
        """Whether the random mode, limited to `scope` (None: every request), applies to `path`."""
        return scope is None or path == scope

    def check_scope(self, scope: str | None) -> None:
        """Refuse a random mode's scope the stand-in has no requests for."""

    # ---- what tests call ----

    def push(self, *faults: F) -> None:
        """Queue faults; each is used by the next request it matches."""
        with self._lock:
            self._queue.extend(faults)

    def random(self, seed: int, rates: Mapping[str, float], *, path: str | None = None, slow_s: float = 5.0) -> None:
        """Fail requests at random but reproducibly: `rates` maps fault names (`NAMES`) to a probability per
        request. Queued faults still come first."""
        unknown = set(rates) - set(self.NAMES)
        if unknown:
            raise ValueError(f"unknown fault names {sorted(unknown)}: expected some of {self.NAMES}")
        if any(rate < 0 for rate in rates.values()) or sum(rates.values()) > 1:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        self.check_scope(path)
        with self._lock:
            self._rng = random.Random(seed)  # noqa: S311 - reproducible test faults, not cryptography
            self._rates = list(rates.items())
            self._random_path = path
            self._slow_s = slow_s

    def clear(self) -> None:
        """Drop queued faults and the random mode; the served counters stay."""
        with self._lock:
            self._queue.clear()
            self._rng = None
            self._rates = []

    def reset(self) -> None:
        self.clear()
        with self._lock:
            self._served.clear()

    @property
    def pending(self) -> list[F]:
        with self._lock:
            return list(self._queue)

    @property
    def served(self) -> dict[str, int]:
        """How many of each fault were served, by the fault's name."""
        with self._lock:
            return dict(self._served)

    # ---- what the stand-in calls ----

    def take(self, path: str) -> F | None:
        """The fault for this request, if any (and count it as served)."""
        with self._lock:
            fault = next((f for f in self._queue if self.matches(f, path)), None)
            if fault is not None:
                self._queue.remove(fault)
            elif self._rng is not None and self.in_scope(self._random_path, path):
                fault = self._draw(path)
            if fault is not None:
                self._served[fault.name] = self._served.get(fault.name, 0) + 1
            return fault

    def _draw(self, path: str) -> F | None:
        assert self._rng is not None
        roll, cumulative = self._rng.random(), 0.0
        for name, rate in self._rates:
            cumulative += rate
            if roll < cumulative:
                return self.build(name, path, self._slow_s)
        return None
