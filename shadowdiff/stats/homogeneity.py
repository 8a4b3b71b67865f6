"""Whether two sides split their answers among the same categories in the same proportions: a
chi-square test of homogeneity on a 2 x k table of counts. Pure; the standard library only.

Used for a weighted canary (ingress-nginx `canary-weight`, HTTPRoute `backendRefs[].weight`):
each side picks the backend at random per request, so single pairs prove nothing, but the
proportions over many pairs must agree. The survival function of the chi-square distribution is
computed exactly for whole degrees of freedom (the closed forms of the regularised upper
incomplete gamma function), so no statistics library is needed for this one test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

# Expected counts under this make the chi-square approximation unreliable (Cochran's rule of
# thumb wants at least 5 in most cells); such categories are pooled into one before testing.
MIN_EXPECTED: Final = 5.0


def chi_square_survival(statistic: float, degrees: int) -> float:
    """P(X >= statistic) for X chi-square with `degrees` (a whole number >= 1) of freedom."""
    if degrees < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    if degrees % 2 == 0:
        # Q(k, x) for whole k: exp(-x) * sum_{i<k} x^i / i!
        term, total = 1.0, 1.0
        for i in range(1, degrees // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    # Half-integer k: erfc(sqrt(x)) + exp(-x) * sum_{i<k-1/2} x^(i-1/2) / Gamma(i+1/2)
    total = math.erfc(math.sqrt(half))
    term = math.exp(-half) * math.sqrt(half) / math.gamma(1.5)
    for i in range(1, (degrees + 1) // 2):
        total += term
        term *= half / (i + 0.5)
    return min(1.0, total)


@dataclass(frozen=True, slots=True)
class Homogeneity:
    statistic: float
    degrees: int
    p_value: float


def homogeneity(baseline: Mapping[str, int], candidate: Mapping[str, int]) -> Homogeneity | None:
    """The chi-square test that both count tables come from one set of proportions, or None
    when there is nothing to test (a side with no counts, or a single category overall)."""
    baseline_total, candidate_total = sum(baseline.values()), sum(candidate.values())
    if baseline_total <= 0 or candidate_total <= 0:
        return None
    total = baseline_total + candidate_total
    categories = sorted(set(baseline) | set(candidate))
    # Pool the rare categories so that every tested cell can expect enough answers.
    kept: list[tuple[int, int]] = []
    pooled = [0, 0]
    for name in categories:
        before, after = baseline.get(name, 0), candidate.get(name, 0)
        smaller_side = min(baseline_total, candidate_total)
        if (before + after) * smaller_side / total < MIN_EXPECTED:
            pooled[0] += before
            pooled[1] += after
        else:
            kept.append((before, after))
    if sum(pooled):
        kept.append((pooled[0], pooled[1]))
    if len(kept) < 2:
        return None
    statistic = 0.0
    for before, after in kept:
        column = before + after
        for observed, side_total in ((before, baseline_total), (after, candidate_total)):
            expected = column * side_total / total
            statistic += (observed - expected) ** 2 / expected
    degrees = len(kept) - 1
    return Homogeneity(statistic, degrees, chi_square_survival(statistic, degrees))
