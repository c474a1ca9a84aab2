"""Mixpanel's Raw Event Export API: what the project holds, for reconciliation.

`GET https://data.mixpanel.com/api/2.0/export` (data-eu, data-in by residency) with the service account
(HTTP Basic and `project_id`), `from_date`/`to_date` (inclusive days, UTC for projects created since 2023),
an `event` filter as a JSON array; the answer is NDJSON, one raw event per line. Raw exports are not
deduplicated, so `deduplicated` keeps one event per (event, distinct_id, time, $insert_id), as Mixpanel's
queries do. The API allows 60 queries an hour and 3 a second: one reconcile is one query; a 429 or 5xx is
retried with Mixpanel's recommended backoff.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import requests

from ..config import Settings
from .client import Backoff, Credentials

EXPORT_HOSTS = {
    "US": "https://data.mixpanel.com",
    "EU": "https://data-eu.mixpanel.com",
    "IN": "https://data-in.mixpanel.com",
}
EXPORT_PATH = "/api/2.0/export"
MAX_ATTEMPTS = 5


class ExportError(Exception):
    """Mixpanel would not export: the message names the status and Mixpanel's own error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Mixpanel's export answered {status}: {message}")
        self.status = status


def export_base_url(settings: Settings, override: str = "") -> str:
    """Where the export API is: MIXPANEL_EXPORT_URL, else MIXPANEL_API_URL (the local Mixpanel serves both),
    else the residency's data host."""
    return (override or settings.mixpanel_api_url or EXPORT_HOSTS[settings.mixpanel_region]).rstrip("/")


def day(seconds: int) -> str:
    """A UTC date as the export's from_date/to_date take it."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d")


class ExportClient:
    """Streams exported events; one instance per process keeps the connection."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout: tuple[float, float] = (3.05, 120.0),
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not credentials.uses_service_account:
            raise ValueError("the export API needs a service account (project_id, username, secret)")
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "revenue-webhooks"

    def events(self, from_date: str, to_date: str, names: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
        """Every raw event of these days (inclusive), optionally of these names; duplicates included."""
        params = {"project_id": self.credentials.project_id, "from_date": from_date, "to_date": to_date}
        wanted = sorted(set(names))
        if wanted:
            params["event"] = json.dumps(wanted)
        for attempt in range(MAX_ATTEMPTS):
            response = self.session.get(
                self.base_url + EXPORT_PATH,
                params=params,
                auth=(self.credentials.username, self.credentials.secret),
                headers={"Accept": "text/plain", "Accept-Encoding": "gzip"},
                timeout=self.timeout,
                stream=True,
            )
            if response.status_code == 200:
                with response:
                    for line in response.iter_lines():
                        if line.strip():
                            yield json.loads(line)
                return
            retry = response.status_code == 429 or response.status_code >= 500
            message = _error_text(response)
            response.close()
            if not retry or attempt == MAX_ATTEMPTS - 1:
                raise ExportError(response.status_code, message)
            self.sleep(self.backoff.delay(attempt))


def deduplicated(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event per (event, distinct_id, time, $insert_id), the last exported copy kept, as Mixpanel's queries
    show them (raw exports are not deduplicated)."""
    kept: dict[tuple[Any, ...], dict[str, Any]] = {}
    for event in events:
        properties = event.get("properties") or {}
        key = (event.get("event"), properties.get("distinct_id"), properties.get("time"), properties.get("$insert_id"))
        kept.pop(key, None)
        kept[key] = event
    return list(kept.values())


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason
    if isinstance(body, dict):
        return str(body.get("error") or body)
    return str(body)[:300]
