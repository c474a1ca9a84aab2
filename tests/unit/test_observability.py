"""The forwarder's EMF record names its lane, whatever lane the container served before."""

from __future__ import annotations

import warnings

from revenue_webhooks import observability


def test_a_lane_after_the_other_replaces_mode_without_a_warning() -> None:
    metrics = observability.metrics
    try:
        observability.tag_lane("live")  # an invocation that counted nothing: nothing published, nothing cleared
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            observability.tag_lane("test")
        assert metrics.dimension_set["Mode"] == "test"
        observability.tag_lane("test")
        assert metrics.dimension_set["Mode"] == "test"
    finally:
        metrics.clear_metrics()
