"""When to call for a rollback: a limit crossed by the candidate for K intervals in a row, while
DNS sends clients to it. Pure: interval comparisons in, a decision out.

What counts against the candidate is its direct path (every request to its own address, the
best-sampled view of it), judged against the checkpoint's baseline (watch/compare.py). Two
things keep a crossing from counting:

- the baseline crosses the same limit in the same interval: the backends they share, or the
  network, got worse, and going back to the baseline would not help (a false alarm otherwise);
- too few answers to judge (`Comparison.enough`): the streak neither grows nor breaks.

The streak grows while DNS does not point at the candidate yet (the table says "candidate
worse"), but only an interval in which some answers point at it can fire: rolling back DNS
that never moved has nothing to undo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from shadowdiff.watch.compare import Comparison, Limits

Rule = Literal["error_rate_points", "p99_ratio"]
RULES: Final[tuple[Rule, ...]] = ("error_rate_points", "p99_ratio")

Verdict = Literal[
    "ok",  # nothing crossed
    "too_few",  # too few answers on the candidate to judge this interval
    "both_worse",  # the baseline crossed the same limits: not the candidate's doing
    "candidate_worse",  # a limit crossed, not yet for `intervals` in a row, or DNS not moved
    "rollback",  # a limit crossed for `intervals` in a row while DNS points at the candidate
    "no_rules",  # nothing to judge against (no rollback_when and no flags)
]


@dataclass(frozen=True, slots=True)
class RollbackRules:
    error_rate_points: float | None = None
    p99_ratio: float | None = None
    intervals: int = 2

    @property
    def limits(self) -> Limits:
        return Limits(self.error_rate_points, self.p99_ratio)

    @property
    def any(self) -> bool:
        return self.error_rate_points is not None or self.p99_ratio is not None


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    crossed: tuple[Rule, ...]  # limits the candidate crossed in this interval (and counted)
    streaks: dict[Rule, int]  # consecutive intervals each limit has been crossed
    fired: Rule | None = None  # the limit that calls for the rollback


def _crossed(comparison: Comparison, rule: Rule) -> bool:
    return comparison.error_crossed if rule == "error_rate_points" else comparison.p99_crossed


@dataclass(slots=True)
class RollbackState:
    """The streaks so far; `decide` once per interval, in order."""

    rules: RollbackRules
    streaks: dict[Rule, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))

    def decide(
        self, candidate: Comparison, baseline: Comparison, candidate_in_dns: bool
    ) -> Decision:
        if not self.rules.any:
            return Decision("no_rules", (), dict(self.streaks))
        if not candidate.enough:
            return Decision("too_few", (), dict(self.streaks))
        crossed: list[Rule] = []
        shared = False
        for rule in RULES:
            if getattr(self.rules, rule) is None or not _crossed(candidate, rule):
                self.streaks[rule] = 0
                continue
            if baseline.enough and _crossed(baseline, rule):
                self.streaks[rule] = 0
                shared = True
                continue
            self.streaks[rule] += 1
            crossed.append(rule)
        streaks = dict(self.streaks)
        fired = next((rule for rule in crossed if streaks[rule] >= self.rules.intervals), None)
        if fired is not None and candidate_in_dns:
            return Decision("rollback", tuple(crossed), streaks, fired)
        if crossed:
            return Decision("candidate_worse", tuple(crossed), streaks)
        return Decision("both_worse" if shared else "ok", (), streaks)
