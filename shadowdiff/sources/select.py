"""From recorded requests to request specs: hygiene, host resolution, safety, filters, breadth
per route template and sampling, with every request that is not replayed counted by reason.
Pure, and streaming: it keeps at most `per_route` specs per template and the counts.

Hygiene (what a replay must not copy): hop-by-hop headers, Host and `:authority`, and
Content-Length are rebuilt by the transport; a recorded trace context (traceparent, B3) names a
real user's trace and is never replayed (the run sends its own); cookies, authorization, API keys
and tokens from a capture belong to a real user and are replayed only when the scenario says
`replay_credentials: true` (they are never printed either way).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from yarl import URL

from shadowdiff.redaction import DEFAULT_SENSITIVE_HEADERS
from shadowdiff.routes import path_template
from shadowdiff.sources.record import Recorded, Skipped, SkipReason
from shadowdiff.spec import RequestSpec
from shadowdiff.trace import TRACE_CONTEXT_HEADERS
from shadowdiff.wire import (
    AUTOMATIC_HEADERS,
    CONNECTION_HEADERS,
    WireError,
    prepare_url,
    refusal,
    unsafe_reason,
)

# Never replayed: connection-specific fields, and what the transport writes itself.
HOP_BY_HOP: Final = CONNECTION_HEADERS | AUTOMATIC_HEADERS
# Every header a report hides (API keys, tokens, CSRF tokens, cookies, authorization) is a
# credential a real user sent: none is replayed unless the scenario says so.
CREDENTIAL_HEADERS: Final = DEFAULT_SENSITIVE_HEADERS
# A recorded trace context names a real user's trace, long over: replayed, it would attach the
# replay to that trace in the APM, or mix its id with the fresh one shadowdiff sends.
_ALWAYS_DROPPED: Final = HOP_BY_HOP | TRACE_CONTEXT_HEADERS
_NOT_REPLAYED: Final = _ALWAYS_DROPPED | CREDENTIAL_HEADERS  # unless replay_credentials
# Templates named in the report: the busiest, so that a huge log keeps a small report.
TEMPLATES_SHOWN: Final = 200


@dataclass(frozen=True, slots=True)
class Selection:
    """The scenario's `select` section and the source's own settings, resolved."""

    hosts_by_upstream: Mapping[str, str] = field(default_factory=dict)
    default_host: str | None = None
    default_scheme: str = "https"
    methods: frozenset[str] | None = None
    hosts: tuple[str, ...] = ()  # globs
    paths_exclude: tuple[str, ...] = ()  # globs
    per_route: int | None = None
    sample_share: float | None = None  # 0..1, deterministic by the request's location
    sample_count: int | None = None  # the first N that pass every other rule
    allow_unsafe: bool = False
    replay_credentials: bool = False
    # Specs held in memory for one run; past it, requests are counted as sampled out. None
    # for a stream that holds nothing (`sources export`).
    max_kept: int | None = 100_000


@dataclass
class SourceSummary:
    """What a source held and what became of it: the report's `sources` section."""

    name: str
    lines: int = 0
    replayed: int = 0
    skipped: Counter[SkipReason] = field(default_factory=Counter)
    templates: Counter[str] = field(default_factory=Counter)
    first_problems: list[str] = field(default_factory=list)  # `file:line: what was expected`
    # Requests replayed without the trace context they were recorded with (traceparent, B3...).
    trace_context_dropped: int = 0

    def skip(self, skipped: Skipped) -> None:
        self.skipped[skipped.reason] += 1
        if skipped.reason == "malformed" and len(self.first_problems) < 5:
            self.first_problems.append(f"{skipped.location}: expected {skipped.detail}")

    def as_report(self) -> dict[str, object]:
        return {
            "name": self.name,
            "lines": self.lines,
            "replayed": self.replayed,
            "skipped": dict(sorted(self.skipped.items())),
            "templates": dict(self.templates.most_common(TEMPLATES_SHOWN)),
            "templates_total": len(self.templates),
            "problems": list(self.first_problems),
            "trace_context_dropped": self.trace_context_dropped,
        }


