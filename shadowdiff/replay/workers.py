"""Run a replay in several processes, one per core, and merge their results.

Each worker replays a deterministic share of the pairs (`engine.replay`'s `share`), so n workers
together send exactly what one process would, and returns its collector; histograms and
tallies merge exactly. Progress counters live in shared memory for the parent's display.

The parent owns the run and its end:
- Stopping: when its replay is cancelled (SIGINT, SIGTERM), it sends SIGTERM to every worker;
  each stops sending and returns what it completed. After `STOP_GRACE_S` what is left is
  killed, and in every case each worker is reaped before this returns.
- Workers start with SIGINT and SIGTERM ignored and catch them before they import anything
  heavy (`worker_start`), so a Ctrl-C to the whole process group while they start cannot kill
  them half-way with a traceback; the parent's SIGTERM is repeated until each one answers.
- A worker whose parent disappears (the pipe it was started with reaches its end) stops at
  once, so none outlives a killed parent.
- A worker that dies without returning its results ends the run: the others are stopped, and
  the caller gets a line that says which one died.

With live metrics, each worker also counts into its own slice of a second shared array (a
`metrics.board.Board`), which the parent's metrics read at every scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any, Final, NamedTuple

from shadowdiff.memory import peak_rss_kb
from shadowdiff.metrics.board import CELLS, Board
from shadowdiff.pair import LoadOutcome
from shadowdiff.replay import worker_start
from shadowdiff.replay.engine import replay, tune_garbage_collection
from shadowdiff.replay.shard import Shard
from shadowdiff.report.collect import RunCollector
from shadowdiff.report.document import redactor_for
from shadowdiff.report.pair_stream import PairStream, PairStreamSettings
from shadowdiff.scenario import Scenario
from shadowdiff.spec import SIDES
from shadowdiff.stop import STOP, STOP_SIGNALS

_COUNTERS_PER_WORKER = 4  # pairs done, pairs differing, baseline failures, candidate failures
# How long stopped workers get to return what they completed before they are killed.
STOP_GRACE_S: Final = 10.0
_RESEND_STOP_S: Final = 0.2


@dataclass
class WorkerResult:
    collector: RunCollector
    outcome: LoadOutcome | None
    peak_rss_kb: int
    interrupted: bool


class SharedProgress:
    """What a progress display reads, summed over workers from shared memory; `boards`, with
    live metrics, holds each worker's `Board` cells one after another."""

    def __init__(
        self,
        counters: SynchronizedArray[Any],
        workers: int,
        boards: SynchronizedArray[Any] | None = None,
    ) -> None:
        self._counters = counters
        self.workers = workers
        self.boards = boards

    def _sum(self, slot: int) -> int:
        return sum(self._counters[w * _COUNTERS_PER_WORKER + slot] for w in range(self.workers))

    @property
    def pairs_done(self) -> int:
        return self._sum(0)

    @property
    def pairs_with_differences(self) -> int:
        return self._sum(1)

    @property
    def failures(self) -> dict[str, int]:
        return {side: self._sum(2 + i) for i, side in enumerate(SIDES)}


