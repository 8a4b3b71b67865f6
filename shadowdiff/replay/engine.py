"""The replay engine: send each request of a scenario to both targets, pair up the answers and
compare them. Network I/O goes through `Transport`s; what to do with each pair is the caller's
(a `PairSink`), so the engine keeps nothing per pair and memory does not grow with the run.

Two load models. Closed: a fixed number of pairs in flight, each worker sending its next pair
when the last one is answered. Open: pairs start at a target rate whatever the answers do, and
each pair carries its intended start time, so that latency can be measured from it: a stalled
entry point then shows in the figures instead of quietly slowing the sender (coordinated
omission, as wrk2 and oha measure).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from shadowdiff.compare import compare
from shadowdiff.compare.backend_split import answered_by
from shadowdiff.compare.options import CompareOptions, compare_options
from shadowdiff.endpoint import Endpoint
from shadowdiff.errors import RequestRefused
from shadowdiff.observation import LIMIT_STATUSES, Observation
from shadowdiff.pair import LoadOutcome, Pair, PairSink
from shadowdiff.replay.pacing import (
    Schedule,
    deal,
    pairs_in_flight,
    schedule_for,
    work_items,
)
from shadowdiff.replay.saturation import LoopLag, StartLateness, cpu_demand_s
from shadowdiff.scenario import Scenario
from shadowdiff.scenario.model import LoadSettings
from shadowdiff.spec import SIDES, RequestSpec
from shadowdiff.trace import new_pair_trace, parse_traceparent, written_traceparent
from shadowdiff.transport import Transport, open_transport
from shadowdiff.transport.loop_noise import quiet_loop_noise
from shadowdiff.wire import refusal, unsafe_reason, websocket_refusal

T = TypeVar("T")
# Opens a transport for an endpoint and the most sends it will have in flight at once.
TransportFactory = Callable[[Endpoint, int], Transport]


def tune_garbage_collection() -> None:
    """Collect cyclic garbage less often during a replay. Each pair allocates many small
    objects that reference counting frees on its own; the collector would otherwise keep
    scanning them (several percent of a replay's CPU). Objects from start-up are frozen out
    of its sight altogether. Call once, at the edge that starts a replay."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def refuse_unsendable(scenario: Scenario) -> None:
    """Raise `RequestRefused` before anything is sent if any request may change state on the
    backends without saying `allow_unsafe`, or cannot be written on the wire as it stands.

    The loader checks the same for scenario files; this is where every other way of building
    requests (the library, recorded sources) meets the same rule.
    """
    target_headers = [
        header for side in SIDES for header in getattr(scenario.targets, side).headers.items()
    ]
    reasons = [
        f"targets: {name} cannot be a target header: it would turn every request into "
        "another method"
        for name, _ in target_headers
        if unsafe_reason("GET", [(name, "")], None) is not None
    ]
    for spec in scenario.requests:
        reason = refusal(
            spec.method,
            spec.url,
            (*spec.headers, *target_headers),
            spec.body,
            allow_unsafe=spec.allow_unsafe,
            grpc_health=spec.grpc_health,
        )
        if reason is None and spec.websocket is not None:
            reason = websocket_refusal(
                spec.method,
                (*spec.headers, *target_headers),
                spec.body,
                spec.websocket.subprotocols,
                spec.websocket.extensions,
                spec.websocket.message,
                allow_unsafe=spec.allow_unsafe,
            )
        if reason is not None:
            reasons.append(f"{spec.name}: {reason}")
    if reasons:
        raise RequestRefused(reasons)


def refused(answer: Observation) -> bool:
    """Whether an answer is a refusal: no answer at all, or a limit's status code."""
    return answer.failure is not None or answer.status in LIMIT_STATUSES


class _PairRunner:
    """Sends one pair (and its noise calibration) and hands the result to the sink."""

    def __init__(
        self,
        scenario: Scenario,
        baseline: Transport,
        candidate: Transport,
        sink: PairSink,
        chooser: random.Random,
    ) -> None:
        self.baseline, self.candidate, self.sink, self.chooser = baseline, candidate, sink, chooser
        self.options: CompareOptions = compare_options(scenario)
        self.loop = asyncio.get_running_loop()
        self.noise_share = scenario.compare.noise.share
        # Computed once per request: only safe requests are ever sent a third time.
        self.safe = {id(spec): spec.unsafe_reason is None for spec in scenario.requests}
        # Per request name: the pairs whose own baseline answer was refused, each of which
        # lets one refused calibration count as a noise sample (see `run`).
        self.own_refusals: Counter[str] = Counter()
        self.completed = 0
        self.on_time = 0  # open model: pairs started within the schedule's window
        # Open model: pairs never started, no slot in flight having come free before the
        # schedule's window ended (k6's dropped_iterations).
        self.dropped = 0
        self.lateness = StartLateness()
        self.loop_lag = LoopLag()
        self.cpu_started_s = 0.0  # cpu_demand_s() when sending began
        self.trace = scenario.defaults.trace
        # A target's own traceparent header (an odd setting, but a deliberate one) is kept,
        # as a request's is: shadowdiff then adds none to that pair.
        target_headers = (getattr(scenario.targets, side).headers.items() for side in SIDES)
        self.targets_trace = next(
            (v for h in target_headers if (v := written_traceparent(tuple(h))) is not None), None
        )

    def _calibrate(self, request: RequestSpec, repetition: int) -> bool:
        # Never send an unsafe request a third time. The first of each request is always
        # calibrated so that every route has a noise sample, then a share of the repeats.
        if self.noise_share <= 0 or not self.safe.get(id(request), False):
            return False
        return repetition == 0 or self.chooser.random() < self.noise_share

    async def run(
        self,
        index: int,
        request: RequestSpec,
        repetition: int,
        intended_ns: int | None,
        measured: bool,
    ) -> None:
        calibrate = self._calibrate(request, repetition)
        trace_id, baseline_trace, candidate_trace, again_trace = self._trace(request, calibrate)
        # Both sends start before either is awaited, in random order, so neither target
        # systematically gets the head start or the warmer moment.
        baseline_first = self.chooser.random() < 0.5
        first, second = (
            (self.baseline, self.candidate) if baseline_first else (self.candidate, self.baseline)
        )
        first_trace, second_trace = (
            (baseline_trace, candidate_trace)
            if baseline_first
            else (candidate_trace, baseline_trace)
        )
        # `start` writes the request at once when a connection is ready (else it is a task,
        # which starts at the loop's next turn).
        first_sent = first.start(request, first_trace)
        second_sent = second.start(request, second_trace)
        try:
            first_answer = await first_sent
            second_answer = await second_sent
        except asyncio.CancelledError:
            first_sent.cancel()
            second_sent.cancel()
            raise
        again, interrupted = None, None
        # The calibration's request goes once the pair is answered, never beside it: sent at
        # once, it gave the baseline two requests where the candidate had one, and a baseline
        # that limits a client's connections (ingress-nginx limit-connections) refused one,
        # which made `status` noise and hid a candidate failing every pair.
        if calibrate:
            again_sent = self.baseline.start(request, again_trace)
            try:
                again = await again_sent
            except asyncio.CancelledError as cancelled:
                # Answered on both sides, the pair is what completed: it is handed on without
                # its noise sample, and the interruption goes on once it is.
                again_sent.cancel()
                interrupted = cancelled
        baseline_answer, candidate_answer = (
            (first_answer, second_answer) if baseline_first else (second_answer, first_answer)
        )
        baseline_answer.traceparent, candidate_answer.traceparent = baseline_trace, candidate_trace
        if again is not None:
            again.traceparent = again_trace
        # A second baseline answer refused where the pair's was served tells of a limit on
        # the baseline, not of an answer that varies: the calibration's request is one more
        # in the client's budget (ingress-nginx's limit-rps), or one more open at once when
        # other pairs are in flight (limit-connections). Counted as noise, it made `status`
        # noise and hid a candidate that refused every request.
        calibration_refused = again is not None and refused(again) and not refused(baseline_answer)
        # Yet a baseline that refuses its own pairs too (a flapping upstream) refuses a
        # calibration as often by chance: set aside, those left only the calibrations where
        # the pair's answer was the refused one, status noise looked half as frequent as it
        # is, and identical entry points failed. Each own refusal so far lets one refused
        # calibration count as noise; a limit, which refuses only the extra request, has none.
        if refused(baseline_answer):
            self.own_refusals[request.name] += 1
        elif calibration_refused and self.own_refusals[request.name] > 0:
            self.own_refusals[request.name] -= 1
            calibration_refused = False
        noise = (
            None
            if again is None or calibration_refused
            else tuple(compare(request, baseline_answer, again, self.options))
        )
        differences = compare(request, baseline_answer, candidate_answer, self.options)
        if request.ignore_kinds:
            differences = [d for d in differences if d.kind not in request.ignore_kinds]
            if noise is not None:
                noise = tuple(d for d in noise if d.kind not in request.ignore_kinds)
        self.sink(
            Pair(
                index,
                request,
                baseline_answer,
                candidate_answer,
                tuple(differences),
                noise,
                intended_ns,
                measured,
                backends=(
                    (
                        answered_by(baseline_answer, self.options),
                        answered_by(candidate_answer, self.options),
                    )
                    if request.backend_split
                    else None
                ),
                trace_id=trace_id,
                repetition=repetition,
                calibration_refused=calibration_refused,
            )
        )
        self.completed += 1
        if interrupted is not None:
            raise interrupted

    def _trace(
        self, request: RequestSpec, calibrate: bool
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """The pair's trace id, and the traceparent of the baseline's, the candidate's and
        the calibration's request (None: none is added).

        A traceparent the request (or a target) sets itself is kept and nothing is added: it
        is a probe of how each side propagates it, and the pair's trace id is then its own,
        when it is a valid one. Recorded requests never carry one (shadowdiff.sources drops
        them: they name a real user's trace, long over)."""
        if not self.trace:
            return None, None, None, None
        own = written_traceparent(request.headers) or self.targets_trace
        if own is not None:
            parsed = parse_traceparent(own)
            return (None if parsed is None else parsed.trace_id), None, None, None
        trace_id, values = new_pair_trace(3 if calibrate else 2)
        return trace_id, values[0], values[1], values[2] if calibrate else None


async def replay(
    scenario: Scenario,
    sink: PairSink,
    *,
    concurrency: int | None = None,
    transport_factory: TransportFactory = open_transport,
    seed: int | None = None,
    share: tuple[int, int] = (0, 1),
    load: LoadSettings | None = None,
    on_outcome: Callable[[LoadOutcome], None] | None = None,
) -> LoadOutcome:
    """Replay `scenario` against both targets, calling `sink` once per pair as it completes.

    `share` = (k, n) sends only worker k's pairs (see `deal`): n workers with k = 0..n-1
    together send exactly one run, each with the scenario's mix of requests. `load` overrides
    the scenario's. Cancelling the calling task (Ctrl-C) stops new pairs; the sink already
    holds what completed, and `on_outcome` (when given) receives how the run was paced,
    cancelled or not.
    """
    refuse_unsendable(scenario)
    load = load if load is not None else scenario.load
    worker_count, worker = share[1], share[0]
    # Each of n workers takes its share of the run's pairs in flight.
    in_flight = max(1, math.ceil(pairs_in_flight(scenario, load, concurrency) / worker_count))
    # Each side holds a pair's one request at a time (a calibrated pair sends its baseline
    # request again once the pair is answered, see _PairRunner.run).
    baseline = transport_factory(scenario.endpoint("baseline"), in_flight)
    candidate = transport_factory(scenario.endpoint("candidate"), in_flight)
    runner = _PairRunner(
        scenario, baseline, candidate, sink, random.Random(seed if seed is None else seed + worker)
    )
    schedule = schedule_for(scenario, load, random.Random(seed))
    started = time.perf_counter()
    interrupted = True
    loop = asyncio.get_running_loop()
    lag_watch = loop.create_task(runner.loop_lag.watch())
    runner.cpu_started_s = cpu_demand_s()
    with quiet_loop_noise(loop):
        try:
            if schedule is not None and load is not None:
                await _scheduled(runner, scenario, load, schedule, share, in_flight)
            else:
                await _closed_model(runner, scenario, load, share, in_flight)
            interrupted = False
            return _outcome(load, schedule, runner, time.perf_counter() - started, interrupted)
        finally:
            lag_watch.cancel()
            await asyncio.gather(
                baseline.close(), candidate.close(), lag_watch, return_exceptions=True
            )
            if on_outcome is not None:
                # Also when cancelled: an interrupted run still says how it was paced so far.
                elapsed_s = time.perf_counter() - started
                on_outcome(_outcome(load, schedule, runner, elapsed_s, interrupted))


def _outcome(
    load: LoadSettings | None,
    schedule: Schedule | None,
    runner: _PairRunner,
    elapsed_s: float,
    interrupted: bool,
) -> LoadOutcome:
    """How the run was paced, and whether the sender kept up."""
    return dataclasses.replace(
        _paced(load, schedule, runner, elapsed_s, interrupted),
        late_by_sender=runner.lateness.late_by_sender,
        late_by_slots=runner.lateness.late_by_slots,
        dropped=runner.dropped,
        loop_ticks=runner.loop_lag.ticks,
        loop_late_ticks=runner.loop_lag.late_ticks,
        loop_lag_max_ms=runner.loop_lag.max_ns / 1e6,
        cpu_share=(cpu_demand_s() - runner.cpu_started_s) / max(elapsed_s, 1e-9),
    )


def _paced(
    load: LoadSettings | None,
    schedule: Schedule | None,
    runner: _PairRunner,
    elapsed_s: float,
    interrupted: bool,
) -> LoadOutcome:
    if load is None or schedule is None:
        warmup = load.warmup_s if load else 0.0
        model = "closed" if load else "requests"
        return LoadOutcome(
            model,
            runner.completed,
            elapsed_s,
            max(elapsed_s - warmup, 0.0),
            interrupted=interrupted,
        )
    # The schedule's window: to its end, or to the interruption.
    end = (
        min(schedule.end_s or elapsed_s, elapsed_s)
        if interrupted
        else (schedule.end_s or elapsed_s)
    )
    measured_s = max(min(elapsed_s, end) - load.warmup_s, 0.0)
    planned = schedule.planned_between(load.warmup_s, end) if end > load.warmup_s else None
    target = None if planned is None else planned / max(end - load.warmup_s, 1e-9)
    return LoadOutcome(
        schedule.model,
        runner.completed,
        elapsed_s,
        measured_s,
        target,
        runner.on_time,
        interrupted,
    )


async def _closed_model(
    runner: _PairRunner,
    scenario: Scenario,
    load: LoadSettings | None,
    share: tuple[int, int],
    in_flight: int,
) -> None:
    work = (
        (index, request, repetition)
        for index, (request, repetition) in deal(
            work_items(scenario, load), share, lambda w: w[0].name
        )
    )
    started_ns = time.perf_counter_ns()
    deadline_ns = (
        started_ns + int(load.total_duration_s * 1e9) if load and load.total_duration_s else None
    )
    warmup_end_ns = started_ns + int((load.warmup_s if load else 0) * 1e9)

    async def loop() -> None:
        for index, request, repetition in work:
            now = time.perf_counter_ns()
            if deadline_ns is not None and now >= deadline_ns:
                return
            await runner.run(index, request, repetition, None, now >= warmup_end_ns)

    planned = scenario.pair_count
    loops = in_flight if planned is None else max(1, min(in_flight, math.ceil(planned / share[1])))
    async with asyncio.TaskGroup() as group:
        for _ in range(loops):
            group.create_task(loop())


async def _slot(in_flight: asyncio.Semaphore, end_ns: int | None) -> bool:
    """Take a slot in flight; False when none came free before `end_ns` (None: no end)."""
    if not in_flight.locked() or end_ns is None:
        await in_flight.acquire()
        return True
    try:
        async with asyncio.timeout_at(_loop_time_of(end_ns)):
            await in_flight.acquire()
    except TimeoutError:
        return False
    return True


def _loop_time_of(perf_ns: int) -> float:
    """The event loop's clock reading at the perf_counter moment `perf_ns`."""
    return asyncio.get_running_loop().time() + (perf_ns - time.perf_counter_ns()) / 1e9


async def _scheduled(
    runner: _PairRunner,
    scenario: Scenario,
    load: LoadSettings,
    schedule: Schedule,
    share: tuple[int, int],
    max_in_flight: int,
) -> None:
    """Start pairs on schedule (open model, or pace: recorded), counting in `runner.on_time`
    those started within the schedule's window. A pair still waiting for a slot in flight when
    the window ends is dropped with every later one (`runner.dropped`), so that targets too
    slow for the rate cannot stretch the run past its duration."""
    in_flight = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    started_ns = time.perf_counter_ns()
    end_ns = started_ns + int(schedule.end_s * 1e9) if schedule.end_s else None
    warmup_ns = int(load.warmup_s * 1e9)
    work = work_items(scenario, load)
    try:
        # Every worker walks the whole schedule and keeps its share, so that n workers together
        # follow exactly the schedule one would.
        dealt = deal(zip(schedule.offsets, work, strict=False), share, lambda a: a[1][0].name)
        for index, (offset_s, (request, repetition)) in dealt:
            intended_ns = started_ns + int(offset_s * 1e9)
            delay_ns = intended_ns - time.perf_counter_ns()
            if delay_ns > 0:
                await asyncio.sleep(delay_ns / 1e9)
            before_slot_ns = time.perf_counter_ns()
            if not await _slot(in_flight, end_ns):
                runner.dropped += 1 + sum(1 for _ in dealt)
                break
            actual_ns = time.perf_counter_ns()
            measured = intended_ns - started_ns >= warmup_ns
            if measured:
                runner.lateness.record(intended_ns, before_slot_ns, actual_ns)
            if measured and (end_ns is None or actual_ns <= end_ns):
                runner.on_time += 1
            task = asyncio.ensure_future(
                runner.run(index, request, repetition, intended_ns, measured)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _: in_flight.release())
        if tasks:
            await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise
