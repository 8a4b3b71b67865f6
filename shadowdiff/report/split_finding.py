"""A `backend_split` request whose sides split their answers among backend services in clearly
different proportions becomes a difference signature like any other. Pure.

Behind a weighted canary each answer's backend is chance, on both sides: pair by pair the
backend is never compared (the loader ignores `backend` for these requests). Over all pairs the
shares must agree; a chi-square test of homogeneity decides (shadowdiff/stats/homogeneity.py).
"Clearly" means p < 0.0001 with at least 20 echoes per side: a scenario of a hundred split
requests raises a false alarm in about one clean run of a hundred, and a weight turned from
20% to 50% is found in 200 pairs almost always (power above 0.99; in 100 pairs about 0.7),
which is why `shadowdiff plan` repeats a canary's probes 200 times.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from shadowdiff.difference import Difference, Severity
from shadowdiff.report.collect import RequestTally
from shadowdiff.report.latency_finding import with_request_finding
from shadowdiff.stats.homogeneity import homogeneity

if TYPE_CHECKING:
    from shadowdiff.scenario.model import Acceptance

SPLIT_P_VALUE: Final = 0.0001
SPLIT_MIN_ANSWERS: Final = 20  # echoes naming a service, per side
SEVERITY: Final[Severity] = "error"


def shares(counts: Mapping[str, int]) -> str:
    """`api-v1 80% · api-v2 20% of 100`, the busiest first."""
    total = sum(counts.values())
    parts = [
        f"{name} {100 * count / total:.0f}%"
        for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
    return f"{' · '.join(parts)} of {total}"


def split_difference(tally: RequestTally) -> Difference | None:
    """The request's split difference, or None when the counts do not show one."""
    if not tally.request.backend_split:
        return None
    baseline, candidate = tally.backends["baseline"], tally.backends["candidate"]
    if min(sum(baseline.values()), sum(candidate.values())) < SPLIT_MIN_ANSWERS:
        return None
    test = homogeneity(baseline, candidate)
    if test is None or test.p_value >= SPLIT_P_VALUE:
        return None
    return Difference(
        "backend",
        "split",
        shares(baseline),
        f"{shares(candidate)} (chi-square p = {test.p_value:.1g})",
        SEVERITY,
    )


def with_split_finding(
    tally: RequestTally, accept: Sequence[Acceptance], today: datetime.date
) -> RequestTally:
    """`tally`, with its split difference among its signatures when it has one."""
    return with_request_finding(tally, split_difference(tally), accept, today)