def run_worker(
    scenario: Scenario,
    worker: int,
    share: tuple[int, int],
    concurrency: int | None,
    seed: int | None,
    today: datetime.date,
    stream: tuple[PairStreamSettings, bytes, str | None] | None = None,
    *,
    counters: SynchronizedArray[Any],
    results: Connection,
    boards: SynchronizedArray[Any] | None = None,
    pair_counters: SynchronizedArray[Any] | None = None,
) -> None:
    """One worker process's share of the run (started by `worker_start.start`): `share` as
    `pacing.deal` takes it. With `stream` (settings, redaction key, shard), each pair is also
    appended to the pairs file, bounded by `pair_counters`, which every worker shares."""
    STOP.install()
    tune_garbage_collection()
    collector = RunCollector(
        accept=scenario.accept,
        today=today,
        board=Board(boards, worker * CELLS) if boards is not None else None,
    )
    base = worker * _COUNTERS_PER_WORKER
    parent = multiprocessing.parent_process()
    parent_gone = False
    writer = None
    if stream is not None and pair_counters is not None:
        settings, key, shard = stream
        writer = PairStream(
            settings,
            redactor_for(scenario, key),
            shard=shard,
            counters=pair_counters,
            lock=pair_counters.get_lock(),
        )

    def count(pair: Any) -> None:
        collector(pair)
        if writer is not None:
            writer(pair)
        counters[base] = collector.pairs_done
        counters[base + 1] = collector.pairs_with_differences
        counters[base + 2] = collector.failures["baseline"]
        counters[base + 3] = collector.failures["candidate"]

    async def main() -> tuple[LoadOutcome | None, bool]:
        nonlocal parent_gone
        outcomes: list[LoadOutcome] = []
        task = asyncio.ensure_future(
            replay(
                scenario,
                count,
                concurrency=concurrency,
                seed=seed,
                share=share,
                on_outcome=outcomes.append,
            )
        )
        loop = asyncio.get_running_loop()
        if collector.board is not None:
            collector.board.replay_started(time.monotonic_ns())

        def parent_ended() -> None:
            nonlocal parent_gone
            parent_gone = True
            task.cancel()

        sentinel = parent.sentinel if parent is not None else None
        if sentinel is not None:
            # The parent never writes here: readable means its end closed, so it is gone.
            loop.add_reader(sentinel, parent_ended)
        STOP.listen(lambda: loop.call_soon_threadsafe(task.cancel))
        try:
            await task
        except asyncio.CancelledError:
            return (outcomes[0] if outcomes else None), True
        finally:
            STOP.listen(None)
            if sentinel is not None:
                loop.remove_reader(sentinel)
        return outcomes[0], False

    try:
        import uvloop

        outcome, interrupted = uvloop.run(main())
    except ImportError:
        outcome, interrupted = asyncio.run(main())
    if writer is not None:
        writer.close()
    if parent_gone:
        return  # nobody to report to
    collector.flush()
    collector.board = None  # shared memory goes to a process only as it starts
    peak = peak_rss_kb()
    with contextlib.suppress(OSError):  # the parent ended meanwhile
        results.send(WorkerResult(collector, outcome, peak, interrupted))
    results.close()


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
        late_by_sender=sum(o.late_by_sender for o in outcomes),
        late_by_slots=sum(o.late_by_slots for o in outcomes),
        dropped=sum(o.dropped for o in outcomes),
        loop_ticks=sum(o.loop_ticks for o in outcomes),
        loop_late_ticks=sum(o.loop_late_ticks for o in outcomes),
        loop_lag_max_ms=max(o.loop_lag_max_ms for o in outcomes),
        # Any one worker at a full core held its share back.
        cpu_share=max(o.cpu_share for o in outcomes),
    )


class WorkersOutcome(NamedTuple):
    """What `replay_in_workers` hands back besides the pairs merged into the collector."""

    load: LoadOutcome | None  # the workers' outcomes merged; None when none reported one
    peak_rss_kb: list[int]  # one per worker that reported
    interrupted: bool  # any worker was stopped before its share was done
    failures: list[str]  # one line per worker that died


async def replay_in_workers(
    scenario: Scenario,
    collector: RunCollector,
    *,
    workers: int,
    concurrency: int | None = None,
    seed: int | None = None,
    on_started: Callable[[SharedProgress], None] | None = None,
    metrics: bool = False,
    shard: Shard | None = None,
    pairs: PairStreamSettings | None = None,
    redaction_key: bytes = b"",
    on_pairs_written: Callable[[list[int]], None] | None = None,
) -> WorkersOutcome:
    """Replay with `workers` processes, merging into `collector`. `on_started` receives the
    workers' live counters once they exist (with their metrics boards when `metrics`).
    Cancelling stops the workers and still merges what they completed (then returns
    normally).

    With `shard`, the workers split that shard's share of the run. With `pairs`, each worker
    appends its pairs to that file (redacted with `redaction_key`), and `on_pairs_written`
    receives the file's counters (pairs written, bytes, pairs left out) once all are done."""
    label = None if shard is None else str(shard)
    shard = shard or Shard(0, 1)
    # spawn, not fork: the parent already runs an event loop (and possibly threads).
    context = multiprocessing.get_context("spawn")
    counters = context.Array("q", workers * _COUNTERS_PER_WORKER, lock=False)
    boards = context.Array("q", workers * CELLS, lock=False) if metrics else None
    # Pairs written, bytes written, pairs left out; its lock also orders the workers' lines.
    pair_counters = context.Array("q", 3) if pairs is not None else None
    stream = None if pairs is None else (pairs, redaction_key, label)
    if on_started is not None:
        on_started(SharedProgress(counters, workers, boards))
    failures: list[str] = []
    processes: list[BaseProcess] = []
    connections: list[Connection] = []
    # The first spawn starts multiprocessing's resource tracker, and that unblocks SIGINT and
    # SIGTERM as it ends: inside the window below, with them ignored, one would be lost.
    resource_tracker.ensure_running()
    try:
        with _children_ignore_stop_signals():
            for k in range(workers):
                receiver, sender = context.Pipe(duplex=False)
                arguments = pickle.dumps(
                    (
                        scenario,
                        k,
                        shard.share(k, workers),
                        concurrency,
                        seed,
                        collector.today,
                        stream,
                    ),
                    protocol=pickle.HIGHEST_PROTOCOL,
                )
                process = context.Process(
                    target=worker_start.start,
                    args=(arguments, counters, sender, boards, pair_counters),
                    daemon=True,
                )
                processes.append(process)
                connections.append(receiver)
                process.start()
                sender.close()
        gathered = await _gather(processes, connections, failures)
    finally:
        _reap(processes, connections)
    for result in gathered:
        collector.merge(result.collector)
    if pair_counters is not None and on_pairs_written is not None:
        on_pairs_written([pair_counters[i] for i in range(3)])
    outcomes = [r.outcome for r in gathered if r.outcome is not None]
    return WorkersOutcome(
        merge_outcomes(outcomes),
        [r.peak_rss_kb for r in gathered],
        any(r.interrupted for r in gathered),
        failures,
    )


