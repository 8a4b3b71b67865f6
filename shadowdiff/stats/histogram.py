"""Latency histograms: HdrHistogram's log-linear bucketing (3 significant digits) kept in numpy
arrays. Pure; memory is bounded by the buckets used, never by how many values were recorded,
and two histograms merge exactly (counts add), whichever process or machine recorded them.

Values are whole microseconds. Below 2048 each value has its own bucket; above, each power of
two is split into 1024 equal buckets, so a bucket is never wider than 1/1024 of its value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

SIGNIFICANT_DIGITS: Final = 3
_SUB_BUCKET_BITS: Final = 10  # 1024 buckets per power of two above 2048
_LINEAR_LIMIT: Final = 2 << _SUB_BUCKET_BITS  # 2048
Int64Array = npt.NDArray[np.int64]


def bucket_index(values_us: Int64Array) -> Int64Array:
    """Bucket of each value: the value itself below 2048, else log-linear."""
    values = np.maximum(values_us, 0).astype(np.int64)
    # frexp gives v = m * 2**e with 0.5 <= m < 1, so e is the bit length (exact below 2**53).
    exponent = np.maximum(np.frexp(values.astype(np.float64))[1] - (_SUB_BUCKET_BITS + 1), 0)
    indexes: Int64Array = (exponent.astype(np.int64) << _SUB_BUCKET_BITS) + (values >> exponent)
    return indexes


def _exponent(index: Int64Array) -> Int64Array:
    exponent: Int64Array = np.maximum((index >> _SUB_BUCKET_BITS) - 1, 0)
    return exponent


def lowest_equivalent(index: Int64Array) -> Int64Array:
    """The smallest value that falls in each bucket."""
    index = np.asarray(index, dtype=np.int64)
    exponent = _exponent(index)
    lowest: Int64Array = np.where(
        index < _LINEAR_LIMIT, index, (index - (exponent << _SUB_BUCKET_BITS)) << exponent
    )
    return lowest


def highest_equivalent(index: Int64Array) -> Int64Array:
    """The largest value that falls in each bucket (what HdrHistogram reports)."""
    index = np.asarray(index, dtype=np.int64)
    highest: Int64Array = lowest_equivalent(index) + (np.int64(1) << _exponent(index)) - 1
    return highest


def bucket_count_covering(value_us: int) -> int:
    """How many powers of two HdrHistogram's layout (2048 sub-buckets, 3 digits) needs to hold
    `value_us`: its `bucketCount` for a histogram whose highest trackable value this is."""
    buckets, smallest_untrackable = 1, _LINEAR_LIMIT
    while smallest_untrackable <= value_us:
        smallest_untrackable <<= 1
        buckets += 1
    return buckets


class LatencyHistogram:
    """Counts of the buckets that hold anything (`indexes` ascending, `counts` beside them);
    plus exact count, min, max and sum.

    Sparse, not a dense array over the range seen: a run of many distinct requests keeps one
    histogram per request and side, each with a few dozen values spread over thousands of
    buckets (5,000 requests held 543 MB dense); a busy one still has at most a few thousand."""

    __slots__ = ("count", "counts", "indexes", "max_us", "min_us", "sum_squares", "sum_us")

    def __init__(self) -> None:
        self.indexes: Int64Array = np.zeros(0, dtype=np.int64)
        self.counts: Int64Array = np.zeros(0, dtype=np.int64)
        self.count = 0
        self.min_us: int | None = None
        self.max_us: int | None = None
        self.sum_us = 0
        self.sum_squares = 0.0  # float: squares of long latencies overflow int64

    def record(self, values_us: Int64Array | Sequence[int]) -> None:
        """Record many values at once (vectorised)."""
        values = np.asarray(values_us, dtype=np.int64)
        if values.size == 0:
            return
        indexes, counts = np.unique(bucket_index(values), return_counts=True)
        self._add(indexes, counts.astype(np.int64))
        self.count += int(values.size)
        smallest, largest = int(values.min()), int(values.max())
        self.min_us = smallest if self.min_us is None else min(self.min_us, smallest)
        self.max_us = largest if self.max_us is None else max(self.max_us, largest)
        self.sum_us += int(values.sum())
        floats = values.astype(np.float64)
        self.sum_squares += float(np.dot(floats, floats))

    def _add(self, indexes: Int64Array, counts: Int64Array) -> None:
        """Add counts to buckets (`indexes` ascending and distinct)."""
        if self.indexes.size == 0:
            self.indexes, self.counts = indexes.copy(), counts.copy()
            return
        if np.array_equal(indexes, self.indexes):
            self.counts = self.counts + counts
            return
        merged, position = np.unique(np.concatenate((self.indexes, indexes)), return_inverse=True)
        summed = np.zeros(merged.size, dtype=np.int64)
        np.add.at(summed, position, np.concatenate((self.counts, counts)))
        self.indexes, self.counts = merged, summed

    def merge(self, other: LatencyHistogram) -> None:
        """Add `other` into this one; exact."""
        if other.count == 0:
            return
        self._add(other.indexes, other.counts)
        self.count += other.count
        self.min_us = other.min_us if self.min_us is None else min(self.min_us, other.min_us or 0)
        self.max_us = other.max_us if self.max_us is None else max(self.max_us, other.max_us or 0)
        self.sum_us += other.sum_us
        self.sum_squares += other.sum_squares

    def value_at_rank(self, rank: int) -> int:
        """The `rank`-th smallest value (1-based), as its bucket's highest equivalent value,
        clamped to the exact maximum."""
        cumulative = np.cumsum(self.counts)
        position = min(int(np.searchsorted(cumulative, rank)), self.indexes.size - 1)
        value = int(highest_equivalent(self.indexes[position : position + 1])[0])
        return min(value, self.max_us if self.max_us is not None else value)

    def bounds_at_rank(self, rank: int) -> tuple[int, int]:
        """The smallest and largest value the `rank`-th smallest value (1-based) can be: its
        bucket's range, clamped to the exact minimum and maximum."""
        cumulative = np.cumsum(self.counts)
        position = min(int(np.searchsorted(cumulative, rank)), self.indexes.size - 1)
        bucket = self.indexes[position : position + 1]
        low, high = int(lowest_equivalent(bucket)[0]), int(highest_equivalent(bucket)[0])
        if self.min_us is not None:
            low = max(low, self.min_us)
        if self.max_us is not None:
            high = min(high, self.max_us)
        return min(low, high), high

    def percentiles(self, quantiles: Iterable[float]) -> list[int]:
        """Values at each percentile (0-100), HdrHistogram's way: the smallest bucket whose
        cumulative count reaches ceil(q% of count)."""
        if self.count == 0:
            return []
        cumulative = np.cumsum(self.counts)
        ranks = [max(1, math.ceil(q / 100 * self.count)) for q in quantiles]
        positions = np.minimum(np.searchsorted(cumulative, ranks), self.indexes.size - 1)
        values = highest_equivalent(self.indexes[positions])
        return [min(int(v), self.max_us or int(v)) for v in values]

    @property
    def mean_us(self) -> float:
        return self.sum_us / self.count if self.count else 0.0

    @property
    def std_us(self) -> float:
        if self.count < 2:
            return 0.0
        variance = self.sum_squares / self.count - self.mean_us**2
        return math.sqrt(max(variance, 0.0))

    def nonzero(self) -> tuple[Int64Array, Int64Array]:
        """(bucket values, counts) of the buckets that hold anything."""
        return highest_equivalent(self.indexes), self.counts

    def to_dict(self) -> dict[str, Any]:
        """Sparse and exact: enough to merge histograms from other runs or machines."""
        return {
            "unit": "us",
            "significant_digits": SIGNIFICANT_DIGITS,
            "count": self.count,
            "min": self.min_us,
            "max": self.max_us,
            "sum": self.sum_us,
            "sum_squares": self.sum_squares,
            "buckets": [
                [int(index), int(count)]
                for index, count in zip(self.indexes, self.counts, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        histogram = cls()
        buckets = sorted((index, count) for index, count in data["buckets"] if count)
        if buckets:
            histogram.indexes = np.array([index for index, _ in buckets], dtype=np.int64)
            histogram.counts = np.array([count for _, count in buckets], dtype=np.int64)
        histogram.count, histogram.min_us, histogram.max_us = (
            data["count"],
            data["min"],
            data["max"],
        )
        histogram.sum_us, histogram.sum_squares = data["sum"], data["sum_squares"]
        return histogram

    # Unhashable (mutable): a class that defines __eq__ and no __hash__ gets __hash__ = None.
    def __eq__(self, other: object) -> bool:
        """Same buckets, count, min, max and sum (sum_squares is float and left out)."""
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self.to_dict() | {"sum_squares": 0} == other.to_dict() | {"sum_squares": 0}


class DifferenceHistogram:
    """Signed per-pair differences (candidate minus baseline, same request, same moment)."""

    __slots__ = ("faster", "slower", "zero")

    def __init__(self) -> None:
        self.faster = LatencyHistogram()  # |difference| where the candidate was faster
        self.slower = LatencyHistogram()  # where it was slower
        self.zero = 0

    def record(self, differences_us: Int64Array | Sequence[int]) -> None:
        values = np.asarray(differences_us, dtype=np.int64)
        self.faster.record(-values[values < 0])
        self.slower.record(values[values > 0])
        self.zero += int((values == 0).sum())

    def merge(self, other: DifferenceHistogram) -> None:
        self.faster.merge(other.faster)
        self.slower.merge(other.slower)
        self.zero += other.zero

    @property
    def count(self) -> int:
        return self.faster.count + self.slower.count + self.zero

    def signed(self) -> tuple[Int64Array, Int64Array]:
        """(values, counts) in ascending order, negative where the candidate was faster."""
        faster_values, faster_counts = self.faster.nonzero()
        slower_values, slower_counts = self.slower.nonzero()
        zero = np.array([self.zero] if self.zero else [], dtype=np.int64)
        values = np.concatenate(
            [-faster_values[::-1], np.zeros(len(zero), dtype=np.int64), slower_values]
        )
        return values, np.concatenate([faster_counts[::-1], zero, slower_counts])

    def percentiles(self, quantiles: Iterable[float]) -> list[int]:
        total = self.count
        values = []
        for q in quantiles:
            rank = max(1, math.ceil(q / 100 * total))
            if rank <= self.faster.count:
                values.append(-self.faster.value_at_rank(self.faster.count - rank + 1))
            elif rank <= self.faster.count + self.zero:
                values.append(0)
            else:
                values.append(self.slower.value_at_rank(rank - self.faster.count - self.zero))
        return values
