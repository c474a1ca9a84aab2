"""AWS Signature Version 4 for the JSON POSTs of aws_json.py.

Why by hand: botocore's `SigV4Auth` builds an `AWSRequest`, re-parses its URL twice and walks the
headers through `email.message` for every call: 0.13-0.16 ms of CPU per SendMessage, as much as
the receiver's own verify, parse and message together (docs/performance.md). A POST with a JSON
body, no query string and a handful of headers needs only the documented steps below, and the
derived signing key changes once a day. The tests check every signature against botocore's
signer and against AWS's published example.
(docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html)
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
# What botocore leaves unsigned: proxies and tracing may change these on the way.
UNSIGNED_HEADERS = frozenset({"user-agent", "x-amzn-trace-id", "expect", "transfer-encoding", "content-length"})


class SigV4Signer:
    """Signs requests to one service in one region; keeps the day's signing key per secret key.

    Thread-safe: the key cache is replaced whole, never changed in place.
    """

    def __init__(self, service: str, region: str) -> None:
        self.service = service
        self.region = region
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (secret key, day, signing key)

    def headers(
        self,
        credentials: Any,
        host: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float | None = None,
    ) -> dict[str, str]:
        """`headers` plus Host, X-Amz-Date, X-Amz-Security-Token (temporary credentials) and Authorization.

        `credentials` is botocore's frozen credentials (access_key, secret_key, token).
        """
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        day = amz_date[:8]
        signed_request = {"Host": host, **headers, "X-Amz-Date": amz_date}
        if credentials.token:
            signed_request["X-Amz-Security-Token"] = credentials.token
        canonical = {
            name.lower(): " ".join(str(value).split())
            for name, value in signed_request.items()
            if name.lower() not in UNSIGNED_HEADERS
        }
        names = sorted(canonical)
        signed_names = ";".join(names)
        canonical_request = "\n".join(
            (
                "POST",
                quote(path or "/", safe="/~"),
                "",
                "".join(f"{name}:{canonical[name]}\n" for name in names),
                signed_names,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(credentials.secret_key, day), string_to_sign.encode(), "sha256")
        signed_request["Authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature.hexdigest()}"
        )
        return signed_request

    def _signing_key(self, secret_key: str, day: str) -> bytes:
        cached_secret, cached_day, key = self._key
        if cached_secret == secret_key and cached_day == day:
            return key
        key = ("AWS4" + secret_key).encode()
        for step in (day, self.region, self.service, "aws4_request"):
            key = hmac.new(key, step.encode(), "sha256").digest()
        self._key = (secret_key, day, key)
        return key
