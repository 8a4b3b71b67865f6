"""traefik/whoami: the text answer (`Hostname:` first, then the request as received) and the
JSON answer of its `/api` path."""

from __future__ import annotations

from shadowdiff.markers.base import EchoMarkers, json_object, lower_headers, text_or_none

NAME = "whoami"


def _from_text(body: bytes) -> EchoMarkers | None:
    text = body.decode("utf-8", "replace")
    if not text.startswith("Hostname: "):
        return None
    lines = text.splitlines()
    pod = lines[0].removeprefix("Hostname: ").strip()
    method = path = host = None
    headers: list[tuple[str, str]] = []
    request_line_seen = False
    for line in lines[1:]:
        if not request_line_seen:
            parts = line.split(" ")
            if len(parts) == 3 and parts[2].startswith("HTTP/"):
                method, path = parts[0], parts[1]
                request_line_seen = True
            continue
        if not line.strip():
            break
        name, _, value = line.partition(":")
        if name.lower() == "host":
            host = value.strip()
        else:
            headers.append((name, value.strip()))
    if not request_line_seen:
        return None
    return EchoMarkers(NAME, None, pod, path, host, method, lower_headers(headers))


def _from_api(body: bytes) -> EchoMarkers | None:
    document = json_object(body)
    if document is None or not {"hostname", "headers", "url", "method"} <= document.keys():
        return None
    seen = document["headers"] if isinstance(document["headers"], dict) else {}
    return EchoMarkers(
        format=f"{NAME}-api",
        pod=text_or_none(document.get("hostname")),
        path=text_or_none(document.get("url")),
        host=text_or_none(document.get("host")),
        method=text_or_none(document.get("method")),
        headers=lower_headers(seen.items()),
    )


def extract(headers: tuple[tuple[str, str], ...], body: bytes) -> EchoMarkers | None:
    return _from_text(body) or _from_api(body)
