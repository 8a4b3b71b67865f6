"""Latency histograms: accuracy, exact merging, and the signed difference distribution."""

from __future__ import annotations

import numpy as np
import pytest

from shadowdiff.stats.histogram import (
    DifferenceHistogram,
    LatencyHistogram,
    bucket_index,
    highest_equivalent,
)


def test_buckets_keep_three_significant_digits_across_the_range() -> None:
    values = np.unique(np.geomspace(1, 3_600_000_000, 20_000).astype(np.int64))
    indexes = bucket_index(values)
    assert np.all(np.diff(indexes) >= 0)  # monotone
    reported = highest_equivalent(indexes)
    assert np.all(reported >= values)
    assert np.all((reported - values) / values <= 1 / 1024)  # never more than 0.1% above


def test_percentiles_match_numpy_within_bucket_precision() -> None:
    rng = np.random.default_rng(1)
    samples = rng.lognormal(mean=8, sigma=1, size=200_000).astype(np.int64)
    histogram = LatencyHistogram()
    histogram.record(samples)
    for q, value in zip((50, 90, 99, 99.9), histogram.percentiles((50, 90, 99, 99.9)), strict=True):
        exact = np.percentile(samples, q, method="inverted_cdf")
        assert exact <= value <= exact * (1 + 1 / 1024) + 1
    assert histogram.count == samples.size
    assert (histogram.min_us, histogram.max_us) == (samples.min(), samples.max())
    assert histogram.mean_us == pytest.approx(samples.mean())
    assert histogram.std_us == pytest.approx(samples.std(), rel=1e-6)


def test_four_shards_merged_equal_the_single_run_exactly() -> None:
    rng = np.random.default_rng(7)
    samples = np.concatenate(
        [rng.lognormal(7, 0.5, 50_000), rng.lognormal(12, 1.5, 5_000), [0, 1, 2047, 2048, 10**10]]
    ).astype(np.int64)
    rng.shuffle(samples)
    single = LatencyHistogram()
    single.record(samples)
    merged = LatencyHistogram()
    for shard in np.array_split(samples, 4):
        part = LatencyHistogram()
        for batch in np.array_split(shard, 7):  # recorded in batches, as the collector does
            part.record(batch)
        merged.merge(part)
    assert merged == single
    assert np.array_equal(
        merged.counts[np.flatnonzero(merged.counts)], single.counts[np.flatnonzero(single.counts)]
    )
    assert merged.percentiles((50, 99, 99.9)) == single.percentiles((50, 99, 99.9))
    assert LatencyHistogram.from_dict(merged.to_dict()) == single


def test_memory_is_bounded_by_range_not_by_count() -> None:
    histogram = LatencyHistogram()
    for _ in range(50):
        histogram.record(np.random.default_rng().integers(1_000, 50_000, 20_000))
    assert histogram.count == 1_000_000
    assert histogram.counts.size < 8_000


def test_difference_distribution_keeps_sign() -> None:
    differences = DifferenceHistogram()
    differences.record([-300, -100, 0, 0, 50, 200, 5000])
    assert differences.count == 7
    assert differences.percentiles((0, 50, 100)) == [-300, 0, 5000]
    # Rank ceil(q% of 7): 14% -> 1st, 20% -> 2nd, 30% -> 3rd, 80% -> 6th smallest.
    assert differences.percentiles((14, 20, 30, 80)) == [-300, -100, 0, 200]


def test_few_values_far_apart_cost_a_few_buckets() -> None:
    """One histogram per request and side: a request with 40 pairs between 0.2 ms and 20 s
    must not hold an array over every bucket in between (thousands of requests did)."""
    histogram = LatencyHistogram()
    values = np.random.default_rng(3).integers(200, 20_000_000, 40)
    histogram.record(values)
    assert histogram.count == 40 and histogram.counts.size <= 40
    assert histogram.counts.nbytes + histogram.indexes.nbytes <= 640
    smallest, largest = histogram.percentiles((0, 100))
    assert largest == values.max() and smallest == pytest.approx(values.min(), rel=1 / 1024)
