"""The order and timing of a run's pairs: which requests, how often, in which worker, and when
(the open model's arrival schedule). Pure: no clock, no network."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from shadowdiff.errors import UsageError
from shadowdiff.scenario import Scenario
from shadowdiff.scenario.model import LoadSettings
from shadowdiff.spec import RequestSpec

T = TypeVar("T")


def iter_requests(scenario: Scenario) -> Iterator[tuple[RequestSpec, int]]:
    """Each request of the scenario with its repetition number, in file order."""
    for request in scenario.requests:
        for repetition in range(request.repeat):
            yield request, repetition


def work_items(scenario: Scenario, load: LoadSettings | None) -> Iterator[tuple[RequestSpec, int]]:
    """The requests to send: the scenario once, or cycled when the load bounds the run.

    An unsafe request goes out in the first lap only (as often as it is written), unless it
    says `repeat_under_load`: a POST allowed once must not become thousands under load.
    """
    if load is None or (load.total_duration_s is None and load.max_pairs is None):
        return iter_requests(scenario)
    again = [spec for spec in scenario.requests if spec.may_repeat]

    def laps() -> Iterator[tuple[RequestSpec, int]]:
        yield from iter_requests(scenario)
        if not again:
            return
        while True:
            for request in again:
                for repetition in range(request.repeat):
                    yield request, repetition + 1

    return itertools.islice(laps(), load.max_pairs) if load.max_pairs else laps()


def deal(
    items: Iterable[T], share: tuple[int, int], request_name: Callable[[T], str]
) -> Iterator[tuple[int, T]]:
    """Worker k of n's items of the run (`share` = (k, n)), with their index in the whole run.

    Each request's occurrences are dealt to the workers in turn, and each new request starts
    one worker further along. So every worker sends the scenario's mix, whatever the order
    of the run (two requests cycled by a time-bounded run would otherwise give each of two
    workers one request only), and the n shares together are exactly the run. Every worker
    walks the whole run, so all of them deal alike."""
    worker, workers = share
    if workers == 1:
        yield from enumerate(items)
        return
    turns: dict[str, int] = {}  # grows with the distinct requests, like the scenario itself
    for index, item in enumerate(items):
        name = request_name(item)
        turn = turns.get(name, len(turns))
        turns[name] = turn + 1
        if turn % workers == worker:
            yield index, item


def rate_at(load: LoadSettings, elapsed_s: float) -> float:
    """The open model's target rate (pairs per second) at `elapsed_s` into the run."""
    if not load.stages:
        return load.rate or 0.0
    previous, start = 0.0, 0.0
    for stage in load.stages:
        if elapsed_s < start + stage.duration_s:
            return previous + (stage.rate - previous) * (elapsed_s - start) / stage.duration_s
        previous, start = stage.rate, start + stage.duration_s
    return previous


def _segments(load: LoadSettings) -> list[tuple[float, float, float, float]]:
    """(start_s, duration_s, rate at start, rate at end) of each linear piece of the schedule."""
    if not load.stages:
        rate = load.rate or 0.0
        return [(0.0, load.duration_s or math.inf, rate, rate)]
    segments, start, previous = [], 0.0, 0.0
    for stage in load.stages:
        segments.append((start, stage.duration_s, previous, stage.rate))
        start, previous = start + stage.duration_s, stage.rate
    return segments


def arrival_offsets(load: LoadSettings, rng: random.Random) -> Iterator[float]:
    """Intended start times (seconds from the start) of successive pairs.

    Arrivals fall where the integral of the rate crosses 0, 1, 2, ... (constant) or the sums
    of exponential draws (Poisson); on each linear stage that point is solved exactly, so a
    ramp from zero starts slowly and smoothly instead of waiting out a huge first gap.
    """
    threshold = rng.expovariate(1.0) if load.arrivals == "poisson" else 0.0
    done = 0.0  # the rate's integral up to the current segment's start
    for start, duration, rate_start, rate_end in _segments(load):
        slope = 0.0 if math.isinf(duration) else (rate_end - rate_start) / duration
        area = math.inf if math.isinf(duration) else (rate_start + rate_end) / 2 * duration
        if area <= 0:
            continue  # a pause: no pairs start in it
        # The end is exclusive: a stage worth five pairs starts five, the next begins at its end.
        while threshold < done + area:
            need = threshold - done
            if abs(slope) < 1e-12:
                offset = need / rate_start if rate_start > 0 else 0.0
            else:
                offset = (
                    -rate_start + math.sqrt(max(rate_start**2 + 2 * slope * need, 0.0))
                ) / slope
            yield start + offset
            threshold += rng.expovariate(1.0) if load.arrivals == "poisson" else 1.0
        done += area


def expected_pairs(load: LoadSettings, start_s: float, end_s: float, step_s: float = 0.01) -> float:
    """Pairs the schedule asks for between two moments (the rate's integral)."""
    steps = max(1, math.ceil((end_s - start_s) / step_s))
    width = (end_s - start_s) / steps
    return sum(rate_at(load, start_s + (i + 0.5) * width) * width for i in range(steps))


