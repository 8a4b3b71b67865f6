"""Echo markers declared in the scenario: each field read by JSON pointer, header or regex."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shadowdiff.json_document import NOT_JSON, load_json
from shadowdiff.markers.base import EchoMarkers

if TYPE_CHECKING:
    from shadowdiff.scenario.model import MarkerSource, MarkerSpec

_FIELDS = ("service", "pod", "workload", "path", "host", "method")


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer; None when any step is missing."""
    if pointer == "":
        return document
    current = document
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return None
    return current


@dataclass(frozen=True)
class CustomExtractor:
    spec: MarkerSpec

    def _read(
        self, source: MarkerSource, headers: tuple[tuple[str, str], ...], body: bytes, document: Any
    ) -> str | None:
        if source.header is not None:
            wanted = source.header.lower()
            return next((value for name, value in headers if name.lower() == wanted), None)
        if source.json_pointer is not None:
            value = resolve_pointer(document, source.json_pointer)
            return None if value is None else str(value)
        assert source.regex is not None
        match = re.search(source.regex, body.decode("utf-8", "replace"))
        if match is None:
            return None
        return (
            match.group("value")
            if "value" in match.re.groupindex
            else match.group(match.re.groups and 1)
        )

    def __call__(self, headers: tuple[tuple[str, str], ...], body: bytes) -> EchoMarkers | None:
        document: Any = None
        if any(
            getattr(self.spec, f) is not None and getattr(self.spec, f).json_pointer is not None
            for f in _FIELDS
        ):
            loaded = load_json(body)
            document = None if loaded is NOT_JSON else loaded
        found = {
            field: self._read(source, headers, body, document)
            for field in _FIELDS
            if (source := getattr(self.spec, field)) is not None
        }
        if not any(value is not None for value in found.values()):
            return None
        return EchoMarkers(
            format=self.spec.name,
            service=found.get("service"),
            pod=found.get("pod"),
            workload_name=found.get("workload"),
            path=found.get("path"),
            host=found.get("host"),
            method=found.get("method"),
        )
