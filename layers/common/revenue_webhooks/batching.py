"""Splitting a run of items into requests that respect an API's count and size limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def by_count_and_bytes(
    items: Iterable[T], size: Callable[[T], int], *, max_count: int, max_bytes: int, base: int = 0
) -> Iterator[list[T]]:
    """Consecutive chunks of at most `max_count` items whose sizes, plus `base` per chunk, fit in `max_bytes`.

    Order is kept; an item larger than `max_bytes` on its own goes alone (the API then refuses it, not us).
    """
    chunk: list[T] = []
    used = base
    for item in items:
        length = size(item)
        if chunk and (len(chunk) >= max_count or used + length > max_bytes):
            yield chunk
            chunk, used = [], base
        chunk.append(item)
        used += length
    if chunk:
        yield chunk