def pairs_in_flight(
    scenario: Scenario, load: LoadSettings | None, concurrency: int | None = None
) -> int:
    """Pairs in flight for the whole run, decided here and nowhere else.

    The open model starts pairs on schedule and holds at most `load.max_in_flight`: a
    concurrency has no say there, and one given anyway is refused rather than ignored.
    Otherwise the first given wins: `concurrency` (the --concurrency flag), then
    `load.concurrency`, then `defaults.concurrency`.
    """
    if load is not None and (load.model == "open" or load.pace == "recorded"):
        if concurrency is not None:
            which = "the open load model" if load.model == "open" else "load.pace: recorded"
            raise UsageError(
                f"--concurrency does not apply to {which}, which starts pairs on schedule; "
                "set load.max_in_flight in the scenario to bound the pairs in flight"
            )
        return load.max_in_flight
    return concurrency or (load.concurrency if load else None) or scenario.defaults.concurrency


def recorded_offsets(requests: Sequence[RequestSpec], speed: float) -> list[float]:
    """`load.pace: recorded`: when each request starts (seconds from the run's start), from
    its recorded time divided by `speed`, in the order of `requests`.

    Times of whole seconds (`$time_local` has nothing finer) are spread: the n requests of
    one second start k/n of a second apart, instead of n at once and then nothing. Times that
    go back (nginx logs a request when it ends, so a slow one comes after later ones) start
    the moment they are read: the schedule never goes back either.
    """
    if not requests:
        return []
    times = [float(request.recorded_at_s or 0.0) for request in requests]
    whole = all(time.is_integer() for time in times)
    if whole:
        per_second = Counter(times)
        seen: Counter[float] = Counter()
        spread = []
        for time in times:
            spread.append(time + seen[time] / per_second[time])
            seen[time] += 1
        times = spread
    first = times[0]
    offsets, latest = [], 0.0
    for time in times:
        latest = max(latest, (time - first) / speed)
        offsets.append(latest)
    return offsets


# A recorded schedule's window ends this long after its last start: a pair that starts a
# moment late at the very end still counts as on time.
_RECORDED_GRACE_S = 0.25
# Below this span a recorded schedule asks for no rate: a few requests recorded within a
# fraction of a second say nothing about one.
_RECORDED_MIN_SPAN_S = 1.0


@dataclass(frozen=True, slots=True)
class Schedule:
    """When pairs start, for the models that start them on schedule (open, pace: recorded)."""

    model: str  # "open" or "recorded", as the report names it
    offsets: Iterable[float]  # intended starts, in seconds from the run's start, in order
    end_s: float | None  # where the schedule's window ends; None when bounded by a count
    planned_between: Callable[[float, float], float | None]  # pairs asked for in [a, b)


def schedule_for(
    scenario: Scenario, load: LoadSettings | None, rng: random.Random
) -> Schedule | None:
    """The schedule of an open-model or recorded-pace run; None for a closed run."""
    if load is None:
        return None
    if load.pace == "recorded":
        offsets = recorded_offsets([request for request, _ in iter_requests(scenario)], load.speed)
        span_s = offsets[-1] if offsets else 0.0

        def recorded_between(start_s: float, end_s: float) -> float | None:
            if span_s < _RECORDED_MIN_SPAN_S:
                return None
            return float(sum(1 for offset in offsets if start_s <= offset < end_s))

        return Schedule("recorded", offsets, span_s + _RECORDED_GRACE_S, recorded_between)
    if load.model == "open":
        return Schedule(
            "open",
            arrival_offsets(load, rng),
            load.total_duration_s,
            lambda start_s, end_s: expected_pairs(load, start_s, end_s),
        )
    return None


def model_name(load: LoadSettings | None) -> str:
    """The load model as the report's `load.model` names it (a follow run's is "follow")."""
    if load is None:
        return "requests"
    return "recorded" if load.pace == "recorded" else load.model


# A live figure integrates the schedule in at most this many steps, whatever the run's length
# (a scrape must stay quick an hour into a run).
_LIVE_STEPS = 2000


def rates_so_far(
    load: LoadSettings | None, schedule: Schedule | None, elapsed_s: float, measured_pairs: int
) -> tuple[float | None, float | None, float | None]:
    """Live load figures `elapsed_s` into a replay, in pairs per second: the mean rate the
    schedule asked for after warm-up so far, the rate it asks for now (None for models
    without a schedule), and the mean achieved by the `measured_pairs` completed after
    warm-up (None during warm-up). The report's figures, at the end, count the pairs started
    on time instead: these count those completed."""
    warmup_s = load.warmup_s if load is not None else 0.0
    measured_s = elapsed_s - warmup_s
    achieved = measured_pairs / measured_s if measured_s > 0 else None
    if load is None or schedule is None:
        return None, None, achieved
    end_s = schedule.end_s if schedule.end_s is not None else math.inf
    until_s = min(elapsed_s, end_s)
    if until_s <= warmup_s:
        target = None
    elif schedule.model == "open":
        step_s = max(0.01, (until_s - warmup_s) / _LIVE_STEPS)
        target = expected_pairs(load, warmup_s, until_s, step_s) / (until_s - warmup_s)
    else:
        planned = schedule.planned_between(warmup_s, until_s)
        target = None if planned is None else planned / (until_s - warmup_s)
    if elapsed_s >= end_s:
        current: float | None = 0.0  # the schedule is over: it asks for nothing more
    elif schedule.model == "open":
        current = rate_at(load, elapsed_s)
    else:
        window_s = min(elapsed_s, 1.0)  # the recording's pace over the last second
        planned = schedule.planned_between(elapsed_s - window_s, elapsed_s)
        current = None if planned is None or window_s <= 0 else planned / window_s
    return target, current, achieved
