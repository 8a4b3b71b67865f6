"""Whether a run is worse than an earlier checkpoint of the same scenario: answered rate, error
rates and latency percentiles per entry point and overall, each with an interval, judged
against thresholds. Pure: plain counts and histograms in, plain results out, so that a report
file, a live interval of a followed log or a test can supply the figures.

Two runs at two moments share no pairs: each side's figures are compared with the same side's
figures of the checkpoint, as independent samples. A check is `worse` only when its whole
interval lies beyond its threshold, and a latency check also needs an absolute difference past
a floor, so that what chance (or a jittery machine) can produce is never flagged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from shadowdiff.stats.histogram import LatencyHistogram
from shadowdiff.stats.intervals import (
    answers_needed,
    newcombe_difference,
    percentile_rank_interval,
    poisson_rate_interval,
    rate_ratio_interval,
    wilson_interval,
)

OVERALL: Final = "overall"
FEW_ANSWERS: Final = "too few answers in the checkpoint"
PERCENTILES: Final = ("p50", "p90", "p99")
Status = Literal["worse", "better", "alike", "not judged"]
Figure = Literal["rate", "error_rate", "server_error_rate", "p50", "p90", "p99"]


@dataclass(frozen=True)
class SideFigures:
    """One entry point's figures over one stretch of time."""

    latency: LatencyHistogram  # answered requests in the measured time (warm-up left out)
    requests: int  # requests sent
    failures: int  # requests with no answer (refused, reset, timeout, TLS…)
    server_errors: int  # requests answered with a 5xx status
    measured_s: float  # the time `latency` covers


@dataclass(frozen=True)
class RunFigures:
    """A run's figures per entry point (in the order given); `overall` adds them up."""

    sides: Mapping[str, SideFigures]

    def overall(self) -> SideFigures:
        merged = LatencyHistogram()
        for figures in self.sides.values():
            merged.merge(figures.latency)
        return SideFigures(
            latency=merged,
            requests=sum(f.requests for f in self.sides.values()),
            failures=sum(f.failures for f in self.sides.values()),
            server_errors=sum(f.server_errors for f in self.sides.values()),
            measured_s=max((f.measured_s for f in self.sides.values()), default=0.0),
        )

    def subjects(self) -> dict[str, SideFigures]:
        return {**self.sides, OVERALL: self.overall()}


@dataclass(frozen=True)
class RunThresholds:
    """How much worse the current run may be. Defaults: 20% slower on p50, p90 and p99 and 5 ms
    more; half a percentage point more errors (failures, and 5xx answers); the rate unchecked."""

    latency_ratio: Mapping[str, float] = field(
        default_factory=lambda: dict.fromkeys(PERCENTILES, 1.2)
    )
    latency_min_difference_ms: float = 5.0
    error_rate_increase: float = 0.005  # a share: 0.005 is half a percentage point
    rate_drop: float | None = None  # a share: 0.1 flags a rate clearly more than 10% lower
    confidence: float = 0.95  # that no check at all is a false alarm (see `per_check`)

    def per_check(self, subjects: int) -> float:
        """Each check's confidence, so that all of them hold together with `confidence`
        (Bonferroni): a comparison makes a dozen checks or more, and a false alarm in any one
        fails it."""
        checks = subjects * (len(self.latency_ratio) + 2 + (self.rate_drop is not None))
        return 1 - (1 - self.confidence) / max(checks, 1)


