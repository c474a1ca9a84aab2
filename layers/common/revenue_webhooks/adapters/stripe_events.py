"""The `StripeEvents` port on Stripe's `GET /v1/events` through the official library, 100 a page, newest first.

Each page is one request under `stripe_api.rate_limited` (plain 429s are not retried by the library); 5xx,
timeouts and dropped connections are the library's to retry. What still fails is `LookupUnavailable`, so a
catch-up run ends without moving its checkpoint; a refused key (401/403) is raised as it is: a
configuration error the function's error alarm reports.

Restricted-key permission: Events, read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from ..service.ports import LookupUnavailable
from .stripe_api import rate_limited

PAGE = 100  # Stripe's largest page


class StripeEventList:
    """Stripe's events through `client` (a `stripe.StripeClient`, adapters/stripe_api.stripe_client)."""

    def __init__(self, client: Any, *, rate_limit_wait_s: float = 60.0) -> None:
        self.client = client
        self.rate_limit_wait_s = rate_limit_wait_s

    def events(
        self, types: Sequence[str], created_gte: int, created_lt: int, *, deadline: float | None = None
    ) -> Iterator[dict[str, Any]]:
        import stripe

        params: dict[str, Any] = {
            "types": list(types),
            "created": {"gte": created_gte, "lt": created_lt},
            "limit": PAGE,
        }
        while True:
            try:
                page = self._page(params, deadline)
            except (stripe.RateLimitError, stripe.APIConnectionError, stripe.APIError) as error:
                raise LookupUnavailable(
                    f"{type(error).__name__}: {getattr(error, 'user_message', None) or error}"
                ) from error
            for event in page.data:
                yield event.to_dict(for_json=True)
            if not page.has_more or not page.data:
                return
            params["starting_after"] = page.data[-1].id

    def _page(self, params: dict[str, Any], deadline: float | None) -> Any:
        wait_until = time.monotonic() + self.rate_limit_wait_s
        return rate_limited(
            lambda: self.client.v1.events.list(params=dict(params)),
            deadline=min(wait_until, deadline) if deadline is not None else wait_until,
        )
