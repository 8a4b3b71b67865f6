"""Gateway API conformance "echo-basic" JSON, which `shadowdiff echo` also serves."""

from __future__ import annotations

from shadowdiff.markers.base import EchoMarkers, json_object, lower_headers, text_or_none

NAME = "echo-basic"


def extract(headers: tuple[tuple[str, str], ...], body: bytes) -> EchoMarkers | None:
    document = json_object(body)
    if document is None or not {"path", "method", "headers"} <= document.keys():
        return None
    if not ({"pod", "namespace", "service", "httpPort"} & document.keys()):
        return None
    seen = document["headers"] if isinstance(document["headers"], dict) else {}
    return EchoMarkers(
        format=NAME,
        service=text_or_none(document.get("service")),
        pod=text_or_none(document.get("pod")),
        path=text_or_none(document.get("path")),
        host=text_or_none(document.get("host")),
        method=text_or_none(document.get("method")),
        headers=lower_headers(seen.items()),
    )
