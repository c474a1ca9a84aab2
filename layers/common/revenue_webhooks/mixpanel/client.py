"""The Mixpanel ingestion client: every rule of `/import` and `/engage` lives here.

Written on `requests` rather than the official `mixpanel` SDK because the SDK has no
`strict=1`, no gzip, no 2000-event batches, no per-record outcomes and caps buffered
sends at 50 events (see docs/performance.md).
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ..batching import by_count_and_bytes
from ..domain.outcomes import DELIVERED, Outcome, Result

MAX_EVENTS_PER_REQUEST = 2000
# Mixpanel's prose says 10 MB, the spec's 413 example 2 MiB: stay under the lower figure.
MAX_REQUEST_BYTES = 2 * 1024 * 1024 - 64 * 1024
MAX_PROFILES_PER_REQUEST = 2000
# "The Groups API has the same 2000 and 1 MB limits" as the User Profile API.
MAX_GROUP_UPDATES_PER_REQUEST = 2000
MAX_CONCURRENT_REQUESTS = 8


@dataclass(frozen=True)
class Credentials:
    """The MixpanelCredentials secret: a service account (with project id) and/or the project token."""

    project_id: str = ""
    username: str = ""
    secret: str = ""
    project_token: str = ""

    @classmethod
    def from_secret(cls, value: str | dict[str, Any]) -> Credentials:
        data = json.loads(value) if isinstance(value, str) else value
        if not isinstance(data, dict):
            raise ValueError("MixpanelCredentials must be a JSON object")
        creds = cls(
            project_id=str(data.get("project_id") or ""),
            username=str(data.get("service_account_username") or ""),
            secret=str(data.get("service_account_secret") or ""),
            project_token=str(data.get("project_token") or ""),
        )
        if not (creds.project_id and creds.username and creds.secret) and not creds.project_token:
            raise ValueError(
                "MixpanelCredentials needs project_id, service_account_username and service_account_secret, "
                "or project_token"
            )
        return creds

    @property
    def uses_service_account(self) -> bool:
        return bool(self.project_id and self.username and self.secret)

    def import_auth(self) -> tuple[tuple[str, str], dict[str, str]]:
        """(basic auth, query params) for /import."""
        if self.uses_service_account:
            return (self.username, self.secret), {"project_id": self.project_id}
        return (self.project_token, ""), {}


@dataclass(frozen=True)
class Backoff:
    """Mixpanel's recommended schedule: start at 2 s, double up to 60 s, add 1-5 s of jitter."""

    base_s: float = 2.0
    cap_s: float = 60.0
    jitter_s: tuple[float, float] = (1.0, 5.0)

    def delay(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * 2**attempt) + random.uniform(*self.jitter_s)  # noqa: S311 (jitter)  # nosec B311


