"""How long the backend took, as the answer says it, so that an entry point's own time (its
*edge* time: the total minus the backend's) can be told from its backend's. Pure parsing of
response headers on the ground floor; the report's collector reads it.

Two sources, the first usable one wins:

- `Server-Timing` (W3C Server Timing): the first metric named `upstream`, `backend`, `app` or
  `total` (in that order of preference, names compared case-insensitively) with a `dur`
  parameter in milliseconds. A backend sets it, so both sides carry the same backend's word,
  measured alike; `shadowdiff echo` sends `app;dur=`.
- `X-Envoy-Upstream-Service-Time`: Envoy's time for the upstream (the backend plus the hop to
  it), whole milliseconds.

A value is used only when it is one finite, non-negative number of at most an hour, said
once: a repeated header or metric, a second `dur`, NaN, a sign, an exponent, text, or a
header longer than a real one is *ignored* (counted as such, never guessed at), as is a backend
time longer than the whole exchange measured by the client.
"""

from __future__ import annotations

import re
from typing import Final, Literal, NamedTuple

BackendTimeSource = Literal["server-timing", "x-envoy-upstream-service-time", "ignored"]
SERVER_TIMING: Final = "server-timing"
ENVOY_UPSTREAM_TIME: Final = "x-envoy-upstream-service-time"
# Server-Timing metrics that name the backend's own time, most specific first.
_TIMING_LENGTH: Final = len(SERVER_TIMING)
_ENVOY_LENGTH: Final = len(ENVOY_UPSTREAM_TIME)
BACKEND_METRICS: Final = ("upstream", "backend", "app", "total")
MAX_BACKEND_MS: Final = 3_600_000.0
# Real Server-Timing fields are a few hundred bytes; a longer one is not parsed at all, so a
# hostile answer cannot make every pair cost a long scan.
MAX_FIELD_CHARS: Final = 4096
# A plain decimal: no sign, no exponent, no NaN or infinity (which float() would accept).
_DECIMAL: Final = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,9})?")


class BackendTime(NamedTuple):
    ms: float | None  # None when `source` is "ignored"
    source: BackendTimeSource


class EdgeSplit(NamedTuple):
    """One answer's total time split in two, in microseconds."""

    edge_us: int  # the entry point's own time and the network: total minus backend
    backend_us: int
    source: BackendTimeSource


def _milliseconds(text: str) -> float | None:
    text = text.strip(" \t").strip('"')
    if not _DECIMAL.fullmatch(text):
        return None
    value = float(text)
    return value if value <= MAX_BACKEND_MS else None


def _split(text: str, separator: str) -> list[str]:
    """`text` split at each `separator` outside a quoted string (RFC 9110 section 5.6.4, with
    its backslash escapes). One pass: a look-ahead pattern would take quadratic time on a
    hostile field of quotes and commas."""
    if '"' not in text:
        return text.split(separator)
    parts, start, quoted, escaped = [], 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _server_timing(values: list[str]) -> BackendTime | None:
    """The backend time a Server-Timing field says, "ignored", or None when it names none of
    `BACKEND_METRICS`."""
    if sum(len(value) for value in values) > MAX_FIELD_CHARS:
        return BackendTime(None, "ignored")
    durations: dict[str, list[str | None]] = {}
    for value in values:
        for metric in _split(value, ","):
            name, _, rest = metric.partition(";")
            name = name.strip(" \t").lower()
            if name not in BACKEND_METRICS:
                continue
            found = []
            for parameter in _split(rest, ";"):
                key, _, said = parameter.partition("=")
                if key.strip(" \t").lower() == "dur":
                    found.append(said)
            durations.setdefault(name, []).append(found[0] if len(found) == 1 else None)
    for name in BACKEND_METRICS:
        if name in durations:
            given = durations[name]
            ms = _milliseconds(given[0]) if len(given) == 1 and given[0] is not None else None
            return BackendTime(ms, "server-timing" if ms is not None else "ignored")
    return None


def backend_time(headers: tuple[tuple[str, str], ...]) -> BackendTime | None:
    """What the answer says its backend took, "ignored" when it says so unusably, or None when
    it says nothing."""
    timing: list[str] = []
    envoy: list[str] = []
    for name, value in headers:
        # Most answers hold neither: their names are told apart by length before any is
        # lower-cased (this runs for every answer of a run).
        if len(name) == _TIMING_LENGTH and name.lower() == SERVER_TIMING:
            timing.append(value)
        elif len(name) == _ENVOY_LENGTH and name.lower() == ENVOY_UPSTREAM_TIME:
            envoy.append(value)
    if not timing and not envoy:
        return None
    found = _server_timing(timing) if timing else None
    if found is not None and found.ms is not None:
        return found
    if envoy:
        ms = _milliseconds(envoy[0]) if len(envoy) == 1 else None
        if ms is not None:
            return BackendTime(ms, "x-envoy-upstream-service-time")
        return BackendTime(None, "ignored")
    return found


def edge_split(headers: tuple[tuple[str, str], ...], total_us: int) -> EdgeSplit | None:
    """`total_us` (the client's measure of the whole exchange) split into the edge's and the
    backend's time; "ignored" (with zero times) when the backend time is unusable or longer
    than the total, None when the answer says nothing."""
    found = backend_time(headers)
    if found is None:
        return None
    if found.ms is None or found.ms * 1000 > total_us:
        return EdgeSplit(0, 0, "ignored")
    backend_us = int(found.ms * 1000)
    return EdgeSplit(total_us - backend_us, backend_us, found.source)
