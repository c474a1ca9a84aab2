"""What the local stack's functions print, and a log that keeps nothing (devstack/stack.py)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TextIO


class NullLog(io.StringIO):
    """A log that keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)


class FunctionOutput(io.TextIOBase):
    """The functions' stdout: a log file while the stack runs, the real stdout after (loggers keep this object)."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO | None = path.open("a", encoding="utf-8")

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        # Once detached, follow whatever stdout is now (a test runner's capture, or the terminal).
        target = self._file or (sys.stdout if sys.stdout is not self else sys.__stdout__)
        if target is None:
            return len(text)
        target.write(text)
        return len(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def detach_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()
