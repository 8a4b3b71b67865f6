"""shadowdiff's own line format for recorded requests, one JSON object per line, which every
other reader can export (`shadowdiff sources export`) so that a capture can be filtered with jq:

    {"method": "GET", "url": "https://shop.example.com/cart?x=1",
     "headers": [["Accept", "text/html"]], "body": "...", "body_base64": "...",
     "time": 1733137200.5, "http_version": "1.1", "status": 200, "upstream": "shop-web-80"}

`time` is seconds since the epoch; milliseconds, microseconds and nanoseconds are recognised by
their size, and an RFC 3339 string is read too.

Only `method` and `url` are required; `url` may be a path when the scenario maps hosts."""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from shadowdiff.sources.record import Recorded, Skipped


def _headers(value: Any) -> tuple[tuple[str, str], ...] | None:
    if isinstance(value, dict):
        return tuple((str(k), str(v)) for k, v in value.items())
    if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        return tuple((str(k), str(v)) for k, v in value)
    return None if value is not None else ()


# Epoch numbers are told apart by size: seconds since 1970 stay under 1e11 until the year 5138,
# while today's milliseconds (JavaScript's Date.now()) are near 1.7e12, microseconds near
# 1.7e15 and nanoseconds near 1.7e18.
_EPOCH_SCALES = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))


def _epoch_s(value: Any) -> float | None:
    """Seconds since the epoch from `time`: a number of seconds, milliseconds, microseconds or
    nanoseconds, or an RFC 3339 string; None for anything else (JSON allows NaN and Infinity
    here: no moment, so no time)."""
    if isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        return None
    for at_least, per_second in _EPOCH_SCALES:
        if number >= at_least:
            return number / per_second
    return number


def recorded_from_json(document: Any, location: str) -> Recorded | Skipped:
    if not isinstance(document, dict):
        return Skipped(location, "malformed", "one JSON object per line")
    method, url = document.get("method"), document.get("url")
    if not isinstance(method, str) or not isinstance(url, str) or not url:
        return Skipped(location, "malformed", "string `method` and `url`")
    headers = _headers(document.get("headers"))
    if headers is None:
        return Skipped(location, "malformed", "`headers` as [[name, value], ...] or an object")
    body: bytes | None = None
    if isinstance(document.get("body_base64"), str):
        try:
            body = base64.b64decode(document["body_base64"], validate=True)
        except (binascii.Error, ValueError):
            return Skipped(location, "malformed", "`body_base64` in base64")
    elif isinstance(document.get("body"), str):
        body = document["body"].encode("utf-8", "surrogatepass")
    try:
        parts = urlsplit(url)
    except ValueError:  # `http://[::1/`: a bracket that never closes
        return Skipped(location, "malformed", "`url` as an absolute URL or a request target")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    time = document.get("time")
    status = document.get("status")
    return Recorded(
        location=location,
        method=method,
        target=target if parts.netloc else url,
        host=parts.netloc or None,
        scheme=parts.scheme or None,
        headers=headers,
        body=body,
        time_s=_epoch_s(time),
        upstream=document.get("upstream") if isinstance(document.get("upstream"), str) else None,
        http_version=str(document["http_version"]) if document.get("http_version") else None,
        status=status if isinstance(status, int) else None,
    )


def read_jsonl(lines: Iterable[str], file: str) -> Iterator[Recorded | Skipped]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        location = f"{file}:{number}"
        try:
            document = json.loads(line)
        except (ValueError, RecursionError):
            yield Skipped(location, "malformed", "one JSON object per line")
            continue
        yield recorded_from_json(document, location)


def export_line(recorded: Recorded, url: str, headers: tuple[tuple[str, str], ...]) -> str:
    """One line of the format above for `recorded`, with the URL and headers the caller has
    settled on (credentials already removed: an export is an output, and outputs never hold
    them)."""
    document: dict[str, Any] = {"method": recorded.method, "url": url}
    if headers:
        document["headers"] = [list(header) for header in headers]
    if recorded.body is not None:
        try:
            document["body"] = recorded.body.decode("utf-8")
        except UnicodeDecodeError:
            document["body_base64"] = base64.b64encode(recorded.body).decode("ascii")
    for key, value in (
        ("time", recorded.time_s),
        ("http_version", recorded.http_version),
        ("status", recorded.status),
        ("upstream", recorded.upstream),
        ("source", recorded.location),
    ):
        if value is not None:
            document[key] = value
    return json.dumps(document, ensure_ascii=False)
