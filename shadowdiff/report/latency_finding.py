"""A request whose candidate is clearly slower becomes a difference signature like any other:
shown in the terminal, counted by severity, acceptable by an `accept` rule. Pure.

"Clearly" takes two tests on the paired per-pair difference (candidate minus baseline, same
request, same moment), so that a busy machine's jitter never counts: the low end of its
median's 95% interval must exceed `latency_min_difference_ms`, and, relative to the baseline's
median from its actual send, `latency_regression_ratio`. Either alone misleads: three times
0.2 ms is noise, and 10 ms more on a 2 s request is not a regression anyone feels. Pairs cancel
the moment's load out; resampling the two sides apart does not (connection set-up alone spreads
them widely).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shadowdiff.compare.acceptance import find_acceptance
from shadowdiff.difference import Difference, Severity
from shadowdiff.report.collect import RequestTally, SignatureTally
from shadowdiff.stats.latency import MIN_SAMPLES, compared_histograms, paired_shift

if TYPE_CHECKING:
    from shadowdiff.scenario.model import Acceptance


@dataclass(frozen=True, slots=True)
class LatencyRules:
    regression_ratio: float = 1.1
    min_difference_ms: float = 5.0
    severity: Severity = "warning"


def latency_difference(tally: RequestTally, rules: LatencyRules) -> Difference | None:
    """The request's latency difference, or None when the data does not show one."""
    baseline, candidate = (tally.latency[side].histogram for side in ("baseline", "candidate"))
    if min(baseline.count, candidate.count) < MIN_SAMPLES:
        return None
    shift = paired_shift(tally.difference.histogram, resamples=200)
    if shift is None or shift["low_ms"] <= rules.min_difference_ms:
        return None
    # Relative to each side's time from its actual send where the open model kept it: the
    # shared wait for a slot would hide the very slowdown it comes from.
    served = (tally.uncorrected["baseline"].histogram, tally.uncorrected["candidate"].histogram)
    baseline, candidate = compared_histograms((baseline, candidate), served)
    before, after = baseline.percentiles((50,))[0] / 1000, candidate.percentiles((50,))[0] / 1000
    if 1 + shift["low_ms"] / max(before, 0.001) <= rules.regression_ratio:
        return None
    return Difference(
        "latency",
        "p50",
        f"{before:.1f} ms",
        f"{after:.1f} ms (+{shift['median_ms']:.1f} ms per pair, 95% interval "
        f"+{shift['low_ms']:.1f} to +{shift['high_ms']:.1f} ms)",
        rules.severity,
    )


def with_request_finding(
    tally: RequestTally,
    difference: Difference | None,
    accept: Sequence[Acceptance],
    today: datetime.date,
) -> RequestTally:
    """`tally`, with `difference` among its signatures when there is one: a finding about the
    request as a whole (pair -1, counted over all its pairs), not about any one pair, so it
    makes no pair differ."""
    if difference is None:
        return tally
    signature = SignatureTally(difference)
    match = find_acceptance(accept, tally.request, difference, today) if accept else None
    signature.add(difference, -1, match)
    signature.count = tally.pairs
    if match is not None:
        signature.accepted, signature.expired = (
            (0, tally.pairs) if match.expired else (tally.pairs, 0)
        )
    return dataclasses.replace(
        tally, signatures={**tally.signatures, difference.signature: signature}
    )


def with_latency_finding(
    tally: RequestTally,
    rules: LatencyRules,
    accept: Sequence[Acceptance],
    today: datetime.date,
) -> RequestTally:
    """`tally`, with its latency difference among its signatures when it has one."""
    return with_request_finding(tally, latency_difference(tally, rules), accept, today)
