"""Replaying requests as they arrive: a feed (a followed log, shadowdiff/sources/follow.py) runs
in a thread of its own and offers each request; those within the rate and with room to wait
are sent as pairs by the engine's `_PairRunner`, the rest are refused at once (the feed counts
them). Nothing queues without bound: at most a second's worth of requests wait and
`in_flight` pairs are sent at any moment, however fast the feed offers.

Cancelling the calling task (Ctrl-C) stops the feed at once; the pairs in flight have reached
both targets already, so they are given `DRAIN_S` to be answered and compared before they are
cancelled. The sink then holds what completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from shadowdiff.pair import LoadOutcome, PairSink
from shadowdiff.replay.engine import TransportFactory, _PairRunner, refuse_unsendable
from shadowdiff.replay.pacing import pairs_in_flight
from shadowdiff.scenario import Scenario
from shadowdiff.spec import RequestSpec
from shadowdiff.transport import Transport, open_transport

# The pace of a follow run unless told otherwise: enough to cover a busy service's routes
# within minutes, little enough beside production traffic (each pair is two requests).
DEFAULT_RATE_PER_S: Final = 20.0
# The feed's thread ends within one line's reading once stopped; past this, something is stuck.
_JOIN_TIMEOUT_S: Final = 5.0
# How long a stop waits for the pairs in flight: answers usually take milliseconds, and a
# target that hangs must not hold a Ctrl-C for its whole timeout.
DRAIN_S: Final = 2.0
# After the drain, requests still waiting are ended as timeouts; their pairs are compared in a
# moment (loop turns), and any still running after this are cancelled.
_EXPIRED_WAIT_S: Final = 1.0

Offer = Callable[[RequestSpec], bool]
Feed = Callable[[Offer, threading.Event], None]


class RateLimit:
    """A token bucket: `take` says whether one more pair may start now, at most `rate_per_s`
    on average with bursts of up to one second's worth (at least one)."""

    def __init__(self, rate_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1.0, rate_per_s)
        self.clock = clock
        self.tokens = self.burst
        self.last_s = clock()

    def take(self) -> bool:
        now_s = self.clock()
        self.tokens = min(self.burst, self.tokens + (now_s - self.last_s) * self.rate_per_s)
        self.last_s = now_s
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class Handoff:
    """Requests handed from the feed's thread to the event loop, at most `capacity` waiting.
    `offer` (feed's thread) never blocks: it refuses when full. `peak_held` is the most that
    ever waited."""

    def __init__(self, capacity: int, loop: asyncio.AbstractEventLoop) -> None:
        self.capacity = capacity
        self.peak_held = 0
        self._items: deque[RequestSpec] = deque()
        self._lock = threading.Lock()
        self._loop = loop
        self._ready = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None

    def full(self) -> bool:
        return len(self._items) >= self.capacity

    def left(self) -> list[RequestSpec]:
        """Take what still waits (once the feed has stopped: nothing will be sent now)."""
        with self._lock:
            left = list(self._items)
            self._items.clear()
        return left

    def offer(self, spec: RequestSpec) -> bool:
        with self._lock:
            if len(self._items) >= self.capacity:
                return False
            self._items.append(spec)
            self.peak_held = max(self.peak_held, len(self._items))
        self._wake()
        return True

    def close(self, error: BaseException | None = None) -> None:
        """No more requests (feed's thread); `error`, when given, is raised by `take`."""
        with self._lock:
            self._closed, self._error = True, error
        self._wake()

    def _wake(self) -> None:
        # A loop that has closed raises RuntimeError: nobody waits any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._ready.set)

    async def take(self) -> RequestSpec | None:
        """The next request, waiting for one; None once closed and empty."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    if self._error is not None:
                        raise self._error
                    return None
                # Cleared under the lock: an offer after this sets it again, later.
                self._ready.clear()
            await self._ready.wait()


async def replay_stream(
    scenario: Scenario,
    sink: PairSink,
    feed: Feed,
    *,
    rate_per_s: float = DEFAULT_RATE_PER_S,
    concurrency: int | None = None,
    seed: int | None = None,
    transport_factory: TransportFactory = open_transport,
    on_outcome: Callable[[LoadOutcome], None] | None = None,
    on_handoff: Callable[[Handoff], None] | None = None,
    on_unsent: Callable[[RequestSpec], None] | None = None,
) -> LoadOutcome:
    """Run `feed(offer, stopping)` in a thread and send each request it offers to both
    targets, calling `sink` once per pair, until the feed returns (then the pairs in flight
    finish) or the calling task is cancelled.

    `offer(spec)` takes a request when the rate allows it and one of the waiting places (a
    second's worth at the rate, at least `in_flight`) is free, else refuses it at once. The
    first pair of each request name is calibrated for noise (a safe request only), then the
    scenario's share of the others.
    `on_handoff` receives the hand-over between thread and loop, to read its `peak_held`;
    `on_unsent` each request taken but never sent (it waited when the run was stopped), once
    the feed's thread has ended.
    """
    refuse_unsendable(scenario)
    loop = asyncio.get_running_loop()
    in_flight = pairs_in_flight(scenario, None, concurrency)
    rate = RateLimit(rate_per_s)
    # A burst the rate allows may wait, however briefly the loop is busy: one second's worth.
    handoff = Handoff(max(in_flight, math.ceil(rate.burst)), loop)
    if on_handoff is not None:
        on_handoff(handoff)

    def offer(spec: RequestSpec) -> bool:
        # Room first: a request that could not wait anyway does not use up the rate.
        return not handoff.full() and rate.take() and handoff.offer(spec)

    stopping = threading.Event()

    def produce() -> None:
        try:
            feed(offer, stopping)
        except BaseException as exc:  # handed to the loop, which raises it
            handoff.close(exc)
        else:
            handoff.close()

    calibrating = scenario.compare.noise.share > 0
    # Followed requests come from whatever hosts the log holds: HTTPS is always prepared.
    endpoints = {
        side: dataclasses.replace(scenario.endpoint(side), any_https=True)
        for side in ("baseline", "candidate")
    }
    baseline = transport_factory(endpoints["baseline"], in_flight * (2 if calibrating else 1))
    candidate = transport_factory(endpoints["candidate"], in_flight)
    runner = _PairRunner(scenario, baseline, candidate, sink, random.Random(seed))
    thread = threading.Thread(target=produce, name="shadowdiff-follow", daemon=True)
    started = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()

    def stop_feeding() -> None:
        stopping.set()
        # Synchronous, so that a second cancellation cannot skip it: the thread is in a short
        # wait or one line's reading, both of which end once `stopping` is set.
        thread.join(_JOIN_TIMEOUT_S)
        for spec in handoff.left():
            if on_unsent is not None:
                on_unsent(spec)

    try:
        thread.start()
        await _send_as_offered(runner, handoff, in_flight, tasks, (baseline, candidate))
    except asyncio.CancelledError:
        stop_feeding()
        try:
            if tasks:
                await asyncio.wait(set(tasks), timeout=DRAIN_S)
            if tasks:
                # Still unanswered: the side that stays silent gets a timeout, so the pair is
                # compared and counted (a hung candidate shows) instead of vanishing.
                for transport in (baseline, candidate):
                    expire = getattr(transport, "expire_busy", None)
                    if expire is not None:
                        expire(f"no answer within {DRAIN_S:g} s of the stop")
                await asyncio.wait(set(tasks), timeout=_EXPIRED_WAIT_S)
        finally:
            for task in tasks:
                task.cancel()
        raise
    finally:
        stop_feeding()
        await asyncio.gather(baseline.close(), candidate.close(), return_exceptions=True)
        elapsed_s = time.perf_counter() - started
        outcome = LoadOutcome("follow", runner.completed, elapsed_s, elapsed_s)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcome


async def _send_as_offered(
    runner: _PairRunner,
    handoff: Handoff,
    in_flight: int,
    tasks: set[asyncio.Task[None]],
    transports: tuple[Transport, Transport],
) -> None:
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(in_flight)
    calibrated: set[str] = set()  # request names whose first pair went out (one per template)
    errors: list[BaseException] = []  # a pair that raised: a bug, raised here

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        slots.release()
        error = None if task.cancelled() else task.exception()
        if error is not None:
            errors.append(error)

    index = 0
    while not errors:
        await slots.acquire()
        spec = await handoff.take()
        if spec is None:
            slots.release()
            break
        first = spec.name not in calibrated
        calibrated.add(spec.name)
        task = loop.create_task(_send_pair(runner, spec, index, first, transports))
        tasks.add(task)
        task.add_done_callback(finished)
        index += 1
    if tasks:
        # `wait`, not `gather`: a stop meanwhile must leave the pairs to the caller's drain.
        await asyncio.wait(set(tasks))
    if errors:
        raise errors[0]


async def _send_pair(
    runner: _PairRunner,
    spec: RequestSpec,
    index: int,
    first: bool,
    transports: tuple[Transport, Transport],
) -> None:
    # The runner calibrates only requests it knows to be safe, known by id: each followed
    # request is made known for its own pair and forgotten after, so nothing accumulates.
    key = id(spec)
    runner.safe[key] = spec.unsafe_reason is None
    try:
        await runner.run(index, spec, 0 if first else 1, None, True)
    finally:
        del runner.safe[key]
        for transport in transports:
            forget = getattr(transport, "forget", None)
            if forget is not None:
                forget(spec)
