"""What a replay hands on: a `Pair` per request sent to both targets, and the `LoadOutcome` of the
whole run. Plain data: the replay builds them, the report reads them; neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from shadowdiff.difference import Difference
from shadowdiff.observation import Observation
from shadowdiff.spec import RequestSpec, Side


@dataclass(slots=True)  # built per pair: not frozen, for the same reason as Observation
class Pair:
    """One request sent to both targets, the two answers and what differs between them."""

    index: int  # 0-based position in the run's order of requests
    request: RequestSpec
    baseline: Observation
    candidate: Observation
    differences: tuple[Difference, ...]
    # Noise calibration: how a second baseline answer differed from the first (None when this
    # pair was not calibrated).
    noise: tuple[Difference, ...] | None = None
    # Open model: when the pair was meant to start (perf_counter_ns). Latency measured from
    # here includes any wait for the client, so a stall cannot hide (coordinated omission).
    intended_ns: int | None = None
    measured: bool = True  # False during warm-up: compared, but left out of latency figures
    # `backend_split` requests: the service each side's echo says answered (None: no echo).
    backends: tuple[str | None, str | None] | None = None
    # The W3C trace id both requests carried (32 lower-case hex digits; see shadowdiff.trace),
    # to look the pair up in an APM on both data planes; None when the run sends none.
    trace_id: str | None = None
    repetition: int = 0  # which sending of `request` this is (0-based; laps of a load continue)
    # Noise calibration: the second baseline request was refused (see `refused`) where the
    # pair's was served, so it gave no noise sample (`noise` is None).
    calibration_refused: bool = False


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    """How the run was paced and whether it held its target."""

    model: str  # "requests" (each request its repeat count), "closed" or "open"
    pairs: int  # pairs completed by this process
    elapsed_s: float
    measured_s: float  # elapsed minus warm-up
    target_rate: float | None = None  # pairs per second the schedule asked for, after warm-up
    started_on_time: int = 0  # open, recorded: pairs started within the schedule's window
    interrupted: bool = False
    # Whether the sender kept up (shadowdiff/replay/saturation.py): scheduled pairs that
    # started late, by cause, and how often the event loop woke a timer late.
    late_by_sender: int = 0
    late_by_slots: int = 0
    # Open model: scheduled pairs never started, no slot in flight having come free before
    # the schedule's window ended (k6's dropped_iterations).
    dropped: int = 0
    loop_ticks: int = 0
    loop_late_ticks: int = 0
    loop_lag_max_ms: float = 0.0
    # The time this process ran or waited to run, over the elapsed time (1.0: a whole core).
    cpu_share: float = 0.0

    @property
    def achieved_rate(self) -> float:
        # A schedule (open, recorded) is held by the pairs that started within its window.
        scheduled = self.model in ("open", "recorded")
        pairs = self.started_on_time if scheduled else self.pairs
        return pairs / self.measured_s if self.measured_s > 0 else 0.0


PairSink = Callable[[Pair], None]


class RunProgress(NamedTuple):
    """Counts while the run goes on, for a progress display."""

    pairs_done: int
    pairs_planned: int | None  # None: bounded by time, not by a count
    pairs_with_differences: int
    failures: dict[Side, int]
    elapsed_s: float
    # A follow run's log so far: lines read, and lines not replayed by reason.
    lines_read: int | None = None
    lines_skipped: tuple[tuple[str, int], ...] = ()
