"""The rolling summary of a follow run: one plain line on stderr every few seconds (pairs,
differing, failures per side, lines read and skipped by reason), from `RunProgress` counts.

Plain lines rather than a redrawn bar: a follow run lasts hours and often runs where stderr
is a file or a pod's log, where each line should stay readable on its own.
"""

from __future__ import annotations

import math
from typing import Final, TextIO

from shadowdiff.pair import RunProgress

SUMMARY_EVERY_S: Final = 5.0


def follow_summary(counts: RunProgress) -> str:
    """One line, such as `following 1m05s: 240 pairs, 3 differ, failures baseline 0
    candidate 1; 10,512 lines read, 10,272 skipped (9,800 sampled_out, 472 filtered)`."""
    minutes, seconds = divmod(int(counts.elapsed_s), 60)
    elapsed = f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
    failures = counts.failures
    line = (
        f"following {elapsed}: {counts.pairs_done:,} pairs, "
        f"{counts.pairs_with_differences:,} differ, failures baseline "
        f"{failures['baseline']:,} candidate {failures['candidate']:,}"
    )
    if counts.lines_read is not None:
        skipped = sum(n for _, n in counts.lines_skipped)
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in counts.lines_skipped if n)
        line += f"; {counts.lines_read:,} lines read, {skipped:,} skipped"
        if reasons:
            line += f" ({reasons})"
    return line


class FollowSummaryLine:
    """Writes `follow_summary` to `stream` each time the run's elapsed time passes another
    `every_s` (fed by `update`, about ten times a second). The report that ends the run says
    the rest."""

    def __init__(self, stream: TextIO, every_s: float = SUMMARY_EVERY_S) -> None:
        self._stream = stream
        self._every_s = every_s
        self._next_s = every_s

    def update(self, counts: RunProgress) -> None:
        if counts.elapsed_s < self._next_s:
            return
        self._next_s = (math.floor(counts.elapsed_s / self._every_s) + 1) * self._every_s
        self._stream.write(follow_summary(counts) + "\n")
        self._stream.flush()
