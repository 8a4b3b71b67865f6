"""HAR 1.2 files as browsers and proxies export them (Chrome, Firefox, Safari, Charles,
Insomnia): a byte-order mark, HTTP/2 pseudo-headers in header lists, bodies as text, base64 or
form params. A HAR file is one JSON document, so it is read whole (up to MAX_HAR_BYTES); each
entry that does not hold a request is skipped with what was expected."""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import quote_plus, urlsplit

from shadowdiff.sources.record import Recorded, Skipped

MAX_HAR_BYTES: Final = 512 * 1024**2


def _body(request: dict[str, Any]) -> bytes | None:
    post = request.get("postData")
    if not isinstance(post, dict):
        return None
    text = post.get("text")
    if isinstance(text, str):
        if post.get("encoding") == "base64":  # Charles and some proxies
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                return None
        return text.encode("utf-8", "surrogatepass")
    params = post.get("params")
    if isinstance(params, list):  # form posts exported as fields (Firefox, Insomnia)
        pairs = [
            f"{quote_plus(str(p.get('name', '')))}={quote_plus(str(p.get('value', '')))}"
            for p in params
            if isinstance(p, dict)
        ]
        return "&".join(pairs).encode("ascii")
    return None


def _entry(entry: Any, location: str) -> Recorded | Skipped:
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict):
        return Skipped(location, "malformed", "an entry with a request")
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        return Skipped(location, "malformed", "a request with a method and a url")
    try:
        parts = urlsplit(url)
    except ValueError:
        return Skipped(location, "malformed", "an absolute URL")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return Skipped(location, "malformed", "an http:// or https:// URL")
    headers = []
    authority = None
    for header in request.get("headers") or []:
        if not isinstance(header, dict):
            continue
        name, value = str(header.get("name", "")), str(header.get("value", ""))
        if name == ":authority":
            authority = value
        if name.startswith(":"):
            continue  # HTTP/2 pseudo-headers: rebuilt from the URL, never replayed as headers
        headers.append((name, value))
    started = entry.get("startedDateTime")
    time_s = None
    if started is not None:
        # HAR 1.2 requires it, as ISO 8601: an entry with another value is malformed.
        try:
            time_s = datetime.datetime.fromisoformat(
                str(started).replace("Z", "+00:00")
            ).timestamp()
        except (ValueError, OverflowError):
            return Skipped(location, "malformed", "startedDateTime in ISO 8601")
    response = entry.get("response")
    status = response.get("status") if isinstance(response, dict) else None
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return Recorded(
        location=location,
        method=method,
        target=target,
        host=parts.hostname and (authority or parts.netloc).rpartition("@")[2],
        scheme=parts.scheme,
        headers=tuple(headers),
        body=_body(request),
        time_s=time_s,
        http_version=str(request.get("httpVersion") or "").upper().removeprefix("HTTP/") or None,
        status=status if isinstance(status, int) and status > 0 else None,
    )


def read_har(data: bytes, file: str) -> Iterator[Recorded | Skipped]:
    """Each entry of a HAR document."""
    if len(data) > MAX_HAR_BYTES:
        yield Skipped(file, "malformed", f"a HAR file under {MAX_HAR_BYTES // 1024**2} MiB")
        return
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        yield Skipped(file, "malformed", "a HAR file (JSON with log.entries)")
        return
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        yield Skipped(file, "malformed", "a HAR file (JSON with log.entries)")
        return
    for index, entry in enumerate(entries):
        yield _entry(entry, f"{file}#entry{index + 1}")
