"""Evaluate a scenario's thresholds against the run's tallies. Pure."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Final, Literal

from shadowdiff.compare.acceptance import glob_pattern
from shadowdiff.report.collect import RequestTally
from shadowdiff.report.schema import ThresholdResult
from shadowdiff.scenario.model import Threshold
from shadowdiff.spec import Side
from shadowdiff.stats.histogram import LatencyHistogram

_OPERATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _latency(tallies: Sequence[RequestTally], side: Side) -> LatencyHistogram:
    merged = LatencyHistogram()
    for tally in tallies:
        merged.merge(tally.latency[side].histogram)
    return merged


def _measure(
    subject: str, metric: str, tallies: Sequence[RequestTally], differing: int
) -> float | None:
    pairs = sum(t.pairs for t in tallies)
    if metric == "difference_rate":
        return differing / pairs if pairs else None
    if metric == "error_rate":
        side: Side = "baseline" if subject == "baseline" else "candidate"
        errors = sum(sum(t.failures[side].values()) for t in tallies)
        return errors / pairs if pairs else None
    if subject == "ratio":
        baseline = _measure("baseline", metric, tallies, differing)
        candidate = _measure("candidate", metric, tallies, differing)
        return None if baseline is None or candidate is None else candidate / max(baseline, 1e-3)
    histogram = _latency(tallies, "baseline" if subject == "baseline" else "candidate")
    if histogram.count == 0:
        return None
    if metric == "mean":
        return histogram.mean_us / 1000
    if metric == "max":
        return (histogram.max_us or 0) / 1000
    return histogram.percentiles((float(metric[1:]),))[0] / 1000


def evaluate_thresholds(
    thresholds: Sequence[Threshold],
    tallies: Sequence[RequestTally],
    differing_pairs: dict[str, int],
) -> list[ThresholdResult]:
    """One result per threshold: what was measured, the limit, and whether it passed. A
    threshold whose requests produced no data fails: a bound that checked nothing is no pass."""
    results: list[ThresholdResult] = []
    for threshold in thresholds:
        subject, metric, op, limit = threshold.parsed
        chosen = [
            t
            for t in tallies
            if threshold.request is None or glob_pattern(threshold.request).match(t.request.name)
        ]
        differing = sum(differing_pairs.get(t.request.name, 0) for t in chosen)
        measured = _measure(subject, metric, chosen, differing) if chosen else None
        unit: Literal["ms", ""] = (
            "ms" if metric not in ("error_rate", "difference_rate") and subject != "ratio" else ""
        )
        results.append(
            {
                "check": threshold.check,
                "request": threshold.request,
                "measured": None if measured is None else round(measured, 6),
                "limit": limit,
                "unit": unit,
                "passed": measured is not None and _OPERATORS[op](measured, limit),
                "reason": None if measured is not None else "no matching data",
            }
        )
    return results
