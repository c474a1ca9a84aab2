"""Shared fixtures: the integration pipeline and settings for pure tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/harness.py and tests/stripe_story.py

from revenue_webhooks.config import Settings, from_environ


@pytest.fixture
def settings() -> Settings:
    return from_environ({"MODE": "any"})


@pytest.fixture
def pipeline() -> Iterator[object]:
    from harness import Pipeline

    running = Pipeline()
    try:
        yield running
    finally:
        running.close()
