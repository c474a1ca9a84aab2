"""Request bodies as Mixpanel's ingestion endpoints accept them, decoded into records (or why not)."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl

from .messages import Request
from .rules import MAX_REQUEST_BYTES

JSON_TYPES = ("application/json", "")
NDJSON_TYPE = "application/x-ndjson"
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Parsed:
    """A request body decoded as far as it goes: records, or why not."""

    records: list[Any] | None
    error: str | None = None
    status: int = 400
    uncompressed_bytes: int = 0
    form: dict[str, str] = field(default_factory=dict)


def parse_import(request: Request) -> Parsed:
    """An `/import` body: JSON array, NDJSON or the SDK's form `data=`, optionally gzip (at most 2 MiB inflated)."""
    encoding = (request.headers.get("Content-Encoding") or "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        return Parsed(None, f"unsupported Content-Encoding {encoding!r}")
    body = _inflated(request.body, encoding)
    if isinstance(body, Parsed):
        return body
    media = media_type(request.headers)
    try:
        text = body.decode("utf-8")
        if media == NDJSON_TYPE:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif media == FORM_TYPE:  # the mixpanel SDK's legacy `data=<json>`
            form = dict(parse_qsl(text, keep_blank_values=True))
            records = json.loads(form.get("data", ""))
        elif media in JSON_TYPES:
            records = json.loads(text)
        else:
            return Parsed(None, f"unsupported Content-Type {media!r}", 400, len(body))
    except (UnicodeDecodeError, ValueError) as exc:
        return Parsed(None, f"request body is not valid JSON: {exc}", 400, len(body))
    if not isinstance(records, list):
        return Parsed(None, "request body must be a JSON array of events", 400, len(body))
    return Parsed(records, uncompressed_bytes=len(body))


def parse_engage(request: Request) -> Parsed:
    """An `/engage` or `/groups` body: a JSON array or object, or form `data=` (plain or base64 JSON); never
    compressed ("This API does not support gzip encoding")."""
    return _parse_records(request, gzip_allowed=False)


def parse_track(request: Request) -> Parsed:
    """A `/track` body as the browser SDK sends it (form `data=`, base64 JSON by default) or a JSON array;
    `/track` takes gzip too ("Gzip allowed")."""
    return _parse_records(request, gzip_allowed=True)


def _parse_records(request: Request, *, gzip_allowed: bool) -> Parsed:
    encoding = (request.headers.get("Content-Encoding") or "").strip().lower()
    if encoding not in ("", "identity", *(("gzip",) if gzip_allowed else ())):
        return Parsed(None, f"Content-Encoding {encoding!r} is not supported by {request.path} (send it uncompressed)")
    body = _inflated(request.body, encoding) if encoding == "gzip" else request.body
    if isinstance(body, Parsed):
        return body
    media, form = media_type(request.headers), {}
    try:
        text = body.decode("utf-8")
        if media == FORM_TYPE:
            form = dict(parse_qsl(text, keep_blank_values=True))
            data = form.pop("data", "")
            try:
                records = json.loads(data)
            except ValueError:  # older SDKs base64-encode `data`
                records = json.loads(base64.b64decode(data, validate=True))
        else:
            records = json.loads(text)
    except (UnicodeDecodeError, ValueError, binascii.Error) as exc:
        return Parsed(None, f"request body is not valid JSON: {exc}", 400, len(body), form)
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        return Parsed(None, "request body must be a JSON array of records", 400, len(body), form)
    return Parsed(records, uncompressed_bytes=len(body), form=form)


def _inflated(body: bytes, encoding: str) -> bytes | Parsed:
    """The body, gunzipped when `encoding` says so, within Mixpanel's request limit; else why not."""
    if encoding == "gzip":
        try:
            body = _gunzip(body, MAX_REQUEST_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            return Parsed(None, f"could not decompress the gzip body: {exc}")
    if len(body) > MAX_REQUEST_BYTES:
        return Parsed(None, f"request exceeds max limit of {MAX_REQUEST_BYTES} bytes", 413, len(body))
    return body


def media_type(headers: Message) -> str:
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes, so a small gzip bomb cannot exhaust memory."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, limit)
    if not inflater.eof and len(out) < limit:
        raise EOFError("truncated gzip stream")
    return out
