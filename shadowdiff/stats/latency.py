"""Latency statistics from histograms: summaries, and whether the candidate is really slower.
Pure numpy; no I/O."""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from shadowdiff.stats.histogram import DifferenceHistogram, LatencyHistogram
from shadowdiff.stats.intervals import z_value

QUANTILES: Final = (50, 90, 95, 99, 99.9)
COMPARED_QUANTILES: Final = (50, 90, 99)
BOOTSTRAP_RESAMPLES: Final = 400
# Too few samples make a p99 meaningless; below this the comparison says so instead.
MIN_SAMPLES: Final = 20


def _label(q: float) -> str:
    return f"p{q:g}"


def summarize(histogram: LatencyHistogram, errors: int = 0) -> dict[str, Any]:
    """count, errors, min, mean, std, percentiles and max, in milliseconds."""
    if histogram.count == 0:
        return {"count": 0, "errors": errors}
    stats: dict[str, Any] = {
        "count": histogram.count,
        "errors": errors,
        "min": (histogram.min_us or 0) / 1000,
        "mean": round(histogram.mean_us / 1000, 3),
        "std": round(histogram.std_us / 1000, 3),
    }
    for q, value in zip(QUANTILES, histogram.percentiles(QUANTILES), strict=True):
        stats[_label(q)] = value / 1000
    stats["max"] = (histogram.max_us or 0) / 1000
    return stats


def compares_from_send(served_counts: tuple[int, int]) -> bool:
    """Whether the two sides are set side by side from the actual send: when both hold
    MIN_SAMPLES answers timed so (only the open model keeps them apart from the intended
    start). Measured from the intended start, a pair's wait for a slot in flight is the same
    on both sides and, when a stalling candidate fills the slots, long: a ratio of the two
    would hide the very slowdown that made the wait. The summaries stay from the intended
    start, so the wait still shows there (coordinated omission is not undone)."""
    return min(served_counts) >= MIN_SAMPLES


def compared_histograms(
    corrected: tuple[LatencyHistogram, LatencyHistogram],
    served: tuple[LatencyHistogram, LatencyHistogram],
) -> tuple[LatencyHistogram, LatencyHistogram]:
    """(baseline, candidate) to compare: `served` (from the actual send) when
    `compares_from_send` says so, else `corrected` (from the intended start)."""
    return served if compares_from_send((served[0].count, served[1].count)) else corrected


def summarize_differences(histogram: DifferenceHistogram) -> dict[str, Any]:
    """Candidate minus baseline per pair, in ms; negative: the candidate was faster."""
    if histogram.count == 0:
        return {"count": 0}
    quantiles = (1, 10, 50, 90, 99)
    values = histogram.percentiles(quantiles)
    return {
        "count": histogram.count,
        **{_label(q): v / 1000 for q, v in zip(quantiles, values, strict=True)},
    }


def _resampled_percentile(
    histogram: LatencyHistogram, q: float, resamples: int, rng: np.random.Generator
) -> np.ndarray[Any, np.dtype[np.float64]]:
    return _resampled_quantile(*histogram.nonzero(), q, resamples, rng)


def _resampled_quantile(
    values: np.ndarray[Any, Any],
    counts: np.ndarray[Any, Any],
    q: float,
    resamples: int,
    rng: np.random.Generator,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The q-th percentile of `resamples` bootstrap samples drawn from (values, counts).

    A bootstrap sample is n values F⁻¹(U₁)...F⁻¹(Uₙ) for n uniform draws and the empirical
    inverse distribution F⁻¹, which never decreases: so its r-th smallest value is F⁻¹ of the
    r-th smallest uniform, and that uniform follows Beta(r, n - r + 1). One Beta draw per
    resample gives exactly the distribution that drawing all n values would, in O(log bins)
    instead of O(bins): a multinomial over a histogram of thousands of buckets took 1.4 s per
    request compared at the end of a run.
    """
    total = int(counts.sum())
    rank = max(1, math.ceil(q / 100 * total))
    uniform_at_rank = rng.beta(rank, total - rank + 1, size=resamples)
    cumulative = np.cumsum(counts)
    # F⁻¹(u): the first value whose cumulative count reaches u·n.
    index = np.minimum(
        np.searchsorted(cumulative, uniform_at_rank * total, side="left"), len(values) - 1
    )
    resampled: np.ndarray[Any, np.dtype[np.float64]] = values[index].astype(np.float64)
    return resampled


def _ratio_interval(
    baseline: LatencyHistogram,
    candidate: LatencyHistogram,
    q: float,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    ratios = _resampled_percentile(candidate, q, resamples, rng) / np.maximum(
        _resampled_percentile(baseline, q, resamples, rng), 1.0
    )
    low, high = (float(v) for v in np.percentile(ratios, (2.5, 97.5)))
    return low, high


def percentile_ratio_interval(
    baseline: LatencyHistogram,
    candidate: LatencyHistogram,
    q: float,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """The 95% bootstrap interval of candidate/baseline at the q-th percentile (as
    `compare_latency` computes it); None when a side has no sample."""
    if not baseline.count or not candidate.count:
        return None
    return _ratio_interval(baseline, candidate, q, resamples, np.random.default_rng(seed))


def mean_ratio_interval(
    baseline: LatencyHistogram, candidate: LatencyHistogram
) -> tuple[float, float] | None:
    """An approximate 95% interval of candidate/baseline of the means: each mean's standard
    error, carried to the ratio's logarithm (the delta method). None below MIN_SAMPLES on a
    side or with a mean of zero: a standard error from a handful of latencies says little."""
    if min(baseline.count, candidate.count) < MIN_SAMPLES:
        return None
    if baseline.mean_us <= 0 or candidate.mean_us <= 0:
        return None
    spread = math.hypot(
        baseline.std_us / baseline.mean_us / math.sqrt(baseline.count),
        candidate.std_us / candidate.mean_us / math.sqrt(candidate.count),
    )
    ratio, z = candidate.mean_us / baseline.mean_us, z_value(0.95)
    return ratio * math.exp(-z * spread), ratio * math.exp(z * spread)


def compare_latency(
    baseline: LatencyHistogram,
    candidate: LatencyHistogram,
    *,
    regression_ratio: float = 1.1,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Candidate/baseline ratio of p50, p90 and p99 with a 95% bootstrap interval.

    A percentile is `slower` only when the whole interval lies above `regression_ratio`,
    `faster` only when it lies below its inverse, and `alike` otherwise: a difference the data
    cannot tell from chance is not reported.
    """
    if min(baseline.count, candidate.count) < MIN_SAMPLES:
        return {"verdict": "too few samples", "samples": min(baseline.count, candidate.count)}
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {}
    for q in COMPARED_QUANTILES:
        baseline_value, candidate_value = (
            baseline.percentiles((q,))[0],
            candidate.percentiles((q,))[0],
        )
        low, high = _ratio_interval(baseline, candidate, q, resamples, rng)
        verdict = "alike"
        if low > regression_ratio:
            verdict = "slower"
        elif high < 1 / regression_ratio:
            verdict = "faster"
        result[_label(q)] = {
            "ratio": round(candidate_value / max(baseline_value, 1), 4),
            "low": round(low, 4),
            "high": round(high, 4),
            "verdict": verdict,
        }
    return result


def paired_shift(
    difference: DifferenceHistogram, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict[str, Any] | None:
    """The median of candidate-minus-baseline per pair, in ms, with a 95% bootstrap interval.

    Each pair's two requests went out at the same moment, so the moment's load cancels out of
    their difference: a paired interval is far narrower than two sides resampled apart, and a
    real shift shows with a few dozen pairs. None below MIN_SAMPLES pairs.
    """
    if difference.count < MIN_SAMPLES:
        return None
    values, counts = difference.signed()
    rng = np.random.default_rng(seed)
    medians = _resampled_quantile(values, counts, 50, resamples, rng)
    low, high = (float(v) / 1000 for v in np.percentile(medians, (2.5, 97.5)))
    return {
        "median_ms": difference.percentiles((50,))[0] / 1000,
        "low_ms": round(low, 3),
        "high_ms": round(high, 3),
        "pairs": difference.count,
    }
