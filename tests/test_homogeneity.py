"""The chi-square test of homogeneity behind the weighted-canary split check: exact survival
values, no false alarm on equal splits, and power on a weight turned around."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.stats.homogeneity import chi_square_survival, homogeneity

# Critical values of the chi-square distribution, from any statistics table.
CRITICAL = [
    (3.841, 1, 0.05),
    (6.635, 1, 0.01),
    (5.991, 2, 0.05),
    (13.816, 2, 0.001),
    (7.815, 3, 0.05),
    (16.266, 3, 0.001),
    (9.488, 4, 0.05),
    (20.515, 5, 0.001),
    (18.307, 10, 0.05),
]


@pytest.mark.parametrize(("statistic", "degrees", "p"), CRITICAL, ids=lambda v: str(v))
def test_survival_matches_the_tables(statistic: float, degrees: int, p: float) -> None:
    assert chi_square_survival(statistic, degrees) == pytest.approx(p, rel=2e-3)


@given(st.floats(0, 500, allow_nan=False), st.integers(1, 40))
def test_survival_is_a_probability_and_falls_as_the_statistic_grows(x: float, k: int) -> None:
    here, further = chi_square_survival(x, k), chi_square_survival(x + 1, k)
    assert 0.0 <= further <= here + 1e-12 and here <= 1.0  # the sums round near 1


def test_one_category_or_an_empty_side_is_nothing_to_test() -> None:
    assert homogeneity({"main": 50}, {"main": 70}) is None
    assert homogeneity({"main": 40, "canary": 10}, {}) is None


def test_the_same_shares_give_a_p_value_of_one() -> None:
    result = homogeneity({"main": 160, "canary": 40}, {"main": 80, "canary": 20})
    assert result is not None and math.isclose(result.p_value, 1.0)


def _simulated(weight_baseline: float, weight_candidate: float, pairs: int, runs: int) -> float:
    """The share of simulated runs in which the split is flagged at p < 0.0001."""
    random = np.random.default_rng(7)
    flagged = 0
    for _ in range(runs):
        canary_b = int(random.binomial(pairs, weight_baseline))
        canary_c = int(random.binomial(pairs, weight_candidate))
        result = homogeneity(
            {"main": pairs - canary_b, "canary": canary_b},
            {"main": pairs - canary_c, "canary": canary_c},
        )
        flagged += result is not None and result.p_value < 0.0001
    return flagged / runs


def test_equal_weights_raise_no_false_alarm_in_a_thousand_runs() -> None:
    assert _simulated(0.2, 0.2, 200, 1000) <= 0.002


def test_a_weight_turned_from_20_to_50_percent_is_found_in_200_pairs() -> None:
    assert _simulated(0.2, 0.5, 200, 300) >= 0.97


def test_rare_services_are_pooled_rather_than_inflating_the_statistic() -> None:
    # One stray answer from a third service must not make a difference on its own.
    result = homogeneity({"main": 160, "canary": 40}, {"main": 159, "canary": 40, "old-main": 1})
    assert result is not None and result.p_value > 0.5
