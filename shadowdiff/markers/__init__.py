"""Echo markers: read what the backend saw from an echo backend's answer.

One module per format, each with `NAME` and `extract(headers, body) -> EchoMarkers | None`;
`BUILTIN` is the registry, tried in order. Adding a format is one new file and one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shadowdiff.markers import ealen, echo_basic, httpbin, mendhak, whoami
from shadowdiff.markers.base import EchoMarkers, pod_workload

Extractor = Callable[[tuple[tuple[str, str], ...], bytes], EchoMarkers | None]

BUILTIN: tuple[Extractor, ...] = (
    echo_basic.extract,
    ealen.extract,
    mendhak.extract,
    httpbin.extract,
    whoami.extract,
)


def extract_markers(
    headers: tuple[tuple[str, str], ...], body: bytes, extractors: Sequence[Extractor] = BUILTIN
) -> EchoMarkers | None:
    """The first format that recognises the answer, or None."""
    for extractor in extractors:
        markers = extractor(headers, body)
        if markers is not None:
            return markers
    return None


__all__ = ["BUILTIN", "EchoMarkers", "Extractor", "extract_markers", "pod_workload"]
