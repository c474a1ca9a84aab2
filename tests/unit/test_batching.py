"""Chunks under a count and a byte limit, as the Mixpanel client and the redrive tool send them."""

from __future__ import annotations

from revenue_webhooks.batching import by_count_and_bytes


def test_chunks_keep_order_and_both_limits() -> None:
    sizes = [4, 4, 4, 9, 1, 1, 1, 1]
    chunks = list(by_count_and_bytes(range(len(sizes)), sizes.__getitem__, max_count=3, max_bytes=10, base=2))
    assert chunks == [[0, 1], [2], [3], [4, 5, 6], [7]]
    assert all(2 + sum(sizes[i] for i in chunk) <= 10 and len(chunk) <= 3 for chunk in chunks if chunk != [3])
    assert 2 + sizes[3] > 10, "the one chunk over the byte limit is an item too large to share"


def test_an_item_over_the_byte_limit_goes_alone_and_nothing_gives_nothing() -> None:
    assert list(by_count_and_bytes(["aa", "x" * 50, "b"], len, max_count=10, max_bytes=10)) == [
        ["aa"],
        ["x" * 50],
        ["b"],
    ]
    assert list(by_count_and_bytes([], len, max_count=10, max_bytes=10)) == []
