"""Evaluate a scenario's thresholds against the run's tallies. Pure.

A latency ratio (`ratio.p50 < 1.1`) compares two samples of one run, so chance alone moves it:
two identical entry points measured `ratio.p50` 1.3 in one run of 150 pairs in five. Where
identical entry points would pass a ratio threshold (the limit lets 1 through), a measured
ratio past the limit fails only when the ratio's 95% interval leaves 1 out: the data must show
that the candidate differs at all. The interval is the bootstrap the report's latency
comparison uses (percentiles; `max` as the 100th, which `p99.9` of fewer than 1000 answers
already is), or the delta method's (means).
"""

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
from shadowdiff.stats.latency import (
    compared_histograms,
    mean_ratio_interval,
    percentile_ratio_interval,
)

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


def _ratio_sides(tallies: Sequence[RequestTally]) -> tuple[LatencyHistogram, LatencyHistogram]:
    """(baseline, candidate) for a latency ratio: from the actual send where the open model
    kept it, as the report's latency comparison reads them (a wait for a slot both sides
    share would make a candidate that stalls and fills the slots pass `ratio.p99 < 1.2`)."""
    served = (LatencyHistogram(), LatencyHistogram())
    for tally in tallies:
        served[0].merge(tally.uncorrected["baseline"].histogram)
        served[1].merge(tally.uncorrected["candidate"].histogram)
    return compared_histograms(
        (_latency(tallies, "baseline"), _latency(tallies, "candidate")), served
    )


def _latency_figure(histogram: LatencyHistogram, metric: str) -> float | None:
    if histogram.count == 0:
        return None
    if metric == "mean":
        return histogram.mean_us / 1000
    if metric == "max":
        return (histogram.max_us or 0) / 1000
    return histogram.percentiles((float(metric[1:]),))[0] / 1000


def _measure(
    subject: str, metric: str, tallies: Sequence[RequestTally], differing: int
) -> float | None:
    """A rate, or one side's latency figure (ratios: `_ratio`)."""
    pairs = sum(t.pairs for t in tallies)
    if metric == "difference_rate":
        return differing / pairs if pairs else None
    if metric == "error_rate":
        side: Side = "baseline" if subject == "baseline" else "candidate"
        errors = sum(sum(t.failures[side].values()) for t in tallies)
        return errors / pairs if pairs else None
    return _latency_figure(
        _latency(tallies, "baseline" if subject == "baseline" else "candidate"), metric
    )


def _ratio(metric: str, sides: tuple[LatencyHistogram, LatencyHistogram]) -> float | None:
    baseline, candidate = (_latency_figure(h, metric) for h in sides)
    return None if baseline is None or candidate is None else candidate / max(baseline, 1e-3)


def _ratio_interval(
    metric: str, sides: tuple[LatencyHistogram, LatencyHistogram]
) -> tuple[float, float] | None:
    """The 95% interval of a latency ratio; None where it has none (a mean of few answers)."""
    baseline, candidate = sides
    if metric == "mean":
        return mean_ratio_interval(baseline, candidate)
    # The maximum is the 100th percentile: judged alone, identical servers failed
    # `ratio.max < 1.2` in two runs of 40 pairs in six.
    q = 100.0 if metric == "max" else float(metric[1:])
    return percentile_ratio_interval(baseline, candidate, q, resamples=1000)


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
        latency = metric not in ("error_rate", "difference_rate")
        # A latency ratio's two sides, merged once for its value and its interval.
        sides = _ratio_sides(chosen) if subject == "ratio" and latency else None
        if sides is not None:
            measured = _ratio(metric, sides)
        else:
            measured = _measure(subject, metric, chosen, differing) if chosen else None
        unit: Literal["ms", ""] = "ms" if latency and subject != "ratio" else ""
        passes = _OPERATORS[op]
        passed = measured is not None and passes(measured, limit)
        reason = None if measured is not None else "no matching data"
        interval = None
        if sides is not None and measured is not None and passes(1.0, limit):
            interval = _ratio_interval(metric, sides)
            if not passed and interval is not None and interval[0] <= 1.0 <= interval[1]:
                passed = True
                reason = (
                    f"within chance: the 95% interval {interval[0]:.3f}-{interval[1]:.3f} "
                    "holds 1 (no difference)"
                )
        results.append(
            {
                "check": threshold.check,
                "request": threshold.request,
                "measured": None if measured is None else round(measured, 6),
                "limit": limit,
                "unit": unit,
                "passed": passed,
                "reason": reason,
                "interval": None if interval is None else [round(v, 4) for v in interval],
            }
        )
    return results


def measured_note(result: ThresholdResult) -> str | None:
    """What the reports add after a measured value: why a ratio past its limit passed, or the
    interval of one that failed. None when there is nothing to add."""
    if result["measured"] is None:
        return None
    if result["reason"] is not None:
        return result["reason"]
    interval = result.get("interval")  # none in a report saved before intervals
    if interval is not None and not result["passed"]:
        return f"95% interval {interval[0]:.3f}-{interval[1]:.3f}"
    return None
