"""httpbin `/anything`: `args, data, headers, json, method, origin, url`. It hides
X-Forwarded-*, X-Real-Ip and X-Request-Id unless the request asks `?show_env=1`."""

from __future__ import annotations

from yarl import URL

from shadowdiff.markers.base import EchoMarkers, json_object, lower_headers, text_or_none

NAME = "httpbin"


def extract(headers: tuple[tuple[str, str], ...], body: bytes) -> EchoMarkers | None:
    document = json_object(body)
    if document is None or not {"args", "headers", "method", "origin", "url"} <= document.keys():
        return None
    seen = document["headers"] if isinstance(document["headers"], dict) else {}
    lowered = lower_headers(seen.items())
    url = text_or_none(document.get("url"))
    path = None
    if url:
        try:
            path = URL(url, encoded=True).raw_path_qs
        except ValueError:
            path = None
    return EchoMarkers(
        format=NAME,
        path=path,
        host=lowered.pop("host", (None,))[0],
        method=text_or_none(document.get("method")),
        headers=lowered,
    )
