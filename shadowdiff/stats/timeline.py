"""Pairs completed, and failures per side, over time: counts per interval of the wall clock,
bounded and mergeable. Pure (the standard library only); the caller says when each pair ended.

Intervals are aligned on the Unix epoch (interval number = Unix time // `interval_s`) and
`interval_s` is always a power of two seconds, so two timelines, from two worker processes or
two machines, line up once the finer one is coarsened to the other's interval: merging adds
counts, exactly. A timeline never spans more than `MAX_INTERVALS` intervals: when a pair lands
past that, every interval is doubled (neighbours added together), so a day-long run keeps a
few hundred intervals of a few minutes each, and memory never grows with the run's length.
"""

from __future__ import annotations

from typing import Any, Final

# The report's names of the two sides (shadowdiff.spec.SIDES; stats imports nothing of ours).
SIDES: Final = ("baseline", "candidate")

# A thousand points is more than a plot's width in pixels shows, and under 30 KB of JSON.
MAX_INTERVALS: Final = 1024
_NS_PER_S: Final = 1_000_000_000
# The counts kept per interval, in this order (`add` writes the indexes out).
_PAIRS: Final = 0
_FAILURES: Final = {"baseline": 1, "candidate": 2}
_SERVER_ERRORS: Final = {"baseline": 3, "candidate": 4}
_COUNTS: Final = 5


class Timeline:
    """Per interval: pairs completed, transport failures per side, 5xx answers per side."""

    __slots__ = ("counts", "interval_s")

    def __init__(self, interval_s: int = 1) -> None:
        if interval_s < 1 or interval_s & (interval_s - 1):
            raise ValueError(f"interval_s must be a power of two seconds, got {interval_s}")
        self.interval_s = interval_s
        # Interval number (Unix time // interval_s) -> counts, in the order above.
        self.counts: dict[int, list[int]] = {}

    def add(
        self,
        ended_unix_ns: int,
        failed: tuple[bool, bool] = (False, False),
        server_error: tuple[bool, bool] = (False, False),
    ) -> None:
        """One pair that ended at `ended_unix_ns`; `failed` and `server_error` per side, in
        the order of `SIDES` (a transport failure, an answer with a 5xx status)."""
        key = ended_unix_ns // (self.interval_s * _NS_PER_S)
        row = self.counts.get(key)
        new = row is None
        if row is None:
            row = self.counts[key] = [0] * _COUNTS
        # Once per pair: indexes written out rather than looped over.
        row[0] += 1
        row[1] += failed[0]
        row[2] += failed[1]
        row[3] += server_error[0]
        row[4] += server_error[1]
        if new:
            self._bound()

    def merge(self, other: Timeline) -> None:
        """Add `other`'s counts into this one (coarsening whichever is finer); exact."""
        self._coarsen_to(max(self.interval_s, other.interval_s))
        factor = self.interval_s // other.interval_s
        for key, row in other.counts.items():
            mine = self.counts.setdefault(key // factor, [0] * _COUNTS)
            for index, count in enumerate(row):
                mine[index] += count
        self._bound()

    def _bound(self) -> None:
        """Coarsen until the intervals held span at most MAX_INTERVALS."""
        if not self.counts:
            return
        first, last = min(self.counts), max(self.counts)
        factor = 1
        while last // factor - first // factor >= MAX_INTERVALS:
            factor *= 2
        self._coarsen_to(self.interval_s * factor)

    def _coarsen_to(self, interval_s: int) -> None:
        if interval_s == self.interval_s:
            return
        factor = interval_s // self.interval_s
        coarse: dict[int, list[int]] = {}
        for key, row in self.counts.items():
            mine = coarse.setdefault(key // factor, [0] * _COUNTS)
            for index, count in enumerate(row):
                mine[index] += count
        self.counts, self.interval_s = coarse, interval_s

    @property
    def pairs(self) -> int:
        return sum(row[_PAIRS] for row in self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """Dense arrays from the first interval with a pair to the last (zeros between), the
        report's `timeline`: merge two by coarsening to the larger `interval_s` and adding."""
        first = min(self.counts, default=0)
        span = max(self.counts) - first + 1 if self.counts else 0
        rows = [self.counts.get(first + offset, [0] * _COUNTS) for offset in range(span)]
        return {
            "interval_s": self.interval_s,
            "start_s": first * self.interval_s if self.counts else None,
            "pairs": [row[_PAIRS] for row in rows],
            "failures": {side: [row[_FAILURES[side]] for row in rows] for side in SIDES},
            "server_errors": {side: [row[_SERVER_ERRORS[side]] for row in rows] for side in SIDES},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        """A report's `timeline` back as a Timeline (to merge reports); ValueError when it is
        not one."""
        try:
            timeline = cls(int(data["interval_s"]))
            if data["start_s"] is None:
                return timeline
            first, remainder = divmod(int(data["start_s"]), timeline.interval_s)
            series = [
                data["pairs"],
                *(data["failures"][side] for side in SIDES),
                *(data["server_errors"][side] for side in SIDES),
            ]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a timeline: {exc!r}") from None
        if remainder or len({len(counts) for counts in series}) != 1:
            raise ValueError("not a timeline: unaligned start or series of unequal lengths")
        if len(series[0]) > MAX_INTERVALS:
            raise ValueError(f"not a timeline: more than {MAX_INTERVALS} intervals")
        for offset, row in enumerate(zip(*series, strict=True)):
            if any(not isinstance(count, int) or count < 0 for count in row):
                raise ValueError("not a timeline: a count that is not a whole number")
            if any(row):
                timeline.counts[first + offset] = list(row)
        return timeline