async def _gather(
    processes: list[BaseProcess], connections: list[Connection], failures: list[str]
) -> list[WorkerResult]:
    """Each worker's result; the others are stopped when the run is cancelled or one dies."""
    loop = asyncio.get_running_loop()
    answers: list[asyncio.Future[WorkerResult | None]] = []
    for connection in connections:
        answer: asyncio.Future[WorkerResult | None] = loop.create_future()

        def receive(connection: Connection = connection, answer: Any = answer) -> None:
            loop.remove_reader(connection.fileno())
            # Readable means the result has begun to arrive (or the worker ended): read it
            # whole. uvloop made the pipe non-blocking when it started watching it.
            os.set_blocking(connection.fileno(), True)
            try:
                result: WorkerResult | None = connection.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                result = None  # the worker ended without a result: it died
            if not answer.done():
                answer.set_result(result)

        loop.add_reader(connection.fileno(), receive)
        answers.append(answer)
    pending: set[asyncio.Future[WorkerResult | None]] = set(answers)
    deadline: float | None = None  # once the workers are told to stop

    def stop_all() -> None:
        nonlocal deadline
        if deadline is None:
            _stop(processes)
            deadline = loop.time() + STOP_GRACE_S

    try:
        while pending:
            timeout = None
            if deadline is not None:
                timeout = min(deadline - loop.time(), _RESEND_STOP_S)
                if timeout <= 0:
                    break  # the grace period is over: what is left is killed by _reap
            try:
                done, pending = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            except asyncio.CancelledError:
                stop_all()  # SIGINT or SIGTERM: collect what the workers completed
                continue
            if deadline is not None and not done:
                # A worker still starting ignores SIGTERM until its handler is in place.
                _stop([processes[answers.index(a)] for a in pending])
            for answer in done:
                if answer.result() is None and deadline is None:
                    worker = answers.index(answer)
                    failures.append(_death_line(worker, processes[worker]))
                    stop_all()
    finally:
        for connection in connections:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(connection.fileno())
    return [result for a in answers if a.done() and (result := a.result()) is not None]


@contextlib.contextmanager
def _children_ignore_stop_signals() -> Iterator[None]:
    """Processes started inside start with SIGINT and SIGTERM ignored (an ignored signal
    stays ignored across exec, and Python then leaves SIGINT alone), until `worker_start`
    installs their handlers; one that comes meanwhile is sent again by `_gather`. This
    process only defers them: blocked, a signal stays pending until the handler is back. That
    holds only if no other thread of this process takes it meanwhile (it would be discarded):
    the command line imports numpy, whose BLAS threads start then, with them blocked
    (`STOP.deferred`)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    # Ignoring a signal discards it when pending: note those, to raise them again after.
    pending = signal.sigpending() & set(STOP_SIGNALS)
    handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for signum in pending:
            signal.raise_signal(signum)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _death_line(worker: int, process: BaseProcess) -> str:
    process.join(timeout=1)  # its pipe closed as it ended: the exit code follows at once
    code = process.exitcode
    how = (
        f"killed by {signal.Signals(-code).name}"
        if code is not None and code < 0
        else f"exit code {code}"
    )
    return f"worker {worker} died ({how})"


def _stop(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.pid is not None and process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)


def _reap(processes: list[BaseProcess], connections: list[Connection]) -> None:
    """Leave no worker behind: whatever still runs is stopped, then killed."""
    _stop(processes)
    for process in processes:
        if process.pid is None:
            continue
        process.join(timeout=2)
        if process.is_alive():
            process.kill()
            process.join()
    for connection in connections:
        connection.close()
