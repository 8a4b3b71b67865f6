"""A latency histogram as HdrHistogram's percentile distribution text (`.hgrm`), the format
`outputPercentileDistribution` writes and HdrHistogram's plotters (the online plotter,
HistogramLogAnalyzer, hdr-plot) read. Pure: a histogram in, text out.

The layout is HdrHistogram's own, line for line: a header, one line per percentile tick
(5 ticks per half distance to 100%, so steps of 10% up to 50%, 5% up to 75%, 2.5% up to
87.5%…), the last line at 100%, and the footer. Values are milliseconds with three decimals:
the histogram holds microseconds, printed with a value unit scaling ratio of 1000, as wrk2
prints its own. shadowdiff's buckets are HdrHistogram's (2048 sub-buckets, 3 significant
digits), so the values are the ones HdrHistogram would print for the same latencies, with two
refinements from the exact figures the report keeps: a value is capped at the exact maximum
(as the report's percentiles are), and the mean, standard deviation and maximum in the footer
are exact rather than taken from bucket midpoints.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, NamedTuple

import numpy as np

from shadowdiff.stats.histogram import LatencyHistogram, bucket_count_covering, highest_equivalent

TICKS_PER_HALF_DISTANCE: Final = 5
VALUE_UNIT_SCALING_RATIO: Final = 1000.0  # microseconds recorded, milliseconds printed
SUB_BUCKETS: Final = 2048  # HdrHistogram's subBucketCount for 3 significant digits
_DECIMALS: Final = 3  # HdrHistogram prints as many decimals as significant digits


class PercentileLine(NamedTuple):
    value_us: int
    percentile: float  # 0-100
    total_count: int  # values up to and including this one


def percentile_lines(
    histogram: LatencyHistogram, ticks_per_half_distance: int = TICKS_PER_HALF_DISTANCE
) -> Iterator[PercentileLine]:
    """HdrHistogram's PercentileIterator over the buckets that hold anything: at each tick, the
    first bucket whose cumulative share reaches it; then one last line at 100%."""
    total = histogram.count
    if total == 0:
        return
    values = highest_equivalent(histogram.indexes)
    if histogram.max_us is not None:
        values = np.minimum(values, histogram.max_us)
    cumulative = np.cumsum(histogram.counts)
    position, level = 0, 0.0
    reached = 0  # the count up to the bucket the iteration stands on (0 before the first)
    while reached < total:
        while 100.0 * int(cumulative[position]) / total < level:
            position += 1
        reached = int(cumulative[position])
        yield PercentileLine(int(values[position]), level, reached)
        level += 100.0 / _reporting_ticks(level, ticks_per_half_distance)
    yield PercentileLine(int(values[position]), 100.0, reached)


def _reporting_ticks(level: float, ticks_per_half_distance: int) -> int:
    """Ticks over the whole 0-100 range at this level's scale: halving the step each time half
    the remaining distance to 100% is crossed (HdrHistogram's PercentileIterator)."""
    remaining = 100.0 - level
    if remaining <= 0:  # past float resolution near 100%: no finer tick exists
        return 2**62
    halvings = int(math.log(100.0 / remaining) / math.log(2))
    return int(ticks_per_half_distance * 2 ** (halvings + 1))


def _fixed(value: float, decimals: int, width: int) -> str:
    """`value` with `decimals` decimals, as Java's Formatter writes `%W.Df`: it rounds the
    shortest decimal that names the double half up (0.9997802734375 -> ...438), where Python
    rounds the double's exact binary value (-> ...437)."""
    exact = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)
    return f"{exact:>{width}f}"


def render_hgrm(histogram: LatencyHistogram) -> str:
    """The percentile distribution of `histogram` as `.hgrm` text, values in milliseconds."""
    scale, digits = VALUE_UNIT_SCALING_RATIO, _DECIMALS
    lines = [f"{'Value':>12} {'Percentile':>14} {'TotalCount':>10} {'1/(1-Percentile)':>14}", ""]
    for value_us, percentile, total_count in percentile_lines(histogram):
        share = percentile / 100.0
        value = _fixed(value_us / scale, digits, 12)
        line = f"{value} {_fixed(share, 12, 2)} {total_count:10d}"
        if percentile != 100.0:
            line += f" {_fixed(1 / (1 - share), 2, 14)}"
        lines.append(line)
    maximum_us = histogram.max_us or 0
    buckets = bucket_count_covering(maximum_us)
    lines += [
        f"#[Mean    = {_fixed(histogram.mean_us / scale, digits, 12)}, "
        f"StdDeviation   = {_fixed(histogram.std_us / scale, digits, 12)}]",
        f"#[Max     = {_fixed(maximum_us / scale, digits, 12)}, "
        f"Total count    = {histogram.count:12d}]",
        f"#[Buckets = {buckets:12d}, SubBuckets     = {SUB_BUCKETS:12d}]",
    ]
    return "\n".join(lines) + "\n"
