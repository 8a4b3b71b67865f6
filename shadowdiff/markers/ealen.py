"""ealen/echo-server JSON: `{host: {hostname}, http: {method, originalUrl}, request: {headers}}`."""

from __future__ import annotations

from typing import Any

from shadowdiff.markers.base import EchoMarkers, json_object, lower_headers, text_or_none

NAME = "ealen-echo-server"


def extract(headers: tuple[tuple[str, str], ...], body: bytes) -> EchoMarkers | None:
    document = json_object(body)
    if document is None:
        return None
    host, http, request = (document.get(key) for key in ("host", "http", "request"))
    if not (isinstance(host, dict) and isinstance(http, dict) and isinstance(request, dict)):
        return None
    raw_headers = request.get("headers")
    seen: dict[str, Any] = raw_headers if isinstance(raw_headers, dict) else {}
    lowered = lower_headers(seen.items())
    return EchoMarkers(
        format=NAME,
        pod=text_or_none(host.get("hostname")),
        path=text_or_none(http.get("originalUrl")),
        host=(lowered.pop("host", (None,))[0]),
        method=text_or_none(http.get("method")),
        headers=lowered,
    )
