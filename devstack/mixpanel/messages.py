"""A request as the local Mixpanel's endpoints see it, and a reply in Mixpanel's shapes.

The HTTP adapter builds `Request`s and writes `Reply`s; everything between is plain Python, so a new endpoint
is a function from one to the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from .rules import compact_json


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    client_ip: str = ""  # the connection's peer address


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    disconnect: bool = False  # close the connection without answering
    extra_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> Reply:
        return cls(status, compact_json(payload).encode())


# Mixpanel's own `status` words (Python 3.13 renamed 413 to "Content Too Large"; Mixpanel did not).
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def import_error(strict: bool, status: int, message: str) -> Reply:
    """`/import`'s error shape: strict `{"code","error","status"}`; otherwise `{"error","status":0}`."""
    if strict:
        return Reply.json(status, {"code": status, "error": message, "status": REASONS.get(status, "Error")})
    return Reply.json(status, {"error": message, "status": 0})
