"""One interval's figures against the checkpoint's: is the error rate higher by more than N
points, is the p99 more than R times the checkpoint's? Pure; the standard library and the
histogram only. Plain figures in, a plain `Comparison` out: the one place the watch judges.

A few dozen answers an interval make raw figures noisy: one 503 in 20 answers is 5 points, and
the p99 of 20 answers is their maximum. So a limit counts as crossed only when the data say so
beyond chance, at `Z` (one-sided, about 1 in 1000 for a single interval; a rule that needs two
intervals in a row then fires falsely about once in a million intervals):

- error rate: the lower end of Newcombe's hybrid score interval (method 10, from two Wilson
  intervals; Newcombe 1998, Stat. Med. 17:873) for "watched rate minus checkpoint rate" must
  exceed N points. It accounts for the checkpoint's own sampling too, and behaves at 0 errors.
- p99: the p99 exceeds R x the checkpoint's p99 exactly when more than 1% of answers are slower
  than that bound. The share of the interval's answers above it is counted, and the lower end of
  its Wilson interval must exceed 1%. With 20 answers that takes 3 or more over the bound, not
  one slow answer.

Below `MIN_REQUESTS` answers nothing is judged (`enough` is false): the table says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from shadowdiff.stats.histogram import LatencyHistogram

# One-sided 99.9%: the normal quantile for alpha = 0.001.
Z: Final = 3.090232
# An interval with fewer answers on a path is shown but not judged.
MIN_REQUESTS: Final = 5
# A p99 needs this many answers in the checkpoint to be a reference at all (with fewer, its
# p99 is its largest value and says little about the tail).
MIN_CHECKPOINT_LATENCIES: Final = 100
TAIL_SHARE: Final = 0.01  # what a p99 leaves above it


@dataclass(frozen=True, slots=True)
class Figures:
    """One path's answers over a span: how many requests ended (answers and failures), how
    many of them were errors (a failure on the wire or a 5xx), and the total time of those
    answered."""

    requests: int
    errors: int
    latency: LatencyHistogram

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True, slots=True)
class Limits:
    """The rollback limits to judge against; None leaves that check out."""

    error_rate_points: float | None = None  # percentage points above the checkpoint's rate
    p99_ratio: float | None = None  # times the checkpoint's p99


@dataclass(frozen=True, slots=True)
class Comparison:
    """One path's interval against the checkpoint. Rates are fractions, times milliseconds."""

    requests: int
    enough: bool  # at least MIN_REQUESTS: only then is anything crossed
    error_rate: float | None
    checkpoint_error_rate: float | None
    # The lower end of the interval for (error rate - checkpoint's), in percentage points.
    error_points_low: float | None
    error_crossed: bool
    p50_ms: float | None
    p99_ms: float | None
    checkpoint_p50_ms: float | None
    checkpoint_p99_ms: float | None
    p99_ratio: float | None  # as observed: p99 / checkpoint's p99 (shown, not judged alone)
    slow_share: float | None  # share of answers above p99_ratio limit x checkpoint's p99
    slow_share_low: float | None  # the lower end of its interval
    p99_crossed: bool


def wilson(successes: int, trials: int, z: float = Z) -> tuple[float, float]:
    """Wilson's score interval for a proportion (Wilson 1927): sound at 0 and at n."""
    if trials <= 0:
        return 0.0, 1.0
    share = successes / trials
    z2 = z * z
    centre = (share + z2 / (2 * trials)) / (1 + z2 / trials)
    half = (z / (1 + z2 / trials)) * math.sqrt(
        share * (1 - share) / trials + z2 / (4 * trials * trials)
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_low(
    errors: int, requests: int, reference_errors: int, reference_requests: int, z: float = Z
) -> float:
    """The lower end of Newcombe's hybrid score interval for p - p_ref."""
    share, reference = errors / requests, reference_errors / reference_requests
    low, _ = wilson(errors, requests, z)
    _, reference_high = wilson(reference_errors, reference_requests, z)
    return share - reference - math.sqrt((share - low) ** 2 + (reference_high - reference) ** 2)


def _ms(histogram: LatencyHistogram, quantile: float) -> float | None:
    if histogram.count == 0:
        return None
    return round(histogram.percentiles((quantile,))[0] / 1000, 3)


def count_above(histogram: LatencyHistogram, bound_us: float) -> int:
    """How many recorded values lie above `bound_us` (by their buckets' highest values, the
    same values percentiles report)."""
    values, counts = histogram.nonzero()
    return int(counts[values > bound_us].sum())


def compare_with_checkpoint(watched: Figures, checkpoint: Figures, limits: Limits) -> Comparison:
    """Judge one path's interval against the checkpoint's figures (see the module's text)."""
    enough = watched.requests >= MIN_REQUESTS
    error_low: float | None = None
    error_crossed = False
    if watched.requests and checkpoint.requests:
        error_low = difference_low(
            watched.errors, watched.requests, checkpoint.errors, checkpoint.requests
        )
        error_crossed = (
            enough
            and limits.error_rate_points is not None
            and error_low * 100 > limits.error_rate_points
        )
    p99_ms, reference_p99_ms = _ms(watched.latency, 99), _ms(checkpoint.latency, 99)
    ratio = (
        round(p99_ms / reference_p99_ms, 3)
        if p99_ms is not None and reference_p99_ms  # a 0 ms p99 has no ratio
        else None
    )
    slow_share = slow_low = None
    p99_crossed = False
    answered = watched.latency.count
    if (
        limits.p99_ratio is not None
        and reference_p99_ms
        and answered
        and checkpoint.latency.count >= MIN_CHECKPOINT_LATENCIES
    ):
        slow = count_above(watched.latency, limits.p99_ratio * reference_p99_ms * 1000)
        slow_share = round(slow / answered, 4)
        slow_low = wilson(slow, answered)[0]
        p99_crossed = answered >= MIN_REQUESTS and slow_low > TAIL_SHARE
        slow_low = round(slow_low, 4)
    return Comparison(
        requests=watched.requests,
        enough=enough,
        error_rate=_round(watched.error_rate),
        checkpoint_error_rate=_round(checkpoint.error_rate),
        error_points_low=None if error_low is None else round(error_low * 100, 3),
        error_crossed=error_crossed,
        p50_ms=_ms(watched.latency, 50),
        p99_ms=p99_ms,
        checkpoint_p50_ms=_ms(checkpoint.latency, 50),
        checkpoint_p99_ms=reference_p99_ms,
        p99_ratio=ratio,
        slow_share=slow_share,
        slow_share_low=slow_low,
        p99_crossed=p99_crossed,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
