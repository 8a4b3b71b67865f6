"""Run a replay in several processes, one per core, and merge their results.

Each worker replays a deterministic share of the pairs (index k modulo n), so n workers
together send exactly what one process would, and returns its collector; histograms and
tallies merge exactly. Progress counters live in shared memory for the parent's display.
Ctrl-C reaches every process of the foreground group: each worker stops and still returns
what it completed.
"""

from __future__ import annotations

import asyncio
import datetime
import multiprocessing
import os
import queue
import resource
import signal
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from shadowdiff.engine import LoadOutcome, replay, tune_garbage_collection
from shadowdiff.report.collect import RunCollector
from shadowdiff.scenario import Scenario
from shadowdiff.spec import SIDES

_COUNTERS_PER_WORKER = 4  # pairs done, pairs differing, baseline failures, candidate failures


@dataclass
class WorkerResult:
    collector: RunCollector
    outcome: LoadOutcome | None
    peak_rss_kb: int
    interrupted: bool


class SharedProgress:
    """What a progress display reads, summed over workers from shared memory."""

    def __init__(self, counters: SynchronizedArray[Any], workers: int) -> None:
        self._counters = counters
        self._workers = workers

    def _sum(self, slot: int) -> int:
        return sum(self._counters[w * _COUNTERS_PER_WORKER + slot] for w in range(self._workers))

    @property
    def pairs_done(self) -> int:
        return self._sum(0)

    @property
    def pairs_with_differences(self) -> int:
        return self._sum(1)

    @property
    def failures(self) -> dict[str, int]:
        return {side: self._sum(2 + i) for i, side in enumerate(SIDES)}


def _worker(
    scenario: Scenario,
    worker: int,
    workers: int,
    concurrency: int | None,
    seed: int | None,
    today: datetime.date,
    counters: SynchronizedArray[Any],
    results: multiprocessing.Queue[WorkerResult],
) -> None:
    tune_garbage_collection()
    collector = RunCollector(accept=scenario.accept, today=today)
    base = worker * _COUNTERS_PER_WORKER

    def count(pair: Any) -> None:
        collector(pair)
        counters[base] = collector.pairs_done
        counters[base + 1] = collector.pairs_with_differences
        counters[base + 2] = collector.failures["baseline"]
        counters[base + 3] = collector.failures["candidate"]

    async def main() -> tuple[LoadOutcome | None, bool]:
        outcomes: list[LoadOutcome] = []
        task = asyncio.ensure_future(
            replay(
                scenario,
                count,
                concurrency=concurrency,
                seed=seed,
                share=(worker, workers),
                on_outcome=outcomes.append,
            )
        )
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            return (outcomes[0] if outcomes else None), True
        return outcomes[0], False

    try:
        import uvloop

        outcome, interrupted = uvloop.run(main())
    except ImportError:
        outcome, interrupted = asyncio.run(main())
    collector.flush()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.put(WorkerResult(collector, outcome, peak, interrupted))


def merge_outcomes(outcomes: list[LoadOutcome]) -> LoadOutcome | None:
    if not outcomes:
        return None
    first = outcomes[0]
    return LoadOutcome(
        model=first.model,
        pairs=sum(o.pairs for o in outcomes),
        elapsed_s=max(o.elapsed_s for o in outcomes),
        measured_s=max(o.measured_s for o in outcomes),
        target_rate=first.target_rate,
        started_on_time=sum(o.started_on_time for o in outcomes),
        interrupted=any(o.interrupted for o in outcomes),
    )


async def replay_in_workers(
    scenario: Scenario,
    collector: RunCollector,
    *,
    workers: int,
    concurrency: int | None = None,
    seed: int | None = None,
    progress: list[SharedProgress] | None = None,
) -> tuple[LoadOutcome | None, list[int], bool]:
    """Replay with `workers` processes, merging into `collector`. Returns the merged load
    outcome, each worker's peak RSS in KiB, and whether any worker was interrupted."""
    # spawn, not fork: the parent already runs an event loop (and possibly threads).
    context = multiprocessing.get_context("spawn")
    counters = context.Array("q", workers * _COUNTERS_PER_WORKER, lock=False)
    results: multiprocessing.Queue[WorkerResult] = context.Queue()
    if progress is not None:
        progress.append(SharedProgress(counters, workers))
    processes = [
        context.Process(
            target=_worker,
            args=(scenario, k, workers, concurrency, seed, collector.today, counters, results),
            daemon=True,
        )
        for k in range(workers)
    ]
    for process in processes:
        process.start()
    gathered: list[WorkerResult] = []
    while len(gathered) < workers:
        # Polled, not a blocking get in a thread: after Ctrl-C such a get would still take a
        # result and hand it to a cancelled future, and the parent would wait forever.
        try:
            gathered.append(results.get_nowait())
            continue
        except queue.Empty:
            pass
        try:
            await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            # Ctrl-C: pass it on (a terminal sends it to every process, a kill only to this
            # one), then keep collecting what the workers completed.
            for process in processes:
                if process.pid is not None and process.is_alive():
                    os.kill(process.pid, signal.SIGINT)
            continue
    for process in processes:
        process.join(timeout=5)
    for result in gathered:
        collector.merge(result.collector)
    outcomes = [r.outcome for r in gathered if r.outcome is not None]
    return (
        merge_outcomes(outcomes),
        [r.peak_rss_kb for r in gathered],
        any(r.interrupted for r in gathered),
    )
