"""What every recorded source yields, one item per line or entry: a request as it was recorded,
or the reason one was skipped. Plain data; the readers fill it, `select` turns it into specs."""

from __future__ import annotations

from typing import Literal, NamedTuple

SkipReason = Literal[
    "malformed",  # the line or entry is not what the format says
    "never_reached_backend",  # no upstream served it (`-`), or a 400 for a bad request line
    "unknown_host",  # the source has no host and nothing maps it to one
    "unsafe",  # a method or body that may change state, not allowed by the scenario
    "not_sendable",  # control characters, non-ASCII header values...
    "filtered",  # left out by `select`
    "sampled_out",  # left out by `select.sample` or `select.per_route`
]
SKIP_REASONS: tuple[SkipReason, ...] = (
    "malformed",
    "never_reached_backend",
    "unknown_host",
    "unsafe",
    "not_sendable",
    "filtered",
    "sampled_out",
)


class Recorded(NamedTuple):
    """One request as a source recorded it. Immutable plain data, as a named tuple rather
    than a frozen dataclass: one is built per log line, and building a frozen dataclass was
    the largest single cost of reading a log (benchmarks/sources.py)."""

    location: str  # `file:line` or `file#entry`: where to look when it matters
    method: str
    target: str  # path and query, as recorded (percent-encoding kept)
    host: str | None = None  # None when the source does not say (ingress-nginx upstreaminfo)
    scheme: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    time_s: float | None = None  # seconds since the epoch when it was recorded
    upstream: str | None = None  # ingress-nginx `$proxy_upstream_name`: namespace-service-port
    http_version: str | None = None
    status: int | None = None  # what the recorded entry point answered


class Skipped(NamedTuple):
    """A line or entry that is not replayed, and why (built for most lines of a sampled log,
    so a named tuple for the same reason as `Recorded`)."""

    location: str
    reason: SkipReason
    detail: str  # what was expected, for a person; never a header value