@dataclass(frozen=True)
class Estimate:
    """A figure and its interval (None where the data cannot bound it)."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Check:
    subject: str  # an entry point, or "overall"
    figure: Figure
    checkpoint: Estimate
    current: Estimate
    # Latency and rate: current / checkpoint. Error rates: current - checkpoint (a share).
    change: Estimate
    limit: float | None  # the threshold, in the unit of `change`; None: shown, not judged
    status: Status
    reason: str | None = None  # why a check was not judged


@dataclass(frozen=True)
class RunComparison:
    checks: tuple[Check, ...]
    thresholds: RunThresholds
    check_confidence: float  # each interval's (`RunThresholds.per_check`)

    @property
    def worse(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.status == "worse")

    @property
    def judged(self) -> tuple[Check, ...]:
        return tuple(
            check
            for check in self.checks
            if check.limit is not None and check.status != "not judged"
        )


def compare_runs(
    checkpoint: RunFigures, current: RunFigures, thresholds: RunThresholds | None = None
) -> RunComparison:
    """Every figure of every entry point present in both runs, and overall."""
    thresholds = thresholds or RunThresholds()
    before, after = checkpoint.subjects(), current.subjects()
    subjects = [name for name in before if name in after]
    confidence = thresholds.per_check(len(subjects))
    checks: list[Check] = []
    for subject in subjects:
        pair = (before[subject], after[subject])
        checks.append(_rate(subject, *pair, thresholds, confidence))
        for figure in ("error_rate", "server_error_rate"):
            checks.append(_errors(subject, figure, *pair, thresholds, confidence))
        for label in PERCENTILES:
            checks.append(_percentile(subject, label, *pair, thresholds, confidence))
    return RunComparison(tuple(checks), thresholds, confidence)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _rate(
    subject: str,
    before: SideFigures,
    after: SideFigures,
    thresholds: RunThresholds,
    confidence: float,
) -> Check:
    def estimate(figures: SideFigures) -> Estimate:
        if figures.measured_s <= 0:
            return Estimate(None, None, None)
        low, high = poisson_rate_interval(figures.latency.count, figures.measured_s, confidence)
        return Estimate(figures.latency.count / figures.measured_s, low, high)

    checkpoint, current = estimate(before), estimate(after)
    ratio = rate_ratio_interval(
        before.latency.count, before.measured_s, after.latency.count, after.measured_s, confidence
    )
    change = Estimate(_ratio(current.value, checkpoint.value), ratio.low, ratio.high)
    limit = None if thresholds.rate_drop is None else 1 - thresholds.rate_drop
    if change.value is None or ratio.low is None:
        return Check(subject, "rate", checkpoint, current, change, limit, "not judged", "no time")
    if limit is None:
        return Check(
            subject, "rate", checkpoint, current, change, None, "not judged", "no threshold"
        )
    status: Status = "alike"
    if ratio.high is not None and ratio.high < limit:
        status = "worse"
    elif ratio.low > 1 / limit:
        status = "better"
    return Check(subject, "rate", checkpoint, current, change, limit, status)


def _errors(
    subject: str,
    figure: Literal["error_rate", "server_error_rate"],
    before: SideFigures,
    after: SideFigures,
    thresholds: RunThresholds,
    confidence: float,
) -> Check:
    def events(figures: SideFigures) -> int:
        return figures.failures if figure == "error_rate" else figures.server_errors

    def estimate(figures: SideFigures) -> Estimate:
        if figures.requests <= 0:
            return Estimate(None, None, None)
        low, high = wilson_interval(events(figures), figures.requests, confidence)
        return Estimate(events(figures) / figures.requests, low, high)

    checkpoint, current = estimate(before), estimate(after)
    limit = thresholds.error_rate_increase
    if checkpoint.value is None or current.value is None:
        change = Estimate(None, None, None)
        return Check(
            subject, figure, checkpoint, current, change, limit, "not judged", "no requests"
        )
    difference = newcombe_difference(
        events(before), before.requests, events(after), after.requests, confidence
    )
    change = Estimate(current.value - checkpoint.value, difference.low, difference.high)
    assert difference.low is not None and difference.high is not None
    status: Status = "alike"
    if difference.low > limit:
        status = "worse"
    elif difference.high < -limit:
        status = "better"
    return Check(subject, figure, checkpoint, current, change, limit, status)


def percentile_interval_ms(
    histogram: LatencyHistogram, quantile: float, confidence: float
) -> Estimate:
    """The percentile (`quantile` 0-1) in ms and its distribution-free interval, from the
    histogram's ranks: the lower bound is the lowest value the lower rank's bucket holds, the
    upper bound the highest value of the upper rank's, so bucketing cannot narrow it."""
    if histogram.count == 0:
        return Estimate(None, None, None)
    value = histogram.percentiles((quantile * 100,))[0] / 1000
    ranks = percentile_rank_interval(histogram.count, quantile, confidence)
    # Below the smallest value seen, a latency is still at least 0.
    low = 0.0 if ranks.low is None else histogram.bounds_at_rank(ranks.low)[0] / 1000
    high = None if ranks.high is None else histogram.bounds_at_rank(ranks.high)[1] / 1000
    return Estimate(value, low, high)


def _percentile(
    subject: str,
    label: str,
    before: SideFigures,
    after: SideFigures,
    thresholds: RunThresholds,
    check_confidence: float,
) -> Check:
    figure: Figure = "p50" if label == "p50" else "p90" if label == "p90" else "p99"
    quantile = float(label[1:]) / 100
    # Each run's interval at the square root of the check's confidence: both hold together
    # with the check's confidence (independent runs), and then the true ratio lies between
    # low/high and high/low of the two.
    confidence = math.sqrt(check_confidence)
    checkpoint = percentile_interval_ms(before.latency, quantile, confidence)
    current = percentile_interval_ms(after.latency, quantile, confidence)
    limit = thresholds.latency_ratio.get(label)
    if checkpoint.value is None or current.value is None:
        change = Estimate(None, None, None)
        return Check(
            subject, figure, checkpoint, current, change, limit, "not judged", "no answers"
        )
    change = Estimate(
        _ratio(current.value, checkpoint.value) if checkpoint.value > 0 else None,
        _ratio(current.low, checkpoint.high),
        _ratio(current.high, checkpoint.low),
    )
    if limit is None:
        return Check(
            subject, figure, checkpoint, current, change, None, "not judged", "no threshold"
        )
    floor_ms = thresholds.latency_min_difference_ms
    worse = (
        checkpoint.high is not None
        and current.low is not None
        and current.low > checkpoint.high * limit
        and current.low - checkpoint.high > floor_ms
    )
    better = (
        current.high is not None
        and checkpoint.low is not None
        and current.high * limit < checkpoint.low
        and checkpoint.low - current.high > floor_ms
    )
    if worse:
        return Check(subject, figure, checkpoint, current, change, limit, "worse")
    if better:
        return Check(subject, figure, checkpoint, current, change, limit, "better")
    if checkpoint.high is None:
        needed = answers_needed(quantile, confidence)
        reason = (
            f"{FEW_ANSWERS} ({before.latency.count}; a {label} needs {needed} to be bounded "
            "from above)"
        )
        return Check(subject, figure, checkpoint, current, change, limit, "not judged", reason)
    return Check(subject, figure, checkpoint, current, change, limit, "alike")
