"""Confidence intervals for comparing two runs: proportions (Wilson; Newcombe for a difference),
rates of events over time (Poisson), and percentiles straight from a histogram's ranks
(distribution-free, from the binomial distribution of ranks). Pure; numpy and the standard
library only.

The binomial distribution is computed here rather than taken from scipy: a window of its
probabilities, normalised, is all the percentile interval needs, and scipy would add tens of
megabytes and an untyped import to the package for that.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Final, NamedTuple

import numpy as np

# Beyond this many standard deviations (plus a margin for skewed distributions), what the
# window leaves out weighs less than 1e-20: nothing next to the tails compared (> 1e-3).
_WINDOW_SDS: Final = 10.0
_WINDOW_MARGIN: Final = 12


class Interval(NamedTuple):
    """[low, high]; None where the data cannot bound that side."""

    low: float | None
    high: float | None


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson's score interval for a proportion (Wilson 1927; Newcombe 1998, method 3): it
    stays inside [0, 1] and keeps its coverage at 0 and at n events, where the textbook
    p ± z·se says [0, 0] for no error seen."""
    if trials <= 0:
        return Interval(0.0, 1.0)
    z = z_value(confidence)
    share = successes / trials
    denominator = 1 + z * z / trials
    center = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    half /= denominator
    return Interval(max(0.0, center - half), min(1.0, center + half))


def newcombe_difference(
    events_before: int,
    trials_before: int,
    events_after: int,
    trials_after: int,
    confidence: float = 0.95,
) -> Interval:
    """The interval of (after - before) for two independent proportions: Newcombe's hybrid
    score interval (1998, method 10), built from each side's Wilson interval."""
    before = events_before / trials_before if trials_before else 0.0
    after = events_after / trials_after if trials_after else 0.0
    low_before, high_before = wilson_interval(events_before, trials_before, confidence)
    low_after, high_after = wilson_interval(events_after, trials_after, confidence)
    assert low_before is not None and high_before is not None
    assert low_after is not None and high_after is not None
    difference = after - before
    return Interval(
        difference - math.hypot(after - low_after, high_before - before),
        difference + math.hypot(high_after - after, before - low_before),
    )


def poisson_rate_interval(events: int, seconds: float, confidence: float = 0.95) -> Interval:
    """Events per second: the score interval for a Poisson count, divided by the time."""
    if seconds <= 0:
        return Interval(None, None)
    z = z_value(confidence)
    center = events + z * z / 2
    half = z * math.sqrt(events + z * z / 4)
    return Interval(max(0.0, center - half) / seconds, (center + half) / seconds)


def rate_ratio_interval(
    events_before: int,
    seconds_before: float,
    events_after: int,
    seconds_after: float,
    confidence: float = 0.95,
) -> Interval:
    """The interval of (rate after / rate before) for two Poisson counts. Given their sum,
    the later count is binomial with a share that only the ratio sets (the conditional test
    of Przyborowski and Wilenski, 1940); Wilson's interval for that share, turned back into a
    ratio."""
    total = events_before + events_after
    if total == 0 or seconds_before <= 0 or seconds_after <= 0:
        return Interval(None, None)
    low, high = wilson_interval(events_after, total, confidence)
    assert low is not None and high is not None
    scale = seconds_before / seconds_after

    def ratio(share: float) -> float | None:
        return None if share >= 1 else share / (1 - share) * scale

    return Interval(ratio(low), ratio(high))


def binomial_cdf(
    trials: int, probability: float
) -> tuple[int, np.ndarray[tuple[int], np.dtype[np.float64]]]:
    """P(B <= k) for B ~ Binomial(trials, probability), over a window of k that holds all but
    a negligible mass: (first k of the window, cumulative probabilities from it)."""
    if not 0 < probability < 1:
        raise ValueError("probability must lie strictly between 0 and 1")
    mean = trials * probability
    spread = _WINDOW_SDS * math.sqrt(mean * (1 - probability)) + _WINDOW_MARGIN
    first = max(0, math.floor(mean - spread))
    last = min(trials, math.ceil(mean + spread))
    ks = np.arange(first, last, dtype=np.float64)
    # log P(k+1) - log P(k) = log((n-k)/(k+1)) + log(p/(1-p)): summed, the log-probabilities
    # up to a constant, which the normalisation below removes.
    steps = np.log(trials - ks) - np.log(ks + 1) + math.log(probability / (1 - probability))
    log_mass = np.concatenate(([0.0], np.cumsum(steps)))
    mass = np.exp(log_mass - log_mass.max())
    cumulative: np.ndarray[tuple[int], np.dtype[np.float64]] = np.cumsum(mass) / mass.sum()
    return first, cumulative


class RankInterval(NamedTuple):
    """1-based ranks whose values bound a percentile; None where no rank does."""

    low: int | None
    high: int | None


def percentile_rank_interval(count: int, quantile: float, confidence: float) -> RankInterval:
    """Ranks r and s such that the `quantile` (0-1) of the population lies between the r-th and
    the s-th smallest of `count` values with probability at least `confidence`, whatever the
    distribution (the order-statistic interval: the number of values below the population
    quantile is Binomial(count, quantile)). The upper rank is None when `count` values are too
    few to bound the quantile from above (about 300 for a p99 at 95%)."""
    if count <= 0:
        return RankInterval(None, None)
    tail = (1 - confidence) / 2
    first, cumulative = binomial_cdf(count, quantile)
    # low: one past the largest k with P(B <= k) <= tail, so P(value at low > quantile) <= tail.
    below = int(np.searchsorted(cumulative, tail, side="right"))
    low = first + below
    # high: one past the smallest k with P(B <= k) >= 1 - tail.
    reached = int(np.searchsorted(cumulative, 1 - tail, side="left"))
    high = first + min(reached, cumulative.size - 1) + 1
    return RankInterval(low if low >= 1 else None, high if high <= count else None)


def answers_needed(quantile: float, confidence: float) -> int:
    """The fewest values whose largest bounds the `quantile` (0-1) from above at `confidence`
    (two-sided): q**n <= (1 - confidence) / 2."""
    tail = (1 - confidence) / 2
    return math.ceil(math.log(tail) / math.log(quantile))
