"""The browser proxy's relay (the `Relay` port): one request forwarded to the residency's ingestion host.

`requests` with a pooled session (a warm proxy container reuses its TLS connection), short timeouts (the
browser SDK retries what fails), and no redirects followed: the browser gets Mixpanel's answer.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests
from requests.adapters import HTTPAdapter

from ..service.ports import RelayUnavailable


class MixpanelRelay:
    """The `Relay` port on `requests`, to one base URL (https://api.mixpanel.com, api-eu, api-in, or a local one)."""

    def __init__(self, base_url: str, *, timeout: tuple[float, float] = (3.05, 8.0)) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def forward(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        url = self.base_url + path + (f"?{query}" if query else "")
        try:
            response = self.session.request(
                method,
                url,
                headers=dict(headers),
                data=body or None,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise RelayUnavailable(type(error).__name__) from None
        return response.status_code, response.headers.get("Content-Type", ""), response.content
