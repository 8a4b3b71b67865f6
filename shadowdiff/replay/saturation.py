"""Is the sender itself the bottleneck? Two measures, taken while pairs are sent:

- Late starts on a schedule (open model, `pace: recorded`): a pair that starts more than
  `LATE_NS` after its intended time is late either because every in-flight slot was taken (the
  targets answer too slowly for the rate, or `load.max_in_flight` is too low) or because this
  process could not get to it in time (its event loop was busy). Each late start is counted
  under its cause, as k6 counts dropped iterations.
- Event-loop lag, in every load model: a ticker that sleeps `TICK_S` and measures how much
  later it woke. A busy loop delays every timer and every answer's processing alike, which
  inflates both sides' latencies (and, in the open model, the corrected ones most).

A stalling target leaves the loop idle and fills the slots; a saturated sender keeps the loop
busy. That is the difference the report shows (shadowdiff/report/document.py decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Final

LATE_NS: Final = 5_000_000  # a start this late (5 ms) is counted as late
TICK_S: Final = 0.02
LAG_NS: Final = 5_000_000  # a tick waking this much later than asked was held up


def cpu_demand_s() -> float:
    """Seconds this process's main thread has run or waited to run since it started.

    CPU time alone undercounts a sender on a machine busy with other work: it wants a core and
    gets part of one. Linux's /proc/self/schedstat adds the time spent waiting on a run queue;
    elsewhere CPU time is all there is."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/schedstat", encoding="ascii") as stats:
            running_ns, waiting_ns = stats.read().split()[:2]
        return (int(running_ns) + int(waiting_ns)) / 1e9
    return time.process_time()


@dataclass(slots=True)
class StartLateness:
    """Late starts of scheduled pairs, by cause."""

    late_by_sender: int = 0
    late_by_slots: int = 0
    _slot_free_ns: int = 0  # when the previous pair got its slot

    def record(self, intended_ns: int, before_slot_ns: int, started_ns: int) -> None:
        """One measured pair: meant to start at `intended_ns`, ready to take a slot at
        `before_slot_ns`, started at `started_ns`. Time spent waiting for a slot, by this pair
        or by the one before it, is the slots' doing; the rest is the sender's."""
        ready_ns = max(intended_ns, self._slot_free_ns)
        self._slot_free_ns = started_ns
        if started_ns - intended_ns <= LATE_NS:
            return
        if before_slot_ns - ready_ns > LATE_NS:
            self.late_by_sender += 1
        else:
            self.late_by_slots += 1


@dataclass(slots=True)
class LoopLag:
    """How often, and how much, the event loop woke a timer late."""

    ticks: int = 0
    late_ticks: int = 0
    max_ns: int = 0

    async def watch(self) -> None:
        """Tick until cancelled."""
        asked_ns = int(TICK_S * 1e9)
        while True:
            before = time.perf_counter_ns()
            await asyncio.sleep(TICK_S)
            lag_ns = time.perf_counter_ns() - before - asked_ns
            self.ticks += 1
            if lag_ns > LAG_NS:
                self.late_ticks += 1
            self.max_ns = max(self.max_ns, lag_ns)
