"""The intervals `compare-runs` judges by: checked against exact binomial sums, published
examples, and their promised coverage."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.stats.histogram import LatencyHistogram
from shadowdiff.stats.intervals import (
    answers_needed,
    binomial_cdf,
    newcombe_difference,
    percentile_rank_interval,
    poisson_rate_interval,
    rate_ratio_interval,
    wilson_interval,
)


def exact_cdf(trials: int, probability: Fraction, k: int) -> float:
    return float(
        sum(
            math.comb(trials, j) * probability**j * (1 - probability) ** (trials - j)
            for j in range(k + 1)
        )
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 150), st.integers(1, 99))
def test_binomial_cdf_is_the_exact_sum(trials: int, percent: int) -> None:
    first, cumulative = binomial_cdf(trials, percent / 100)
    for offset, value in enumerate(cumulative):
        assert value == pytest.approx(
            exact_cdf(trials, Fraction(percent, 100), first + offset), abs=1e-12
        )
    assert cumulative[-1] == pytest.approx(1.0, abs=1e-15)


def test_median_ranks_are_the_textbook_ones() -> None:
    # The 95% interval of a median from 100 values runs from the 40th to the 61st.
    assert percentile_rank_interval(100, 0.5, 0.95) == (40, 61)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 400), st.sampled_from([0.5, 0.9, 0.99]), st.sampled_from([0.9, 0.95]))
def test_percentile_rank_interval_keeps_its_coverage(
    count: int, quantile: float, confidence: float
) -> None:
    """Exact coverage: the interval between the r-th and s-th smallest values holds the
    population quantile when between r and s-1 values fall below it (a binomial count)."""
    low, high = percentile_rank_interval(count, quantile, confidence)
    q = Fraction(quantile).limit_denominator(1000)
    below_low = exact_cdf(count, q, (low or 0) - 1) if low else 0.0
    below_high = exact_cdf(count, q, high - 1) if high else 1.0
    assert below_high - below_low >= confidence - 1e-9
    assert (high is None) == (count < answers_needed(quantile, confidence))


def test_wilson_and_newcombe_match_newcombes_published_examples() -> None:
    """Newcombe (1998), Statistics in Medicine 17: 81/263 (method 3, Wilson), and 56/70 - 48/80
    (method 10, the hybrid score interval of a difference)."""
    low, high = wilson_interval(81, 263)
    assert (round(low or 0, 4), round(high or 0, 4)) == (0.2553, 0.3662)
    low, high = newcombe_difference(48, 80, 56, 70)
    assert (round(low or 0, 4), round(high or 0, 4)) == (0.0524, 0.3339)


def test_no_error_seen_still_bounds_the_rate_from_above() -> None:
    low, high = wilson_interval(0, 500)
    assert low == pytest.approx(0.0) and 0.005 < (high or 0) < 0.01


def test_rate_ratio_of_equal_rates_holds_one() -> None:
    low, high = rate_ratio_interval(300, 3.0, 300, 3.0)
    assert low is not None and high is not None and low < 1 < high
    low, high = rate_ratio_interval(1000, 10.0, 500, 10.0)
    assert high is not None and high < 0.6  # half the rate, clearly
    low, high = poisson_rate_interval(100, 2.0)
    assert low is not None and high is not None and low < 50 < high


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 10_000_000), min_size=1, max_size=300), st.integers(1, 300))
def test_histogram_rank_bounds_hold_the_exact_value(values: list[int], rank: int) -> None:
    """Whatever the bucketing, the bounds a rank maps to contain the exact order statistic."""
    histogram = LatencyHistogram()
    histogram.record(np.array(values, dtype=np.int64))
    rank = min(rank, len(values))
    low, high = histogram.bounds_at_rank(rank)
    assert low <= sorted(values)[rank - 1] <= high
    assert high - low <= max(sorted(values)[rank - 1] // 1024, 0) * 2 + 1