class MixpanelClient:
    """Sends events and profile updates; reuse one instance per process to keep its connection pool."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout: tuple[float, float] = (3.05, 20.0),
        backoff: Backoff | None = None,
        gzip_level: int = 6,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.gzip_level = gzip_level
        self.session = requests.Session()
        # The imports' concurrent requests, and the forwarder's /engage beside them.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=MAX_CONCURRENT_REQUESTS + 1, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = "revenue-webhooks"
        self.requests_sent = 0

    # ---- /import ----------------------------------------------------------------------

    def import_events(self, events: Sequence[dict[str, Any]], *, deadline: float | None = None) -> list[Result]:
        """Deliver `events`; one Result per event, in order.

        Transient failures are retried with backoff while `deadline` (a `time.monotonic()` value)
        leaves room for another attempt; what is still transient then is reported so.
        """
        encoded = [json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() for event in events]
        insert_ids = [str((event.get("properties") or {}).get("$insert_id") or "") for event in events]
        results: list[Result | None] = [None] * len(events)
        pending = list(range(len(events)))
        attempt = 0
        while pending:
            outcomes = self._send_chunks(encoded, insert_ids, pending)
            for index, result in outcomes.items():
                results[index] = result
            pending = [i for i in pending if results[i].outcome is Outcome.TRANSIENT]  # type: ignore[union-attr]
            if not pending:
                break
            wait = self.backoff.delay(attempt)
            if deadline is None or time.monotonic() + wait + self.timeout[1] > deadline:
                break
            time.sleep(wait)
            attempt += 1
        return [result or Result(Outcome.TRANSIENT, "not_sent") for result in results]

    def _send_chunks(self, encoded: list[bytes], insert_ids: list[str], indices: list[int]) -> dict[int, Result]:
        # A JSON array: two brackets, and each event plus its comma.
        chunks = list(
            by_count_and_bytes(
                indices,
                lambda i: len(encoded[i]) + 1,
                max_count=MAX_EVENTS_PER_REQUEST,
                max_bytes=MAX_REQUEST_BYTES,
                base=2,
            )
        )
        if len(chunks) == 1:
            return self._send_import(encoded, insert_ids, chunks[0])
        outcomes: dict[int, Result] = {}
        with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_REQUESTS, len(chunks))) as pool:
            for part in pool.map(lambda chunk: self._send_import(encoded, insert_ids, chunk), chunks):
                outcomes.update(part)
        return outcomes

    def _send_import(self, encoded: list[bytes], insert_ids: list[str], chunk: list[int]) -> dict[int, Result]:
        body = b"[" + b",".join(encoded[i] for i in chunk) + b"]"
        auth, params = self.credentials.import_auth()
        response, error = self._post(
            "/import",
            params={"strict": "1", **params},
            data=gzip.compress(body, compresslevel=self.gzip_level, mtime=0),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            auth=auth,
        )
        if error is not None:
            return dict.fromkeys(chunk, error)
        assert response is not None
        status = response.status_code
        if status == 200:
            return dict.fromkeys(chunk, DELIVERED)
        if status == 413 and len(chunk) > 1:
            half = len(chunk) // 2
            return {
                **self._send_import(encoded, insert_ids, chunk[:half]),
                **self._send_import(encoded, insert_ids, chunk[half:]),
            }
        if status == 400:
            return _strict_400(response, chunk, insert_ids)
        return dict.fromkeys(chunk, _classify_status(response))

    # ---- /engage ----------------------------------------------------------------------

    def update_profiles(self, updates: Sequence[dict[str, Any]], *, deadline: float | None = None) -> list[Result]:
        """Send profile updates (`$set` of absolute values, so a retry is harmless); one Result each.

        A request that could outlast `deadline` (a `time.monotonic()` value) with its timeouts is not
        started: its updates are reported transient, so the caller retries them instead of timing out.
        """
        results: list[Result] = []
        for start in range(0, len(updates), MAX_PROFILES_PER_REQUEST):
            batch = updates[start : start + MAX_PROFILES_PER_REQUEST]
            if deadline is not None and time.monotonic() + sum(self.timeout) > deadline:
                results += [Result(Outcome.TRANSIENT, "not_sent", "no time left before the deadline")] * len(batch)
                continue
            # /engage takes no gzip and answers 200 on invalid input: ask for verbose and read the body.
            response, error = self._post(
                "/engage",
                params={"verbose": "1", "ip": "0"},
                data=json.dumps(list(batch), separators=(",", ":"), ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json"},
                auth=None,
            )
            if error is not None:
                results += [error] * len(batch)
                continue
            assert response is not None
            if response.status_code != 200:
                results += [_classify_status(response)] * len(batch)
                continue
            body = _json_body(response)
            if isinstance(body, dict) and body.get("status") == 1:
                results += [DELIVERED] * len(batch)
            else:
                message = str(body.get("error") if isinstance(body, dict) else response.text)[:500]
                results += [Result(Outcome.INVALID, "mixpanel_engage_rejected", message)] * len(batch)
        return results

    # ---- /groups ----------------------------------------------------------------------

    def update_groups(self, updates: Sequence[dict[str, Any]], *, deadline: float | None = None) -> list[Result]:
        """Send group profile updates (`$set` of absolute company totals); one Result each.

        `strict=1` asks Mixpanel to name the records it refuses (`failed_records`, by index) and `verbose=1`
        to answer JSON rather than `1`/`0`; `ip=0` keeps the Lambda's location off the company. The other
        records of a refused batch are sent once more on their own: each is an absolute `$set`, so a record
        Mixpanel had already applied changes nothing the second time.
        """
        results: list[Result] = []
        for start in range(0, len(updates), MAX_GROUP_UPDATES_PER_REQUEST):
            batch = list(updates[start : start + MAX_GROUP_UPDATES_PER_REQUEST])
            if deadline is not None and time.monotonic() + sum(self.timeout) > deadline:
                results += [Result(Outcome.TRANSIENT, "not_sent", "no time left before the deadline")] * len(batch)
                continue
            outcomes = self._post_groups(batch)
            retry = [i for i, result in enumerate(outcomes) if result.reason == "mixpanel_groups_batch_refused"]
            if retry and len(retry) < len(batch):
                for i, result in zip(retry, self._post_groups([batch[i] for i in retry]), strict=True):
                    outcomes[i] = result
            results += outcomes
        return results

    def _post_groups(self, batch: list[dict[str, Any]]) -> list[Result]:
        response, error = self._post(
            "/groups",
            params={"verbose": "1", "strict": "1", "ip": "0"},
            data=json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"},
            auth=None,
        )
        if error is not None:
            return [error] * len(batch)
        assert response is not None
        if response.status_code != 200 and response.status_code != 400:
            return [_classify_status(response)] * len(batch)
        body = _json_body(response)
        if isinstance(body, dict) and body.get("status") == 1 and response.status_code == 200:
            return [DELIVERED] * len(batch)
        message = str(body.get("error") if isinstance(body, dict) else response.text)[:500]
        failed = body.get("failed_records") if isinstance(body, dict) else None
        indices: dict[int, dict[str, Any]] = {
            r["index"]: r for r in failed or [] if isinstance(r, dict) and isinstance(r.get("index"), int)
        }
        if not indices or not all(0 <= i < len(batch) for i in indices):
            return [Result(Outcome.INVALID, "mixpanel_groups_rejected", message)] * len(batch)
        return [
            Result(Outcome.INVALID, "mixpanel_groups_rejected", str(indices[i].get("message") or message)[:500])
            if i in indices
            else Result(Outcome.INVALID, "mixpanel_groups_batch_refused", message)
            for i in range(len(batch))
        ]

    # ---- transport --------------------------------------------------------------------

    def _post(self, path: str, **kwargs: Any) -> tuple[requests.Response | None, Result | None]:
        self.requests_sent += 1
        try:
            return self.session.post(self.base_url + path, timeout=self.timeout, **kwargs), None
        except requests.Timeout as error:
            return None, Result(Outcome.TRANSIENT, "mixpanel_timeout", type(error).__name__)
        except requests.ConnectionError as error:
            return None, Result(Outcome.TRANSIENT, "mixpanel_connection_error", type(error).__name__)
        except requests.RequestException as error:  # e.g. the connection closed mid-answer (ChunkedEncodingError)
            return None, Result(Outcome.TRANSIENT, "mixpanel_request_error", f"{type(error).__name__}: {error}"[:500])


def _strict_400(response: requests.Response, chunk: list[int], insert_ids: list[str]) -> dict[int, Result]:
    """A strict 400 is partial success: the listed records failed, the rest were ingested.

    A failure we cannot place on an event rejects the whole request: no event counts as delivered on a guess.
    """
    body = _json_body(response)
    failed = body.get("failed_records") if isinstance(body, dict) else None
    message = str(body.get("error") if isinstance(body, dict) else response.text)[:500]
    if not isinstance(failed, list) or not failed:
        return dict.fromkeys(chunk, Result(Outcome.INVALID, "mixpanel_rejected_request", message))
    outcomes = dict.fromkeys(chunk, DELIVERED)
    for record in failed:
        positions = _failed_positions(record, chunk, insert_ids)
        if not positions:
            detail = f"{message}; a failed record matches no event of the request: {record!r}"[:500]
            return dict.fromkeys(chunk, Result(Outcome.INVALID, "mixpanel_rejected_request", detail))
        result = Result(
            Outcome.INVALID,
            "mixpanel_rejected_event",
            str(record.get("message", ""))[:500],
            str(record.get("field", "")),
        )
        for position in positions:
            outcomes[chunk[position]] = result
    return outcomes


def _failed_positions(record: Any, chunk: list[int], insert_ids: list[str]) -> list[int]:
    """Positions in the request of one failed record: its `index`, unless the insert id it names (`insert_id`
    in the spec, `$insert_id` in the prose docs) is another event's; then the events with that insert id."""
    if not isinstance(record, dict):
        return []
    named = record.get("insert_id") or record.get("$insert_id")
    named = named if isinstance(named, str) else ""
    index = record.get("index")
    placed = isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(chunk)
    if placed and isinstance(index, int) and (not named or insert_ids[chunk[index]] == named):
        return [index]
    return [position for position, i in enumerate(chunk) if named and insert_ids[i] == named]


def _classify_status(response: requests.Response) -> Result:
    status = response.status_code
    body = _json_body(response)
    message = str(body.get("error", "") if isinstance(body, dict) else response.text[:200])[:500]
    if status == 429 or status >= 500:
        return Result(Outcome.TRANSIENT, f"mixpanel_{status}", message)
    if status in (401, 403, 404):
        return Result(Outcome.CONFIG, f"mixpanel_{status}", message)
    return Result(Outcome.INVALID, f"mixpanel_{status}", message)


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
