"""A loop on a daemon thread that the local stack starts and stops (the event source mapping, catch-up's schedule)."""

from __future__ import annotations

import threading
from typing import Self


class Background:
    """`start()` runs `_run` on a daemon thread named `thread_name`; `stop()` sets `_stop` and waits for it."""

    thread_name = "background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
