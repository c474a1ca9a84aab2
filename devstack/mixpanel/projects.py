"""One Mixpanel project of the local Mixpanel: its credentials, its store, and what a test reads of it.

The real service keeps projects apart by their credentials and tokens; so does the local one (a deployment with
a test project sends test-mode events under other credentials to the same host). `MixpanelServer` is itself
its first project, so `server.events()` reads that one and `server.project("2").events()` another.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import page
from .auth import Credentials
from .page import CATALOG_REVENUE_VIEW, RevenueView
from .store import Store


def project_db_path(db_path: str, project_id: str, first: bool) -> str:
    """The SQLite file of a project: the given one for the first project, `<stem>.<project id><suffix>` beside it."""
    if first or db_path == ":memory:":
        return db_path
    path = Path(db_path)
    return str(path.with_name(f"{path.stem}.{project_id}{path.suffix}"))


class Project:
    """A project's data as its queries see it, read through its store."""

    def __init__(self, credentials: Credentials, store: Store, revenue: RevenueView = CATALOG_REVENUE_VIEW) -> None:
        self.credentials = credentials
        self._store = store
        self.revenue_view = revenue

    @property
    def project_id(self) -> str:
        return self.credentials.project_id

    def events(self, name: str | None = None, distinct_id: str | None = None) -> list[dict[str, Any]]:
        """Stored events as queries see them: deduplicated on (event, distinct_id, time, $insert_id), the most
        recently ingested copy kept, in ingestion order. Each is `{"event": ..., "properties": {...}}`."""
        return self._store.events(name, distinct_id)

    def raw_events(self, name: str | None = None, distinct_id: str | None = None) -> list[dict[str, Any]]:
        """Every event ingested, duplicates included, in order."""
        return self._store.events(name, distinct_id, deduplicated=False)

    def wait_for_events(self, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The deduplicated events once there are at least `count` (for pipelines that deliver asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.events()
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"expected {count} events within {timeout_s}s, got {len(found)}: {found}")
            with self._store.changed:
                self._store.changed.wait(min(remaining, 0.1))

    def geolocated(self) -> list[dict[str, Any]]:
        """Per ingested event: event, distinct_id, insert_id and `geo_ip`, the IP Mixpanel would geolocate (an
        event's `ip` property, else with `ip=1` the request's: X-Real-IP, else X-Forwarded-For, else the peer)."""
        return self._store.geolocated()

    def profiles(self) -> dict[str, dict[str, Any]]:
        """{distinct_id: properties} after every profile update applied in order."""
        return self._store.profiles()

    def profile_updates(self) -> list[dict[str, Any]]:
        """Every profile update applied, in order (retries included)."""
        return self._store.profile_updates()

    def groups(self) -> dict[tuple[str, str], dict[str, Any]]:
        """{(group key, group id): properties} after every group update applied in order."""
        return self._store.groups()

    def group_updates(self) -> list[dict[str, Any]]:
        """Every group profile update applied, in order (retries included)."""
        return self._store.group_updates()

    def requests_log(self, path: str | None = None) -> list[dict[str, Any]]:
        """Each ingestion request received, in order: path, query, headers (Authorization redacted), records
        (events or updates parsed), body_bytes, uncompressed_bytes, auth, status answered, fault, response,
        client_ip (the IP the request came from, as Mixpanel reads it behind a proxy)."""
        return self._store.requests(path)

    def spec_violations(self) -> list[dict[str, Any]]:
        """Every departure from Mixpanel's OpenAPI spec seen in received requests (tests assert it is empty)."""
        return self._store.spec_violations()

    def revenue(self) -> list[dict[str, Any]]:
        """Revenue per UTC day and currency from the deduplicated events: gross, refunds, net and event count."""
        return page.daily_revenue(self._store.event_rows(), self.revenue_view)

    def mrr(self) -> dict[str, Any]:
        """MRR per day and currency, and the day's MRR Change by movement (the page's MRR charts)."""
        return page.daily_mrr(self._store.event_rows(), self.revenue_view)
