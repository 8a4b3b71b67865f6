"""What `shadowdiff watch` writes, as TypedDicts: one row per interval (a line of
`--json-lines`, a row of the table) and the report (`--json`, schema `shadowdiff.watch/1`).
Types only; docs/report-format.md describes each field."""

# No `from __future__ import annotations`: on Python 3.11 it hides `NotRequired`.
from typing import Literal, TypedDict

WATCH_SCHEMA = "shadowdiff.watch/1"

Path = Literal["dns", "baseline", "candidate"]
PATHS: tuple[Path, Path, Path] = ("dns", "baseline", "candidate")


class HostRow(TypedDict):
    host: str
    baseline: int  # records pointing at the baseline
    candidate: int
    other: int
    ttl_s: int | None
    error: str | None  # a DNS failure class (watch/dns.py), or null
    message: str


class DnsRow(TypedDict):
    shares: dict[str, float] | None  # baseline / candidate / other: share of the records
    ttl_s: int | None  # the smallest TTL of any hostname's answer
    hosts: list[HostRow]


class PathRow(TypedDict):
    requests: int  # requests that ended in the interval (answers and failures)
    errors: int  # failures on the wire and 5xx answers
    error_rate: float | None
    error_points_low: float | None  # lower end of (error rate - checkpoint's), in points
    p50_ms: float | None
    p99_ms: float | None
    p99_ratio: float | None  # p99 / checkpoint's p99
    slow_share: float | None  # share above the p99 limit (p99_ratio x checkpoint's p99)
    slow_share_low: float | None
    error_crossed: bool
    p99_crossed: bool
    failures: dict[str, int]  # failure class -> count
    reached: dict[str, int]  # the dns path only: requests that went to each target's address


class IntervalRow(TypedDict):
    interval: int  # 1, 2, ...
    at: str  # when the interval ended, ISO 8601 UTC
    elapsed_s: float
    dns: DnsRow
    paths: dict[Path, PathRow]
    skipped: int  # rounds not started: too many still waiting for answers
    verdict: str  # watch/rollback.py: ok, too_few, both_worse, candidate_worse, rollback, no_rules
    crossed: list[str]
    streaks: dict[str, int]


class CheckpointSide(TypedDict):
    requests: int
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p99_ms: float | None


class CheckpointEntry(TypedDict):
    file: str
    baseline: CheckpointSide  # the reference: the baseline as it was
    candidate: CheckpointSide  # shown only


class RulesEntry(TypedDict):
    error_rate_points: float | None
    p99_ratio: float | None
    intervals: int


class RollbackEntry(TypedDict):
    rule: str  # error_rate_points or p99_ratio
    limit: float
    interval: int
    at: str
    reason: str
    figures: IntervalRow


class WatchOutcome(TypedDict):
    exit_code: int
    reason: str


class WatchReport(TypedDict):
    schema: str
    tool: dict[str, str]
    scenario: dict[str, str]
    started_at: str
    duration_s: float
    nameserver: str
    rate_per_s: float
    interval_s: float
    requests: list[str]  # names of the safe requests sent
    skipped_unsafe: list[str]  # requests of the scenario never sent: not safe
    rules: RulesEntry
    checkpoint: CheckpointEntry
    intervals_total: int
    intervals: list[IntervalRow]  # the last 1000
    rollback: RollbackEntry | None
    stop_cause: str | None  # SIGINT, SIGTERM, cancelled, internal_error; null for a rollback
    outcome: WatchOutcome
