"""Comparing a run with a checkpoint from plain figures (no files): a planted slowdown or error
increase is flagged on the side it happened, and two samples of the same behaviour never are."""

from __future__ import annotations

import numpy as np

from shadowdiff.stats.histogram import LatencyHistogram
from shadowdiff.stats.run_comparison import (
    Check,
    RunComparison,
    RunFigures,
    RunThresholds,
    SideFigures,
    compare_runs,
)


def latencies_us(seed: int, count: int, median_ms: float, extra_ms: float = 0.0) -> np.ndarray:
    """Long-tailed latencies (lognormal), as entry points answer."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(np.log(median_ms * 1000), 0.5, count) + extra_ms * 1000
    return values.astype(np.int64)


def side(
    values_us: np.ndarray, *, failures: int = 0, server_errors: int = 0, seconds: float = 10.0
) -> SideFigures:
    histogram = LatencyHistogram()
    histogram.record(values_us)
    return SideFigures(
        latency=histogram,
        requests=histogram.count + failures,
        failures=failures,
        server_errors=server_errors,
        measured_s=seconds,
    )


def run(baseline: SideFigures, candidate: SideFigures) -> RunFigures:
    return RunFigures({"baseline": baseline, "candidate": candidate})


def status(comparison: RunComparison, subject: str, figure: str) -> Check:
    (check,) = [c for c in comparison.checks if (c.subject, c.figure) == (subject, figure)]
    return check


def test_a_planted_slowdown_is_worse_on_the_slowed_side_only() -> None:
    checkpoint = run(side(latencies_us(1, 2000, 20)), side(latencies_us(2, 2000, 20)))
    current = run(side(latencies_us(3, 2000, 20)), side(latencies_us(4, 2000, 20, extra_ms=60)))
    comparison = compare_runs(checkpoint, current)
    for figure in ("p50", "p90", "p99"):
        assert status(comparison, "candidate", figure).status == "worse"
        assert status(comparison, "baseline", figure).status == "alike"
    worse = status(comparison, "candidate", "p50")
    assert worse.change.low is not None and worse.change.low > 1.2
    assert {c.subject for c in comparison.worse} == {"candidate", "overall"}


def test_a_small_shift_under_the_floor_is_not_flagged() -> None:
    """30% slower on 2 ms latencies is 0.6 ms: real, but under the 5 ms floor."""
    checkpoint = run(side(latencies_us(1, 5000, 2)), side(latencies_us(2, 5000, 2)))
    current = run(side(latencies_us(3, 5000, 2)), side(latencies_us(4, 5000, 2.6)))
    assert compare_runs(checkpoint, current).worse == ()
    tight = RunThresholds(latency_min_difference_ms=0.1)
    assert status(compare_runs(checkpoint, current, tight), "candidate", "p50").status == "worse"


def test_two_samples_of_the_same_behaviour_are_never_worse() -> None:
    """No false alarm: 300 comparisons of the same latency distribution and error share, each
    drawn twice with other sizes (20 to 3000 answers, medians of 0.5 to 200 ms, error shares up
    to 2%), judged with the default thresholds. Seeded: the same 300 every time."""
    rng = np.random.default_rng(14)
    flagged: list[Check] = []
    for _ in range(300):
        sizes = rng.integers(20, 3000, 2)
        median_ms = float(rng.uniform(0.5, 200))
        error_share = float(rng.uniform(0, 0.02))

        def drawn(count: int, median_ms: float, error_share: float) -> SideFigures:
            values = rng.lognormal(np.log(median_ms * 1000), 0.5, count).astype(np.int64)
            return side(values, failures=int(rng.binomial(count, error_share)))

        checkpoint = run(*(drawn(sizes[0], median_ms, error_share) for _ in range(2)))
        current = run(*(drawn(sizes[1], median_ms, error_share) for _ in range(2)))
        flagged += compare_runs(checkpoint, current).worse
    assert flagged == []


def test_more_errors_beyond_the_threshold_are_worse_and_a_few_are_not() -> None:
    values = latencies_us(1, 1000, 10)
    checkpoint = run(side(values), side(values))
    current = run(side(values), side(values, failures=40))  # 0% -> 3.8%
    assert status(compare_runs(checkpoint, current), "candidate", "error_rate").status == "worse"
    current = run(side(values), side(values, failures=2))  # 0 -> 2 of 1002: chance
    assert status(compare_runs(checkpoint, current), "candidate", "error_rate").status == "alike"
    current = run(side(values, server_errors=60), side(values))
    compared = compare_runs(checkpoint, current)
    assert status(compared, "baseline", "server_error_rate").status == "worse"


def test_the_rate_is_judged_only_with_a_threshold() -> None:
    checkpoint = run(side(latencies_us(1, 1000, 10)), side(latencies_us(2, 1000, 10)))
    current = run(side(latencies_us(3, 500, 10)), side(latencies_us(4, 500, 10)))
    unchecked = status(compare_runs(checkpoint, current), "overall", "rate")
    assert (unchecked.status, unchecked.limit) == ("not judged", None)
    checked = compare_runs(checkpoint, current, RunThresholds(rate_drop=0.1))
    assert status(checked, "overall", "rate").status == "worse"
    assert status(checked, "overall", "rate").change.value == 0.5


def test_a_checkpoint_too_small_for_a_p99_is_not_judged_and_says_why() -> None:
    checkpoint = run(side(latencies_us(1, 100, 10)), side(latencies_us(2, 100, 10)))
    current = run(side(latencies_us(3, 100, 10, 100)), side(latencies_us(4, 100, 10, 100)))
    comparison = compare_runs(checkpoint, current)
    p99 = status(comparison, "candidate", "p99")
    assert p99.status == "not judged" and p99.reason is not None and "needs 706" in p99.reason
    assert status(comparison, "candidate", "p50").status == "worse"  # the median is bounded


def test_no_answers_at_all_leaves_nothing_judged() -> None:
    empty = run(side(np.array([], dtype=np.int64)), side(np.array([], dtype=np.int64)))
    comparison = compare_runs(empty, empty)
    assert comparison.judged == () and comparison.worse == ()
