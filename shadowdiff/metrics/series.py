"""The catalogue of shadowdiff's Prometheus series: names, types, help texts, labels and the
closed sets their values come from. Pure data; docs/metrics.md documents each entry and a
test holds the two together.

Every label value comes from a closed set fixed here (a side, a status class, a failure
class, a severity, a difference kind, a ruling, a load model): nothing a scenario file, a
recorded log or a server's answer says becomes a label, so a series can neither carry a
secret nor multiply with the traffic. Request names are left out on purpose: they come from
scenario files and recorded traffic, may hold anything, and a log can give millions of them;
per-request figures are the report's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from shadowdiff.difference import DifferenceKind, Severity
from shadowdiff.observation import ErrorClass

PREFIX: Final = "shadowdiff_"

# An answer's status class ("other" for a status line outside 100-599), or "none" when the
# request failed on the wire; the failure class, or "none" when an answer came.
STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
FAILURE_CLASSES: Final[tuple[ErrorClass, ...]] = get_args(ErrorClass)
NONE: Final = "none"
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)
KINDS: Final[tuple[DifferenceKind, ...]] = get_args(DifferenceKind)
# How a difference stood when it was counted: `reported` counts against the run, `accepted`
# matched an acceptance rule in force, `noise` was seen between two baseline answers of the
# same request by then (the report decides noise once more at the end, over all pairs).
Ruling = Literal["reported", "accepted", "noise"]
RULINGS: Final[tuple[Ruling, ...]] = get_args(Ruling)
LOAD_MODELS: Final = ("requests", "closed", "open", "recorded", "follow")

# Classic (not native) histogram buckets for HTTP latencies, in seconds: sub-millisecond
# steps for entry points on the same network, the 1-2.5-5 steps Prometheus's client libraries
# use from 5 ms up, and 30 s, the scenario's default total timeout. Fixed: dashboards and
# recording rules compare runs bucket by bucket.
LATENCY_BUCKETS_S: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

SeriesType = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Series:
    name: str  # as exposed (a counter with its `_total`)
    type: SeriesType
    help: str
    labels: tuple[str, ...] = ()


PAIRS: Final = Series(
    "shadowdiff_pairs_total", "counter", "Pairs compared (one request sent to both)"
)
PAIRS_DIFFERING: Final = Series(
    "shadowdiff_pairs_differing_total",
    "counter",
    "Pairs with a difference that counts against the run, as known when the pair completed",
)
PAIRS_PLANNED: Final = Series(
    "shadowdiff_pairs_planned",
    "gauge",
    "Pairs the run will send; absent when the run is bounded by time or follows a log",
)
REQUESTS: Final = Series(
    "shadowdiff_requests_total",
    "counter",
    "Requests sent, by side, with the answer's status class or the failure on the wire",
    ("side", "status_class", "failure_class"),
)
DIFFERENCES: Final = Series(
    "shadowdiff_differences_total",
    "counter",
    "Differences found (pairs and TLS probe), by severity, kind and ruling",
    ("severity", "kind", "ruling"),
)
DURATION: Final = Series(
    "shadowdiff_request_duration_seconds",
    "histogram",
    "Total time of answered requests after warm-up, by side (open model: from the intended start)",
    ("side",),
)
LOAD_TARGET: Final = Series(
    "shadowdiff_load_target_pairs_per_second",
    "gauge",
    "Pairs per second the schedule asked for, mean over the run after warm-up so far",
    ("model",),
)
LOAD_CURRENT_TARGET: Final = Series(
    "shadowdiff_load_current_target_pairs_per_second",
    "gauge",
    "Pairs per second the schedule asks for at this moment",
    ("model",),
)
LOAD_ACHIEVED: Final = Series(
    "shadowdiff_load_achieved_pairs_per_second",
    "gauge",
    "Pairs per second achieved, mean over the run after warm-up so far",
    ("model",),
)
RUN_START: Final = Series(
    "shadowdiff_run_start_time_seconds", "gauge", "When the run started (Unix time)"
)
RUN_EXIT_CODE: Final = Series(
    "shadowdiff_run_exit_code",
    "gauge",
    "The run's exit code; present once the run has ended (in a push)",
)

CATALOGUE: Final = (
    PAIRS,
    PAIRS_DIFFERING,
    PAIRS_PLANNED,
    REQUESTS,
    DIFFERENCES,
    DURATION,
    LOAD_TARGET,
    LOAD_CURRENT_TARGET,
    LOAD_ACHIEVED,
    RUN_START,
    RUN_EXIT_CODE,
)
