"""W3C Trace Context (https://www.w3.org/TR/trace-context/, version 00): the `traceparent` each
request carries, so that a pair can be looked up in an APM on both data planes. Pure helpers on
the ground floor: the engine makes the ids, sources drop recorded ones, the comparison sets the
echo of them aside.

One trace id per pair, shared by both sides; each request its own span id (the baseline's, the
candidate's, and the noise calibration's second baseline request). The sampled flag is set: an
OpenTelemetry SDK or a data plane behind the entry point samples by its parent by default
(ParentBased), and an unsampled parent would leave nothing in the APM to look up.
"""

from __future__ import annotations

import functools
import os
import random
import re
from typing import Final, NamedTuple

TRACEPARENT: Final = "traceparent"
# Sampled (bit 0 of trace-flags, section 3.2.2.5).
SAMPLED_FLAGS: Final = "01"
# version-trace_id-parent_id-flags, lower-case hex (section 3.2.2). Version ff is invalid;
# a later version may append fields after a dash, which a version-00 reader ignores.
_TRACEPARENT_FORMAT: Final = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-"
    r"(?P<flags>[0-9a-f]{2})(?:-[^\s]*)?"
)
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16
# Headers that carry a trace's identity across a hop: W3C's, B3's (Zipkin; Envoy and Istio
# propagate them) and Jaeger's. A recorded request's values name a real user's trace, long over.
TRACE_CONTEXT_HEADERS: Final = frozenset(
    {
        "traceparent",
        "tracestate",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-b3-flags",
        "uber-trace-id",
    }
)


class TraceParent(NamedTuple):
    trace_id: str  # 32 lower-case hex digits, not all zero
    span_id: str  # 16 lower-case hex digits, not all zero (the spec's parent-id)


# Ids come from a generator seeded from the system's source in each process (never from
# `--seed`: two runs must not share trace ids), and seeded again in a forked child, which would
# otherwise make its parent's ids. A system call per id cost more than the rest of a pair's
# trace context together.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_trace_id() -> str:
    """128 random bits as lower-case hex, never all zero."""
    bits = 0
    while not bits:
        bits = _ids.getrandbits(128)
    return f"{bits:032x}"


def new_span_id() -> str:
    """64 random bits as lower-case hex, never all zero."""
    bits = 0
    while not bits:
        bits = _ids.getrandbits(64)
    return f"{bits:016x}"


def traceparent(trace_id: str, span_id: str) -> str:
    """The header value: version 00, sampled."""
    return f"00-{trace_id}-{span_id}-{SAMPLED_FLAGS}"


# The values `new_pair_trace` made: valid by construction, so checking one (the transport does
# before writing it) is a lookup, and reading its ids back (the comparison and the pair record
# read its span) is slicing. Emptied when full; a value no longer here is parsed like any other.
_MADE: set[str] = set()
_MADE_KEPT: Final = 4096


def new_pair_trace(requests: int) -> tuple[str, list[str]]:
    """A new trace id for one pair and the traceparent of each of its `requests` (each with a
    span id of its own).

    One draw of random bits for all the ids: this runs for every pair of a run."""
    id_bytes = 16 + 8 * requests
    while True:
        digits = _ids.getrandbits(8 * id_bytes).to_bytes(id_bytes, "big").hex()
        # Drawn again when the trace id is zero, or when sixteen zeros stand anywhere among
        # the span ids (a zero span id, and a few harmless others): once in 2**64 draws.
        if not digits.startswith(_ZERO_TRACE) and _ZERO_SPAN not in digits[32:]:
            break
    trace_id = digits[:32]
    if len(_MADE) + requests > _MADE_KEPT:
        _MADE.clear()
    values = [
        f"00-{trace_id}-{digits[at : at + 16]}-{SAMPLED_FLAGS}"
        for at in range(32, 2 * id_bytes, 16)
    ]
    _MADE.update(values)
    return trace_id, values


def parse_traceparent(value: str) -> TraceParent | None:
    """The trace and span ids of a valid `traceparent` value, or None (the spec's rule for an
    invalid one: as if absent). Any string is safe to pass."""
    if value in _MADE:
        return TraceParent(value[3:35], value[36:52])
    return _parsed(value)


def is_traceparent(value: str) -> bool:
    """Whether `value` is a valid `traceparent` (`parse_traceparent` would read it)."""
    return value in _MADE or _parsed(value) is not None


# Values not made here (a request's own header, a recorded one) are read more than once too.
@functools.lru_cache(maxsize=256)
def _parsed(value: str) -> TraceParent | None:
    match = _TRACEPARENT_FORMAT.fullmatch(value.strip(" \t")) if len(value) < 512 else None
    if match is None or match["version"] == "ff":
        return None
    if match["version"] == "00" and len(value.strip(" \t")) != 55:
        return None  # version 00 has exactly four fields
    trace_id, span_id = match["trace"], match["span"]
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id)


def written_traceparent(headers: tuple[tuple[str, str], ...]) -> str | None:
    """The `traceparent` a request's own headers set, or None."""
    for name, value in headers:
        if name.lower() == TRACEPARENT:
            return value
    return None
