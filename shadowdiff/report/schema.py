"""The JSON report (`shadowdiff.report/1`) as TypedDicts: the machine-readable form of the
tables in docs/report-format.md, field for field (tests/test_report_schema.py holds the two
together).

Types only, no behaviour: what `build_report` returns, `write_report` writes, `read_report`
gives back and the renderers read. A key that may be absent is `NotRequired`; a value that may
be null is `| None`. Per-side parts are keyed by `Side`; a report read back from a file holds
the same keys as plain strings.
"""

# No `from __future__ import annotations`: on Python 3.11 it hides `NotRequired` from
# `__optional_keys__`, which tests read. Every type below is defined before it is used.
from collections.abc import Sequence
from typing import Any, Literal, NotRequired, TypedDict

from shadowdiff.difference import DifferenceKind, Severity
from shadowdiff.redaction import KeySource
from shadowdiff.report.hints import Hint
from shadowdiff.spec import Side

SignatureStatus = Literal["reported", "expired", "accepted", "noise"]
Verdict = Literal["slower", "faster", "alike"]


class Tool(TypedDict):
    name: str
    version: str


class ScenarioName(TypedDict):
    name: str
    file: str


class Ports(TypedDict):
    http: int
    https: int


class Target(TypedDict):
    address: str
    ports: Ports


class Outcome(TypedDict):
    exit_code: int
    reason: str


class Stop(TypedDict):
    # `cancelled`: a library caller cancelled the run (shadowdiff.run.run on main, 1e80a2c).
    cause: Literal["SIGINT", "SIGTERM", "cancelled", "internal_error", "worker_died"]
    before_first_pair: bool
    worker_failures: list[str]


class Redaction(TypedDict):
    key: KeySource
    key_id: str
    headers: list[str]


class SideFailures(TypedDict):
    total: int
    by_class: dict[str, int]  # failure class -> count


class SignatureCounts(TypedDict):
    reported: int
    expired: int
    accepted: int
    noise: int


class SeverityCounts(TypedDict):
    error: int
    warning: int
    info: int


class Totals(TypedDict):
    pairs: int
    pairs_planned: int | None  # null when the run is bounded by time
    pairs_with_differences: int
    pairs_alike: int
    signatures: SignatureCounts
    signatures_by_severity: SeverityCounts
    failures: dict[Side, SideFailures]
    tls_hosts: int
    tls_handshakes_failed: dict[Side, int]  # hostnames whose probe got no handshake, per side
    unsafe_pairs_sent: int
    retries: dict[Side, int]
    thresholds_failed: int
    load_valid: bool
    load_reason: str | None


class SignatureAcceptance(TypedDict):
    reason: str
    until: str | None  # ISO date
    expired: bool


class SignatureExample(TypedDict):
    request: str
    pair: int  # -1 for a finding about a whole request or host
    trace_id: str | None  # the pair's W3C trace id, to look it up in an APM; null without
    baseline: str | None
    candidate: str | None
    diff: NotRequired[str]  # a unified diff of two text bodies


class Signature(TypedDict):
    kind: DifferenceKind
    field: str
    severity: Severity
    status: SignatureStatus
    host: str
    route: str
    requests: list[str]
    count: int
    pairs: int
    share: float
    noise_rate: float | None
    accepted: SignatureAcceptance | None
    examples: list[SignatureExample]
    hint: Hint | None  # the likely migration cause and its fix (report/hints.py)


class Certificate(TypedDict):
    subject: str
    issuer: str
    # A tuple in `build_report`'s own output (dataclasses.asdict keeps tuples), a list once
    # read back: both are sequences.
    names: Sequence[str]
    serial: str
    not_before: str
    not_after: str
    key_type: str
    key_bits: int
    key_strength_bits: int
    signature_algorithm: str
    signature_strength_bits: int | None
    sha256: str
    self_signed: bool


class SniOutcome(TypedDict):
    """What a handshake without SNI, or with an unknown name, got."""

    accepted: bool
    subject: str | None
    sha256: str | None
    error: str | None


class Posture(TypedDict):
    """One side's TLS posture for one hostname (`shadowdiff.tls.TlsPosture`)."""

    side: Side
    host: str
    probed_at: str
    failure: str | None
    leaf: Certificate | None
    chain: Sequence[Certificate]  # a tuple or a list, as `Certificate.names`
    chain_in_order: bool
    verified: bool
    verify_error: str | None
    hostname_covered: bool
    version: str | None
    cipher: str | None
    alpn: str | None
    versions: dict[str, bool]
    cipher_families: dict[str, bool]
    no_sni: SniOutcome | None
    unknown_sni: SniOutcome | None
    days_to_expiry: int | None


