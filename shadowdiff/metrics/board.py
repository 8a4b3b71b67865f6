"""The counts behind the series, for one process: a fixed layout of int64 cells, one per label
combination and histogram bucket (the label sets are closed, see series.py), so that the
cells can live in shared memory and the parent of `--workers` processes reads every worker's
counts at each scrape without asking them.

The run's collector (report/collect.py) records into a `Board` as it tallies each pair, so a
figure here means what the report means by it. Pure bookkeeping: no clock, no I/O. Each
board is written by one process only; a reader sums boards and derives the histogram's
cumulative buckets and count from the per-bucket cells, so a scrape in the middle of an update
never shows a bucket above the count.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from typing import Final, Protocol

from shadowdiff.difference import DifferenceKind, Severity
from shadowdiff.metrics.series import (
    FAILURE_CLASSES,
    KINDS,
    LATENCY_BUCKETS_S,
    NONE,
    RULINGS,
    SEVERITIES,
    STATUS_CLASSES,
    Ruling,
)
from shadowdiff.observation import ErrorClass
from shadowdiff.spec import SIDES, Side

_PAIRS: Final = 0
_DIFFERING: Final = 1
_MEASURED: Final = 2  # pairs after warm-up: what the achieved rate counts
# When the replay started in this process (time.monotonic_ns(), one clock for every process
# of the machine); 0 until then. Boards are summed, except this: the earliest is read.
_STARTED: Final = 3
_REQUESTS: Final = 4
# Per side: the status classes, then the failure classes.
_OUTCOMES: Final = len(STATUS_CLASSES) + len(FAILURE_CLASSES)
_DIFFERENCES: Final = _REQUESTS + len(SIDES) * _OUTCOMES
_LATENCY: Final = _DIFFERENCES + len(SEVERITIES) * len(KINDS) * len(RULINGS)
# Per side: one cell per bucket, one for +Inf, and the sum in microseconds.
_PER_SIDE: Final = len(LATENCY_BUCKETS_S) + 2
CELLS: Final = _LATENCY + len(SIDES) * _PER_SIDE

_SIDE: Final[dict[Side, int]] = {side: i for i, side in enumerate(SIDES)}
_FAILURE: Final = {name: len(STATUS_CLASSES) + i for i, name in enumerate(FAILURE_CLASSES)}
_DIFFERENCE: Final[dict[tuple[Severity, DifferenceKind, Ruling], int]] = {
    (severity, kind, ruling): _DIFFERENCES + i
    for i, (severity, kind, ruling) in enumerate(
        (s, k, r) for s in SEVERITIES for k in KINDS for r in RULINGS
    )
}
# Bucket bounds in whole microseconds, as the collector measures: a value lands in the first
# bucket whose bound is at or above it ("le"), past the last in +Inf.
_BOUNDS_US: Final = tuple(round(bound * 1e6) for bound in LATENCY_BUCKETS_S)


class Cells(Protocol):
    """int64 cells: an `array("q")`, or a `multiprocessing` shared array of "q"."""

    def __getitem__(self, index: int, /) -> int: ...

    def __setitem__(self, index: int, value: int, /) -> None: ...


def new_cells(count: int = CELLS) -> array[int]:
    return array("q", bytes(8 * count))


class Board:
    """One process's counts, in `cells[base:base + CELLS]` (its own array by default, or its
    slice of an array shared with the parent)."""

    __slots__ = ("base", "cells")

    def __init__(self, cells: Cells | None = None, base: int = 0) -> None:
        self.cells: Cells = cells if cells is not None else new_cells()
        self.base = base

    def replay_started(self, monotonic_ns: int) -> None:
        if not self.cells[self.base + _STARTED]:
            self.cells[self.base + _STARTED] = monotonic_ns

    def pair(self, *, differs: bool, measured: bool) -> None:
        cells, base = self.cells, self.base
        cells[base + _PAIRS] += 1
        if differs:
            cells[base + _DIFFERING] += 1
        if measured:
            cells[base + _MEASURED] += 1

    def answer(self, side: Side, status: int) -> None:
        status_class = status // 100 - 1 if 100 <= status <= 599 else len(STATUS_CLASSES) - 1
        self.cells[self.base + _REQUESTS + _SIDE[side] * _OUTCOMES + status_class] += 1

    def failure(self, side: Side, error_class: ErrorClass) -> None:
        index = _FAILURE[error_class]
        self.cells[self.base + _REQUESTS + _SIDE[side] * _OUTCOMES + index] += 1

    def latency(self, side: Side, total_us: int) -> None:
        cells, start = self.cells, self.base + _LATENCY + _SIDE[side] * _PER_SIDE
        cells[start + bisect_left(_BOUNDS_US, total_us)] += 1
        cells[start + _PER_SIDE - 1] += total_us

    def difference(self, severity: Severity, kind: DifferenceKind, ruling: Ruling) -> None:
        self.cells[self.base + _DIFFERENCE[severity, kind, ruling]] += 1


class Counts:
    """Boards summed cell by cell, read as the series' values."""

    def __init__(self, boards: Iterable[tuple[Cells, int]]) -> None:
        total = [0] * CELLS
        starts = []
        for cells, base in boards:
            for i in range(CELLS):
                total[i] += cells[base + i]
            if cells[base + _STARTED]:
                starts.append(cells[base + _STARTED])
        total[_STARTED] = min(starts, default=0)
        self._total = total

    @property
    def pairs(self) -> int:
        return self._total[_PAIRS]

    @property
    def pairs_differing(self) -> int:
        return self._total[_DIFFERING]

    @property
    def pairs_measured(self) -> int:
        return self._total[_MEASURED]

    @property
    def replay_started_ns(self) -> int | None:
        """When the first process started its replay (time.monotonic_ns()); None before."""
        return self._total[_STARTED] or None

    def requests(self) -> Iterable[tuple[tuple[str, str, str], int]]:
        """((side, status class, failure class), count) for every combination that can
        occur: an answer has no failure class, a failure no status class."""
        for side in SIDES:
            start = _REQUESTS + _SIDE[side] * _OUTCOMES
            for i, status_class in enumerate(STATUS_CLASSES):
                yield (side, status_class, NONE), self._total[start + i]
            for name, index in _FAILURE.items():
                yield (side, NONE, name), self._total[start + index]

    def differences(self) -> Iterable[tuple[tuple[str, str, str], int]]:
        for key, index in _DIFFERENCE.items():
            yield key, self._total[index]

    def latency(self, side: Side) -> tuple[list[int], float]:
        """The cumulative count of each bucket (+Inf last, the count) and the sum in
        seconds."""
        start = _LATENCY + _SIDE[side] * _PER_SIDE
        cumulative, running = [], 0
        for value in self._total[start : start + _PER_SIDE - 1]:
            running += value
            cumulative.append(running)
        return cumulative, self._total[start + _PER_SIDE - 1] / 1e6
