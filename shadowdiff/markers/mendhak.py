"""mendhak/http-https-echo JSON: `path` (no query), lower-cased `headers`, `os.hostname`."""

from __future__ import annotations

from urllib.parse import urlencode

from shadowdiff.markers.base import EchoMarkers, json_object, lower_headers, text_or_none

NAME = "http-https-echo"


def extract(headers: tuple[tuple[str, str], ...], body: bytes) -> EchoMarkers | None:
    document = json_object(body)
    if document is None or not {"path", "headers", "method", "os"} <= document.keys():
        return None
    seen = document["headers"] if isinstance(document["headers"], dict) else {}
    lowered = lower_headers(seen.items())
    path = text_or_none(document.get("path"))
    query = document.get("query")
    if path is not None and isinstance(query, dict) and query:
        path = f"{path}?{urlencode(query, doseq=True)}"
    os_info = document["os"] if isinstance(document["os"], dict) else {}
    return EchoMarkers(
        format=NAME,
        pod=text_or_none(os_info.get("hostname")),
        path=path,
        host=text_or_none(document.get("hostname")) or lowered.pop("host", (None,))[0],
        method=text_or_none(document.get("method")),
        headers={name: values for name, values in lowered.items() if name != "host"},
    )