class TlsDifference(TypedDict):
    kind: DifferenceKind
    field: str
    baseline: str | None
    candidate: str | None
    severity: Severity
    detail: str | None


class TlsHost(TypedDict):
    host: str
    baseline: Posture
    candidate: Posture
    differences: list[TlsDifference]


class SenderHealth(TypedDict):
    """Whether the sender kept up (shadowdiff/report/sender.py)."""

    limited: bool  # the sender, not the targets, was the bottleneck
    late_by_sender: int  # scheduled pairs started over 5 ms late with slots to spare
    late_by_in_flight: int  # scheduled pairs started over 5 ms late waiting for a slot
    loop_busy_share: float  # share of 20 ms ticks the event loop woke over 5 ms late
    loop_lag_max_ms: float
    cpu_share: float  # the busiest sender's CPU time and run-queue wait over the run's time


class Load(TypedDict):
    model: str  # "requests", "closed", "open" or "recorded" (`shadowdiff.pair.LoadOutcome`)
    pairs: int
    elapsed_s: float
    measured_s: float
    warmup_s: float
    target_rate: float | None
    achieved_rate: float
    valid: bool
    reason: str | None
    interrupted: bool
    shortfall: NotRequired[float]  # only with a target rate
    # Scheduled pairs never started: no slot in flight came free before the window ended.
    dropped: int
    sender: SenderHealth


class Resources(TypedDict):
    workers: int
    workers_peak_rss_mb: list[float]
    # Measured once the report is built, so added after `build_report` (shadowdiff.run).
    peak_rss_mb: NotRequired[float]


class ThresholdResult(TypedDict):
    check: str
    request: str | None
    measured: float | None
    limit: float
    unit: Literal["ms", ""]
    passed: bool
    reason: str | None
    # A latency ratio that identical sides would pass: its 95% interval (see thresholds.py).
    interval: list[float] | None


# Milliseconds. Only `count` and `errors` when nothing was answered. (Functional form: `p99.9`
# is no identifier.)
LatencySummary = TypedDict(
    "LatencySummary",
    {
        "count": int,
        "errors": int,
        "min": NotRequired[float],
        "mean": NotRequired[float],
        "std": NotRequired[float],
        "p50": NotRequired[float],
        "p90": NotRequired[float],
        "p95": NotRequired[float],
        "p99": NotRequired[float],
        "p99.9": NotRequired[float],
        "max": NotRequired[float],
    },
)


class DifferenceSummary(TypedDict):
    """Candidate minus baseline per pair, in ms; only `count` when there is none."""

    count: int
    p1: NotRequired[float]
    p10: NotRequired[float]
    p50: NotRequired[float]
    p90: NotRequired[float]
    p99: NotRequired[float]
    # Per request, from 20 pairs on: the 95% interval of the median, [low, high].
    p50_interval: NotRequired[list[float]]


class QuantileComparison(TypedDict):
    ratio: float
    low: float
    high: float
    verdict: Verdict


class QuantileComparisons(TypedDict):
    p50: QuantileComparison
    p90: QuantileComparison
    p99: QuantileComparison


class TooFewSamples(TypedDict):
    verdict: Literal["too few samples"]
    samples: int


LatencyComparison = QuantileComparisons | TooFewSamples


class SideLatency(TypedDict):
    total: LatencySummary
    connect: LatencySummary
    tls: LatencySummary
    first_byte: LatencySummary
    total_uncorrected: NotRequired[LatencySummary]  # open model only


class Histogram(TypedDict):
    """`LatencyHistogram.to_dict()`: exact and sparse, mergeable by adding counts."""

    unit: Literal["us"]
    significant_digits: int
    count: int
    min: int | None
    max: int | None
    sum: int
    sum_squares: float
    buckets: list[list[int]]  # [index, count]


class SplitLatency(TypedDict):
    """Edge or backend time (shadowdiff/backend_time.py), over the answers that said their
    backend time: each side's summary, and candidate minus baseline per pair where both did."""

    baseline: LatencySummary
    candidate: LatencySummary
    difference: DifferenceSummary


class Latency(TypedDict):
    corrected: bool
    baseline: SideLatency
    candidate: SideLatency
    difference: DifferenceSummary
    comparison: LatencyComparison
    histograms: dict[Side, Histogram]
    # Answers that said their backend time, by source ("ignored": unusably), per side.
    backend_time_from: dict[Side, dict[str, int]]
    edge: NotRequired[SplitLatency]  # only when some answer said its backend time
    backend: NotRequired[SplitLatency]


