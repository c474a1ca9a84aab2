"""A fresh local Mixpanel per test, on a free port, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.mixpanel import MixpanelServer


@pytest.fixture
def server() -> Iterator[MixpanelServer]:
    with MixpanelServer() as mixpanel:
        yield mixpanel