def _sampled_out(location: str, share: float) -> bool:
    digest = hashlib.blake2b(location.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 >= share


def select(
    recorded: Iterable[Recorded | Skipped], selection: Selection, summary: SourceSummary
) -> Iterator[RequestSpec]:
    """The specs to replay, in recorded order; `summary` counts everything else."""
    for _, spec in select_recorded(recorded, selection, summary):
        yield spec


def select_recorded(
    recorded: Iterable[Recorded | Skipped], selection: Selection, summary: SourceSummary
) -> Iterator[tuple[Recorded, RequestSpec]]:
    """As `select`, each spec beside the recorded request it came from (for `export`).

    The rules run cheapest first, so that a large log is mostly decided before the URL is
    built and checked: host, filters and safety; then `sample: N%` and `per_route`; then
    whether the request can be sent at all; then `sample: N` (which counts sendable requests
    only) and the cap on kept requests. A request that is both past its route's quota and not
    sendable is counted as sampled out."""
    per_template: Counter[str] = Counter()
    per_route = selection.per_route
    share = selection.sample_share
    skipped = summary.skipped
    kept = 0
    for item in recorded:
        summary.lines += 1
        if isinstance(item, Skipped):
            summary.skip(item)
            continue
        resolved = _resolve(item, selection)
        if isinstance(resolved, Skipped):
            summary.skip(resolved)
            continue
        template = resolved.template
        if (share is not None and _sampled_out(item.location, share)) or (
            per_route is not None and per_template[template] >= per_route
        ):
            skipped["sampled_out"] += 1
            continue
        spec = _spec(item, resolved, selection)
        if isinstance(spec, Skipped):
            summary.skip(spec)
            continue
        if selection.sample_count is not None and kept >= selection.sample_count:
            skipped["sampled_out"] += 1
            continue
        if selection.max_kept is not None and kept >= selection.max_kept:
            if not skipped["sampled_out"]:
                summary.first_problems.append(
                    f"{item.location}: more than {selection.max_kept:,} requests selected; the "
                    "rest are counted, not replayed (use select.per_route or select.sample)"
                )
            skipped["sampled_out"] += 1
            continue
        per_template[template] += 1
        kept += 1
        summary.replayed += 1
        summary.templates[template] += 1
        summary.trace_context_dropped += resolved.trace_dropped
        yield item, spec


@dataclass(slots=True)  # not frozen: built once per line, and a frozen __init__ costs more
class _Resolved:
    """What the cheap rules settled for one recorded request."""

    host: str
    headers: tuple[tuple[str, str], ...]
    unsafe: str | None
    template: str
    trace_dropped: bool = False  # a recorded trace context was left out


def _resolve(item: Recorded, selection: Selection) -> _Resolved | Skipped:
    """Host, filters, hygiene and safety: everything decided without building the URL."""
    host = item.host
    if host is None and item.upstream is not None:
        host = selection.hosts_by_upstream.get(item.upstream)
    host = host or selection.default_host
    if not host:
        return Skipped(item.location, "unknown_host", "a host (map the upstream, or default_host)")
    if selection.methods is not None and item.method not in selection.methods:
        return Skipped(item.location, "filtered", "methods")
    if selection.hosts and not any(fnmatch.fnmatchcase(host, glob) for glob in selection.hosts):
        return Skipped(item.location, "filtered", "hosts")
    path = item.target.split("?", 1)[0]
    if selection.paths_exclude and any(
        fnmatch.fnmatchcase(path, glob) for glob in selection.paths_exclude
    ):
        return Skipped(item.location, "filtered", "paths_exclude")
    headers = item.headers
    dropped = _ALWAYS_DROPPED if selection.replay_credentials else _NOT_REPLAYED
    trace_dropped = False
    if headers and any(name.lower() in dropped for name, _ in headers):
        trace_dropped = any(name.lower() in TRACE_CONTEXT_HEADERS for name, _ in headers)
        headers = tuple((name, value) for name, value in headers if name.lower() not in dropped)
    unsafe = unsafe_reason(item.method, headers, item.body)
    if unsafe is not None and not selection.allow_unsafe:
        return Skipped(item.location, "unsafe", unsafe)
    return _Resolved(
        host, headers, unsafe, f"{item.method} {host}{path_template(path)}", trace_dropped
    )


def _spec(item: Recorded, resolved: _Resolved, selection: Selection) -> RequestSpec | Skipped:
    """The request as it will be sent, or why it cannot be."""
    scheme = item.scheme or selection.default_scheme
    target = item.target if item.target.startswith("/") else f"/{item.target}"
    try:
        url, userinfo = prepare_url(f"{scheme}://{resolved.host}{target}")
    except WireError as exc:
        return Skipped(item.location, "not_sendable", str(exc))
    if userinfo is not None:
        return Skipped(item.location, "not_sendable", "credentials in the URL")
    try:
        # The run maps each URL's port to the targets' (Scenario.port_map): a port out of
        # range or not a number would end it there. Written requests meet the same check.
        URL(url, encoded=True).port  # noqa: B018
    except ValueError as exc:
        return Skipped(item.location, "not_sendable", f"the URL's host or port: {exc}")
    headers = resolved.headers
    reason = refusal(item.method, url, headers, item.body, allow_unsafe=selection.allow_unsafe)
    if reason is not None:
        return Skipped(item.location, "not_sendable", reason)
    return RequestSpec(
        name=resolved.template,
        method=item.method,
        url=url,
        headers=headers,
        body=item.body,
        # Recorded unsafe requests, when allowed, go out once each: never cycled under load.
        allow_unsafe=resolved.unsafe is not None,
        recorded_at_s=item.time_s,
    )
