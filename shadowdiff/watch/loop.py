"""The watch loop: every interval, ask the nameserver where each hostname points, send the
scenario's safe requests at a low steady rate three ways (as a client would, following DNS;
to the baseline's address; to the candidate's), judge each way against the checkpoint, and
hand a row to the caller. It ends when cancelled (the caller's Ctrl-C) or when a rollback rule
fires, and returns what it saw either way; it never exits or prints.

"As a client would": the request goes to one of the addresses the nameserver gave for the
URL's host (picked at random, so a record set of 3 to the baseline and 1 to the candidate
sends a quarter there), with the production name in Host and SNI, like every request of
shadowdiff. An address that is a target's is reached on that target's ports and TLS settings
(in production, the URL's own), without the headers the scenario adds for that target (a
client does not send them); any other address on the URL's port with the baseline's TLS
settings. A name that did not resolve is that request's error (`dns`), as it would be a
client's.

An answer counts in the interval in which it arrives: a request that hangs for its whole
timeout shows as a `timeout` error then, not as a missing sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from yarl import URL

from shadowdiff.endpoint import Endpoint
from shadowdiff.errors import UsageError
from shadowdiff.observation import Observation, Timings, TransportFailure
from shadowdiff.scenario import Scenario
from shadowdiff.spec import SIDES, RequestSpec, Side
from shadowdiff.stats.histogram import LatencyHistogram
from shadowdiff.transport import Transport, open_transport
from shadowdiff.watch.checkpoint import is_error_status
from shadowdiff.watch.compare import Comparison, Figures, compare_with_checkpoint
from shadowdiff.watch.dns import DEFAULT_TIMEOUT_S, Nameserver, Resolution, resolve
from shadowdiff.watch.rollback import Decision, RollbackRules, RollbackState
from shadowdiff.watch.schema import PATHS, DnsRow, HostRow, IntervalRow, Path, PathRow
from shadowdiff.watch.shares import (
    POINTED,
    Pointed,
    TargetAddresses,
    host_shares,
    normal_address,
    overall_shares,
    target_addresses,
)
from shadowdiff.wire import refusal

DEFAULT_RATE_PER_S: Final = 2.0
DEFAULT_INTERVAL_S: Final = 10.0
# Rows kept for the report; a watch of a day at 10 s has 8640, and the report keeps the last.
MAX_ROWS: Final = 1000
# Client connections are kept per address; a hostile record set cannot open more than this.
MAX_CLIENT_ADDRESSES: Final = 16


@dataclass(frozen=True, slots=True)
class WatchOptions:
    nameserver: Nameserver
    rules: RollbackRules = field(default_factory=RollbackRules)
    rate_per_s: float = DEFAULT_RATE_PER_S  # rounds a second; each sends one request per path
    interval_s: float = DEFAULT_INTERVAL_S
    seed: int | None = None


@dataclass(slots=True)
class WatchResult:
    rows: deque[IntervalRow]  # the last MAX_ROWS
    intervals: int  # rows made in all
    decision: Decision | None  # the last interval's
    rollback: IntervalRow | None  # the row whose decision fired, if one did
    cancelled: bool
    started_at: datetime.datetime
    duration_s: float
    requests: list[str]
    skipped_unsafe: list[str]
    internal_error: Exception | None = None


def safe_requests(scenario: Scenario) -> tuple[list[RequestSpec], list[str]]:
    """The requests watch may send (GET, HEAD, OPTIONS; no body, no method override; with the
    targets' headers too), first of each name; and the names of those it never sends,
    whatever `allow_unsafe` says: a watch repeats them for hours."""
    target_headers = [h for side in SIDES for h in getattr(scenario.targets, side).headers.items()]
    chosen: dict[str, RequestSpec] = {}
    refused: dict[str, None] = {}
    for spec in scenario.requests:
        reason = refusal(
            spec.method, spec.url, (*spec.headers, *target_headers), spec.body, allow_unsafe=False
        )
        if reason is None:
            chosen.setdefault(spec.name, spec)
        else:
            refused[spec.name] = None
    return list(chosen.values()), list(refused)


def hostnames(requests: list[RequestSpec]) -> list[str]:
    found: dict[str, None] = {}
    for spec in requests:
        host = URL(spec.url, encoded=True).host
        if host:
            found[host.rstrip(".").lower()] = None
    return list(found)


@dataclass(slots=True)
class _PathTally:
    requests: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    failures: Counter[str] = field(default_factory=Counter)
    reached: Counter[str] = field(default_factory=Counter)

    def add(self, observation: Observation) -> None:
        self.requests += 1
        if observation.failure is not None:
            self.errors += 1
            self.failures[observation.failure.error_class] += 1
            return
        if is_error_status(observation.status or 0):
            self.errors += 1
        self.latency.record([observation.timings.total_ns // 1000])

    @property
    def figures(self) -> Figures:
        return Figures(self.requests, self.errors, self.latency)


class _Clients:
    """The client's connections, one transport per address DNS gave, at most
    MAX_CLIENT_ADDRESSES (the least recently used one is closed to make room)."""

    def __init__(self, scenario: Scenario, pool_size: int) -> None:
        self.endpoints = {side: scenario.endpoint(side) for side in SIDES}
        self.pool_size = pool_size
        self.open: dict[str, Transport] = {}
        self.closing: set[asyncio.Task[None]] = set()

    def endpoint_for(self, address: str, pointed: Pointed) -> Endpoint:
        if pointed == "other":
            base = self.endpoints["baseline"]
            return dataclasses.replace(base, address=address, port_map={}, headers=())
        side: Side = "baseline" if pointed == "baseline" else "candidate"
        return dataclasses.replace(self.endpoints[side], address=address, headers=())

    def transport(self, address: str, pointed: Pointed) -> Transport:
        found = self.open.pop(address, None)
        if found is None:
            found = open_transport(self.endpoint_for(address, pointed), self.pool_size)
            if len(self.open) >= MAX_CLIENT_ADDRESSES:
                oldest = next(iter(self.open))
                task = asyncio.ensure_future(self.open.pop(oldest).close())
                self.closing.add(task)
                task.add_done_callback(self.closing.discard)
        self.open[address] = found  # most recently used last
        return found

    async def close(self) -> None:
        await asyncio.gather(
            *(t.close() for t in self.open.values()), *self.closing, return_exceptions=True
        )


def _dns_failure(resolution: Resolution | None, host: str) -> Observation:
    message = (
        f"{host}: {resolution.error}: {resolution.message}"
        if resolution is not None
        else f"{host}: not resolved yet"
    )
    return Observation(
        "baseline", failure=TransportFailure("dns", message), timings=Timings(started_ns=0)
    )


class _Watch:
    def __init__(
        self,
        scenario: Scenario,
        checkpoint: dict[Side, Figures],
        options: WatchOptions,
        requests: list[RequestSpec],
    ) -> None:
        self.scenario, self.checkpoint, self.options = scenario, checkpoint, options
        self.requests = requests
        self.hosts = hostnames(requests)
        self.target_names = [
            name
            for name in dict.fromkeys(getattr(scenario.targets, side).address for side in SIDES)
            if normal_address(name) is None
        ]
        self.chooser = random.Random(options.seed)
        self.resolutions: dict[str, Resolution] = {}
        self.targets: TargetAddresses = target_addresses(
            scenario.targets.baseline.address, scenario.targets.candidate.address
        )
        self.tallies: dict[Path, _PathTally] = {path: _PathTally() for path in PATHS}
        self.skipped = 0
        # Rounds in flight at most: ten seconds' worth (at least 16); past it a round is
        # skipped and counted, so a hung entry point cannot grow memory.
        self.max_in_flight = max(16, math.ceil(options.rate_per_s * 10))
        pool = max(4, math.ceil(options.rate_per_s * 2))
        self.direct: dict[Side, Transport] = {
            side: open_transport(scenario.endpoint(side), pool) for side in SIDES
        }
        self.clients = _Clients(scenario, pool)
        self.rounds: set[asyncio.Task[None]] = set()

    async def look_up(self) -> None:
        timeout_s = min(DEFAULT_TIMEOUT_S, self.options.interval_s / 2)
        names = [*self.hosts, *self.target_names]
        found = await asyncio.gather(
            *(resolve(name, self.options.nameserver, timeout_s) for name in names)
        )
        resolved = dict(zip(names, found, strict=True))
        self.targets = target_addresses(
            self.scenario.targets.baseline.address,
            self.scenario.targets.candidate.address,
            {name: resolved[name] for name in self.target_names},
        )
        self.resolutions = {host: resolved[host] for host in self.hosts}

    async def send_round(self, spec: RequestSpec) -> None:
        host = (URL(spec.url, encoded=True).host or "").rstrip(".").lower()
        resolution = self.resolutions.get(host)
        sends: list[asyncio.Future[Observation]] = [
            asyncio.ensure_future(self.direct[side].send(spec)) for side in SIDES
        ]
        pointed: Pointed | None = None
        if resolution is not None and resolution.addresses:
            address = self.chooser.choice(resolution.addresses)
            pointed = self.targets.which(address, resolution.cnames)
            sends.append(asyncio.ensure_future(self.clients.transport(address, pointed).send(spec)))
        try:
            answers = await asyncio.gather(*sends)
        except asyncio.CancelledError:
            for send in sends:
                send.cancel()
            raise
        self.tallies["baseline"].add(answers[0])
        self.tallies["candidate"].add(answers[1])
        if pointed is None:
            self.tallies["dns"].add(_dns_failure(resolution, host))
        else:
            self.tallies["dns"].add(answers[2])
            self.tallies["dns"].reached[pointed] += 1

    async def send_steadily(self) -> None:
        """Start a round every 1/rate seconds, on a fixed schedule (a slow answer does not
        delay the next round), cycling through the requests."""
        period_s = 1 / self.options.rate_per_s
        started = time.monotonic()
        index = 0
        while True:
            delay_s = started + index * period_s - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            spec = self.requests[index % len(self.requests)]
            index += 1
            if len(self.rounds) >= self.max_in_flight:
                self.skipped += 1
                continue
            task = asyncio.ensure_future(self.send_round(spec))
            self.rounds.add(task)
            task.add_done_callback(self.rounds.discard)

    def take_interval(self) -> tuple[dict[Path, _PathTally], int]:
        tallies, skipped = self.tallies, self.skipped
        self.tallies = {path: _PathTally() for path in PATHS}
        self.skipped = 0
        return tallies, skipped

    async def close(self) -> None:
        for task in list(self.rounds):
            task.cancel()
        await asyncio.gather(*self.rounds, return_exceptions=True)
        await asyncio.gather(
            *(t.close() for t in self.direct.values()),
            self.clients.close(),
            return_exceptions=True,
        )


def _path_row(tally: _PathTally, comparison: Comparison, path: Path) -> PathRow:
    return {
        "requests": tally.requests,
        "errors": tally.errors,
        "error_rate": comparison.error_rate,
        "error_points_low": comparison.error_points_low,
        "p50_ms": comparison.p50_ms,
        "p99_ms": comparison.p99_ms,
        "p99_ratio": comparison.p99_ratio,
        "slow_share": comparison.slow_share,
        "slow_share_low": comparison.slow_share_low,
        "error_crossed": comparison.error_crossed,
        "p99_crossed": comparison.p99_crossed,
        "failures": dict(tally.failures),
        "reached": {p: tally.reached[p] for p in POINTED} if path == "dns" else {},
    }


def _dns_row(resolutions: dict[str, Resolution], targets: TargetAddresses) -> DnsRow:
    shares = [host_shares(r, targets) for r in resolutions.values()]
    hosts: list[HostRow] = [
        {
            "host": s.host,
            "baseline": s.counts["baseline"],
            "candidate": s.counts["candidate"],
            "other": s.counts["other"],
            "ttl_s": s.ttl_s,
            "error": s.error,
            "message": s.message,
        }
        for s in shares
    ]
    ttls = [s.ttl_s for s in shares if s.ttl_s is not None]
    overall = overall_shares(shares)
    return {
        "shares": None if overall is None else {str(k): v for k, v in overall.items()},
        "ttl_s": min(ttls) if ttls else None,
        "hosts": hosts,
    }


async def watch(
    scenario: Scenario,
    checkpoint: dict[Side, Figures],
    options: WatchOptions,
    *,
    on_row: Callable[[IntervalRow], None] | None = None,
) -> WatchResult:
    """Watch until cancelled or until a rollback rule fires (see the module's text); returns
    the rows either way. Every path is judged against `checkpoint["baseline"]`, the baseline
    as it was; the rules against the candidate's direct path (watch/rollback.py)."""
    if not options.rate_per_s > 0 or not options.interval_s > 0:
        raise UsageError("--rate and --interval must be more than 0")
    requests, refused = safe_requests(scenario)
    if not requests:
        raise UsageError(
            "watch sends only safe requests (GET, HEAD, OPTIONS without a body or a method "
            "override), and this scenario has none"
        )
    started_at = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    state = RollbackState(options.rules)
    rows: deque[IntervalRow] = deque(maxlen=MAX_ROWS)
    result = WatchResult(
        rows, 0, None, None, False, started_at, 0.0, [r.name for r in requests], refused
    )
    watcher = _Watch(scenario, checkpoint, options, requests)
    sender: asyncio.Future[None] | None = None
    reference = checkpoint["baseline"]
    limits = options.rules.limits
    try:
        await watcher.look_up()  # the client's first requests need addresses
        sender = asyncio.ensure_future(watcher.send_steadily())
        while True:
            resolutions, targets = watcher.resolutions, watcher.targets
            end = started + (result.intervals + 1) * options.interval_s
            await asyncio.sleep(max(0.0, end - time.monotonic()))
            if sender.done():
                sender.result()  # a bug in the sender: raise it here
            tallies, skipped = watcher.take_interval()
            comparisons = {
                path: compare_with_checkpoint(tallies[path].figures, reference, limits)
                for path in PATHS
            }
            dns = _dns_row(resolutions, targets)
            in_dns = any(host["candidate"] for host in dns["hosts"])
            decision = state.decide(comparisons["candidate"], comparisons["baseline"], in_dns)
            result.intervals += 1
            row: IntervalRow = {
                "interval": result.intervals,
                "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "elapsed_s": round(time.monotonic() - started, 3),
                "dns": dns,
                "paths": {p: _path_row(tallies[p], comparisons[p], p) for p in PATHS},
                "skipped": skipped,
                "verdict": decision.verdict,
                "crossed": list(decision.crossed),
                "streaks": {rule: count for rule, count in decision.streaks.items()},
            }
            rows.append(row)
            result.decision = decision
            if on_row is not None:
                on_row(row)
            if decision.verdict == "rollback":
                result.rollback = row
                break
            await watcher.look_up()  # where the next interval's client requests go
    except asyncio.CancelledError:
        result.cancelled = True
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    except Exception as exc:  # a bug: the rows so far are still the caller's to report
        result.internal_error = exc
    finally:
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
        await _close_despite_cancel(watcher)
        result.duration_s = round(time.monotonic() - started, 3)
    return result


async def _close_despite_cancel(watcher: _Watch) -> None:
    """Close every connection, also when a second Ctrl-C cancels the wait."""
    closing = asyncio.ensure_future(watcher.close())
    while not closing.done():
        try:
            await asyncio.wait([closing])
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