class RequestLatency(TypedDict):
    baseline: LatencySummary
    candidate: LatencySummary
    difference: DifferenceSummary
    comparison: NotRequired[LatencyComparison]  # the busiest requests only
    # This request's total-time histograms, exact: what plots and merges read.
    histograms: dict[Side, Histogram]
    edge: NotRequired[SplitLatency]  # only when some answer said its backend time
    backend: NotRequired[SplitLatency]


class TimelineEntry(TypedDict):
    """`shadowdiff.stats.timeline.Timeline.to_dict()`: counts per interval of the wall clock,
    mergeable by coarsening to the larger `interval_s` and adding counts."""

    interval_s: int  # a power of two; intervals start at multiples of it (Unix time)
    start_s: int | None  # Unix time of the first interval's start; null with no pair
    pairs: list[int]  # pairs completed in each interval
    failures: dict[Side, list[int]]  # transport failures, per side
    server_errors: dict[Side, list[int]]  # answers with a 5xx status, per side


class FailureSeen(TypedDict):
    count: int
    message: str  # the first one seen


class RequestExample(TypedDict):
    pair: int
    trace_id: str | None
    baseline: str | None
    candidate: str | None
    diff: NotRequired[str]


class RequestDifference(TypedDict):
    kind: DifferenceKind
    field: str
    severity: Severity
    status: SignatureStatus
    count: int
    noise: int
    examples: list[RequestExample]


class RequestEntry(TypedDict):
    name: str
    method: str
    url: str
    origin: str | None  # where a generated request comes from (`shadowdiff plan`)
    pairs: int
    pairs_with_differences: int
    noise_samples: int
    noise_refused: int
    status: dict[Side, dict[str, int]]  # status code as a string -> count
    failures: dict[Side, dict[str, FailureSeen]]  # failure class -> first seen
    latency_ms: RequestLatency
    differences: list[RequestDifference]
    # `backend_split` requests only: echoes per backend service, per side.
    backends: NotRequired[dict[Side, dict[str, int]]]
    # gRPC requests only: answers per outcome (grpc-status name, or the health status).
    grpc: NotRequired[dict[Side, dict[str, int]]]


class RequestsFolded(TypedDict):
    requests: int
    pairs: int
    pairs_with_differences: int


class SourceEntry(TypedDict):
    """`shadowdiff.sources.SourceSummary.as_report()`."""

    name: str
    lines: int
    replayed: int
    skipped: dict[str, int]  # reason -> count
    templates: dict[str, int]  # route template -> count, the busiest
    templates_total: int
    problems: list[str]
    trace_context_dropped: int  # requests replayed without their recorded trace context


class PairSide(TypedDict):
    status: int | None
    error: str | None
    total_ms: float
    span_id: str | None  # the span id of this side's traceparent


class PairRecord(TypedDict):
    index: int
    request: str
    trace_id: str | None  # shared by both sides' traceparent
    baseline: PairSide
    candidate: PairSide
    differences: list[list[str]]  # [kind, field]


class CoverageCount(TypedDict):
    rules: int
    covered: int
    uncovered: list[str]  # where each rule no request reached is, for people


class CoverageEntry(TypedDict):
    """Which manifest rules the run's requests reached (`shadowdiff/plan/coverage.py`)."""

    ingress: CoverageCount | None
    routes: CoverageCount | None
    share: float | None  # rules reached / rules, over both; None without rules
    min: float | None  # the scenario's `coverage.min`, also checked in `thresholds[]`


class Merged(TypedDict):
    """What a report built by `shadowdiff merge` was built from."""

    reports: int
    shards: list[str]  # "K/N" of each report that was a shard, in the order given


class Report(TypedDict):
    schema: str
    tool: Tool
    scenario: ScenarioName
    targets: dict[Side, Target]
    started_at: str
    duration_s: float
    interrupted: bool
    fail_on: Severity
    outcome: Outcome
    totals: Totals
    signatures: list[Signature]
    tls: list[TlsHost]
    load: Load | None
    resources: Resources | None
    thresholds: list[ThresholdResult]
    latency: Latency
    timeline: TimelineEntry
    requests: list[RequestEntry]
    requests_folded: RequestsFolded
    sources: list[SourceEntry] | None
    coverage: CoverageEntry | None
    pairs: list[PairRecord] | None
    redaction: Redaction
    shard: str | None  # "K/N" when this run sent shard K of N of the scenario (replay/shard.py)
    merged: Merged | None  # set by `shadowdiff merge`
    # The exact, mergeable state the report was built from (report/state.py,
    # `shadowdiff.state/1`): read by `merge`, typed loosely here and checked when read.
    state: dict[str, Any]
    # Set by `shadowdiff.run.finish_report`, which knows whether the run ended by itself;
    # absent from what `build_report` alone returns.
    stop: NotRequired[Stop | None]
