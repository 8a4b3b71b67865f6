"""The replay engine: send every request of a scenario to both targets, pair up the answers and
compare them. Network I/O goes through `Transport`s; what to do with each pair is the caller's
(a `PairSink`), so the engine keeps nothing per pair and memory does not grow with the run.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shadowdiff.compare import Difference, compare
from shadowdiff.compare.options import compare_options
from shadowdiff.observation import Observation
from shadowdiff.scenario import Scenario
from shadowdiff.scenario.model import SAFE_METHODS
from shadowdiff.spec import RequestSpec, Side
from shadowdiff.transport import Transport, open_transport


@dataclass(frozen=True, slots=True)
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


PairSink = Callable[[Pair], None]
TransportFactory = Callable[[Scenario, Side, int], Transport]


def _default_transport(scenario: Scenario, side: Side, pool_size: int) -> Transport:
    return open_transport(scenario, side, pool_size)


def iter_requests(scenario: Scenario) -> Iterator[tuple[RequestSpec, int]]:
    """Each request of the scenario with its repetition number, in file order."""
    for request in scenario.requests:
        for repetition in range(request.repeat):
            yield request, repetition


async def replay(
    scenario: Scenario,
    sink: PairSink,
    *,
    concurrency: int | None = None,
    transport_factory: TransportFactory = _default_transport,
    seed: int | None = None,
) -> int:
    """Replay `scenario` against both targets, calling `sink` once per pair as it completes.

    Returns the number of pairs completed. Cancelling the calling task (Ctrl-C) stops new
    pairs and lets the caller report on what already reached the sink.
    """
    pairs_in_flight = concurrency or scenario.defaults.concurrency
    baseline = transport_factory(scenario, "baseline", pairs_in_flight)
    candidate = transport_factory(scenario, "candidate", pairs_in_flight)
    options = compare_options(scenario)
    noise_share = scenario.compare.noise.share
    chooser = random.Random(seed)
    work = enumerate(iter_requests(scenario))
    completed = 0

    def calibrate(request: RequestSpec, repetition: int) -> bool:
        # Never send an unsafe request a third time. The first of each request is always
        # calibrated so that every route has a noise sample, then a share of the repeats.
        if noise_share <= 0 or request.method not in SAFE_METHODS:
            return False
        return repetition == 0 or chooser.random() < noise_share

    async def worker() -> None:
        nonlocal completed
        for index, (request, repetition) in work:
            senders = [(baseline, "baseline"), (candidate, "candidate")]
            if calibrate(request, repetition):
                senders.append((baseline, "baseline-again"))
            # All sends are started before any is awaited, in random order, so neither target
            # systematically gets the head start or the warmer moment.
            chooser.shuffle(senders)
            tasks = {role: asyncio.ensure_future(sender.send(request)) for sender, role in senders}
            try:
                await asyncio.gather(*tasks.values())
            except asyncio.CancelledError:
                for task in tasks.values():
                    task.cancel()
                raise
            baseline_answer = tasks["baseline"].result()
            candidate_answer = tasks["candidate"].result()
            noise = None
            if "baseline-again" in tasks:
                noise = tuple(
                    compare(request, baseline_answer, tasks["baseline-again"].result(), options)
                )
            differences = compare(request, baseline_answer, candidate_answer, options)
            sink(Pair(index, request, baseline_answer, candidate_answer, tuple(differences), noise))
            completed += 1

    workers = min(pairs_in_flight, scenario.pair_count)
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
    finally:
        await asyncio.gather(baseline.close(), candidate.close(), return_exceptions=True)
    return completed
