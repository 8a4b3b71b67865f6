"""The bootstrap behind `latency.comparison` and the paired shift: drawing one Beta variate
per resample must give the same distribution of a percentile as resampling every value."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.stats.histogram import LatencyHistogram
from shadowdiff.stats.latency import _resampled_quantile, compare_latency

RESAMPLES = 3000
# Two empirical distributions of 3,000 draws each: by the DKW inequality their CDFs differ by
# more than 0.06 with probability under 1e-4 when they are the same distribution.
CDF_TOLERANCE = 0.06


def _resampled_by_drawing_every_value(
    values: np.ndarray, counts: np.ndarray, q: float, rng: np.random.Generator
) -> np.ndarray:
    sample = np.repeat(values, counts)
    rank = max(1, math.ceil(q / 100 * len(sample)))
    draws = np.sort(rng.choice(sample, size=(RESAMPLES, len(sample))), axis=1)
    return draws[:, rank - 1].astype(np.float64)


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(1, 12), min_size=1, max_size=12),
    q=st.sampled_from([1, 50, 90, 99, 100]),
    seed=st.integers(0, 2**32 - 1),
)
def test_one_beta_draw_per_resample_matches_drawing_every_value(
    counts: list[int], q: float, seed: int
) -> None:
    values = np.arange(len(counts), dtype=np.int64) * 7 + 100
    counts_array = np.array(counts, dtype=np.int64)
    rng = np.random.default_rng(seed)
    fast = _resampled_quantile(values, counts_array, q, RESAMPLES, rng)
    slow = _resampled_by_drawing_every_value(values, counts_array, q, rng)
    assert set(np.unique(fast)) <= set(values.astype(np.float64))
    fast_cdf = np.searchsorted(np.sort(fast), values, side="right") / RESAMPLES
    slow_cdf = np.searchsorted(np.sort(slow), values, side="right") / RESAMPLES
    assert np.max(np.abs(fast_cdf - slow_cdf)) < CDF_TOLERANCE


def test_a_clear_slowdown_is_slower_and_the_same_distribution_is_alike() -> None:
    rng = np.random.default_rng(7)
    baseline, same, slower = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    baseline.record(rng.lognormal(7, 0.5, 50_000).astype(np.int64))
    same.record(rng.lognormal(7, 0.5, 50_000).astype(np.int64))
    slower.record((rng.lognormal(7, 0.5, 50_000) * 1.3).astype(np.int64))
    alike = compare_latency(baseline, same)
    assert {alike[p]["verdict"] for p in ("p50", "p90", "p99")} == {"alike"}
    worse = compare_latency(baseline, slower)
    assert {worse[p]["verdict"] for p in ("p50", "p90", "p99")} == {"slower"}
    assert worse["p50"]["low"] > 1.2
