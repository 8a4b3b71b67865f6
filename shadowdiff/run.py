"""The one way to carry out a run: check the options against the scenario, probe TLS, replay
(in this process or in workers), and build the report of what completed. The CLI, the demo and
`run_scenario` all call `run`.

Cancelling the task that awaits `run` (Ctrl-C in the CLI) stops the replay and still returns a
`RunResult` whose report covers the pairs that completed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from shadowdiff.errors import PreflightFailed, ScenarioError, UsageError, describe_exception
from shadowdiff.memory import peak_rss_kb
from shadowdiff.metrics.exposition import RunMetrics
from shadowdiff.metrics.options import MetricsOptions, options_problems
from shadowdiff.pair import LoadOutcome, RunProgress
from shadowdiff.plan import Rule, SentRequest, coverage, coverage_rules, preflight_files
from shadowdiff.redaction import load_key
from shadowdiff.replay.engine import replay
from shadowdiff.replay.live_metrics import LiveMetrics
from shadowdiff.replay.pacing import pairs_in_flight
from shadowdiff.replay.shard import Shard, planned_pairs
from shadowdiff.replay.stream import DEFAULT_RATE_PER_S, replay_stream
from shadowdiff.replay.workers import SharedProgress, replay_in_workers
from shadowdiff.report.collect import RunCollector
from shadowdiff.report.document import build_report, redactor_for
from shadowdiff.report.pair_stream import (
    PairStream,
    PairStreamSettings,
    end_pair_stream,
    start_pair_stream,
)
from shadowdiff.report.schema import CoverageCount, CoverageEntry, Report, Resources
from shadowdiff.report.verdict import stop_verdict
from shadowdiff.scenario import Scenario
from shadowdiff.sources import SourceSummary, selection_for
from shadowdiff.sources.follow import FollowedLog, follow_problems
from shadowdiff.spec import SIDES
from shadowdiff.tls import probe_scenario

PROGRESS_EVERY_S: Final = 0.1
# A followed log is replayed at a bounded rate; beyond this no entry point is shadowed live
# (and infinity would make the rate's burst size infinite).
MAX_FOLLOW_PAIRS_PER_S: Final = 100_000


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to carry out a run beyond what the scenario says; the CLI's flags, one to one."""

    concurrency: int | None = None  # pairs in flight; None: the scenario's (see pairs_in_flight)
    seed: int | None = None  # the send order within pairs, and the open model's arrivals
    tls_only: bool = False  # probe TLS only: no request is sent
    workers: int = 1  # processes sending requests, each a share of the pairs
    # Follow the scenario's one recorded log as it grows, until stopped (sources/follow.py),
    # starting at most `follow_pairs_per_s` pairs a second (the rest counted as sampled out;
    # None: DEFAULT_RATE_PER_S).
    follow: bool = False
    follow_pairs_per_s: float | None = None
    # Live Prometheus metrics: served while the run goes on, pushed when it ends (docs/metrics.md).
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    # False: no W3C traceparent on any request, whatever `defaults.trace` says (--no-trace).
    trace: bool = True
    # Send only this shard's share of the run (replay/shard.py); None: the whole run.
    shard: Shard | None = None
    # Write each pair as a line of this NDJSON file as it completes (report/pair_stream.py).
    pairs: PairStreamSettings | None = None


@dataclass(slots=True)
class RunResult:
    report: Report  # the versioned report (docs/report-format.md)
    collector: RunCollector  # every tally the report was built from
    load: LoadOutcome | None  # how the replay was paced; None for a TLS-only run
    # A bug that stopped the run (the report says so too); the caller decides what to raise.
    internal_error: Exception | None = None
    worker_failures: list[str] = field(default_factory=list)
    metrics: RunMetrics | None = None  # the run's series, final values (when asked for)
    metrics_push_error: str | None = None  # why the push to the Pushgateway failed

    @property
    def exit_code(self) -> int:
        code: int = self.report["outcome"]["exit_code"]
        return code


def check_options(scenario: Scenario, options: RunOptions) -> None:
    """Refuse, with a `UsageError`, options that cannot apply to this scenario instead of
    silently ignoring them."""
    problems = []
    if options.concurrency is not None and options.concurrency < 1:
        problems.append("--concurrency must be at least 1")
    if options.workers < 1:
        problems.append("--workers must be at least 1")
    if options.follow:
        problems += _follow_problems(scenario, options)
    elif options.follow_pairs_per_s is not None:
        problems.append("--follow-rate applies to --follow only")
    problems += options_problems(options.metrics)
    if options.shard is not None and (options.follow or options.tls_only):
        problems.append(
            "--shard splits the requests of a run: it cannot apply to "
            + ("--follow" if options.follow else "--tls-only")
        )
    if options.pairs is not None:
        problems += _pairs_problems(options.pairs, options.tls_only)
    if options.tls_only and not options.follow:
        if not scenario.https_hosts():
            problems.append("--tls-only has nothing to check: no request has an https:// URL")
        unused = [
            flag
            for flag, given in (
                ("--concurrency", options.concurrency is not None),
                ("--workers", options.workers != 1),
                ("--seed", options.seed is not None),
            )
            if given
        ]
        if unused:
            problems.append(f"--tls-only sends no request: {', '.join(unused)} cannot apply")
    if problems:
        raise UsageError("\n".join(problems))
    if not options.tls_only:
        pairs_in_flight(scenario, scenario.load, options.concurrency)  # refuses what cannot apply


def _pairs_problems(settings: PairStreamSettings, tls_only: bool) -> list[str]:
    problems = []
    if tls_only:
        problems.append("--pairs: --tls-only sends no pair")
    if settings.limit_pairs is not None and settings.limit_pairs < 0:
        problems.append(f"--pairs-limit must be at least 0; got {settings.limit_pairs}")
    if settings.limit_bytes < 0:
        problems.append(f"--pairs-max-bytes must be at least 0; got {settings.limit_bytes}")
    folder = Path(settings.path).resolve().parent
    if not folder.is_dir():
        problems.append(f"--pairs {settings.path}: folder {folder} does not exist")
    return problems


def _follow_problems(scenario: Scenario, options: RunOptions) -> list[str]:
    problems = follow_problems(scenario.recorded, scenario.base_dir)
    if scenario.requests:
        problems.append(
            f"--follow sends only what the log gains: the scenario's {len(scenario.requests)} "
            "requests would not be sent (keep them in a scenario of their own)"
        )
    if scenario.load is not None:
        problems.append(
            "--follow is paced by the log and --follow-rate: the scenario's load section "
            "cannot apply"
        )
    unused = [
        flag
        for flag, given in (("--workers", options.workers != 1), ("--tls-only", options.tls_only))
        if given
    ]
    if unused:
        problems.append(
            f"--follow runs in one process until stopped: {', '.join(unused)} cannot apply"
        )
    rate = options.follow_pairs_per_s
    if rate is not None and not 0 < rate <= MAX_FOLLOW_PAIRS_PER_S:
        problems.append(
            f"--follow-rate must be more than 0 and at most {MAX_FOLLOW_PAIRS_PER_S:,} "
            f"pairs/s; got {rate:g}"
        )
    return problems


async def run(
    scenario: Scenario,
    options: RunOptions = RunOptions(),
    *,
    on_progress: Callable[[RunProgress], None] | None = None,
    stop_cause: Callable[[], str | None] = lambda: None,
    now: datetime.datetime | None = None,
    resources: bool = False,
    on_metrics_serving: Callable[[str], None] | None = None,
) -> RunResult:
    """Carry out one run and return its result, also when cancelled (then the report covers
    what completed, and says why it stopped: `stop_cause()`, e.g. "SIGTERM", or "cancelled").

    `on_progress` is called about ten times a second while pairs are sent. `now` is the
    run's start as the report and the certificate checks see it. With `resources`, the report
    says how much memory the run took. With `options.metrics.port`, /metrics is served from
    before the first request until the run ends (`on_metrics_serving` is told its URL); a
    port that cannot be listened on is a `UsageError`, raised before anything is sent.
    """
    check_options(scenario, options)
    if not options.trace and scenario.defaults.trace:
        defaults = scenario.defaults.model_copy(update={"trace": False})
        scenario = dataclasses.replace(scenario, defaults=defaults)
    rules = _coverage_rules(scenario)  # a manifest that cannot be read stops the run first
    _preflight(scenario)
    live = None
    cancelled = False
    if options.metrics.wanted:
        live = LiveMetrics(
            scenario, options.metrics, follow=options.follow, tls_only=options.tls_only
        )
        # A Ctrl-C meanwhile ends the run as one before its first pair (once it listens, so
        # that nothing is left listening); a port in use ends it here, with nothing sent.
        starting = asyncio.ensure_future(live.start(on_metrics_serving))
        cancelled = await _finish_despite_cancel(starting, pass_on=False)
        starting.result()
    try:
        return await _carry_out(
            scenario,
            options,
            live,
            rules,
            cancelled=cancelled,
            on_progress=on_progress,
            stop_cause=stop_cause,
            now=now,
            resources=resources,
        )
    finally:
        if live is not None:
            await _finish_despite_cancel(asyncio.ensure_future(live.close()), pass_on=False)


async def _carry_out(
    scenario: Scenario,
    options: RunOptions,
    live: LiveMetrics | None,
    rules: tuple[list[Rule], list[Rule]] | None,
    *,
    cancelled: bool,
    on_progress: Callable[[RunProgress], None] | None,
    stop_cause: Callable[[], str | None],
    now: datetime.datetime | None,
    resources: bool,
) -> RunResult:
    now = now or datetime.datetime.now(datetime.UTC)
    collector = RunCollector(
        accept=scenario.accept,
        today=now.date(),
        board=live.metrics.board if live is not None else None,
    )
    shard = options.shard
    share = shard.share() if shard is not None else (0, 1)
    key = load_key(os.environ)
    stream: PairStream | None = None
    sink: Callable[[Any], None] = collector
    if options.pairs is not None:
        start_pair_stream(
            options.pairs,
            {
                "scenario": scenario.name,
                "shard": str(shard) if shard is not None else None,
                "started_at": now.isoformat(timespec="seconds"),
            },
        )
        if options.workers == 1:
            stream = PairStream(
                options.pairs,
                redactor_for(scenario, key[0]),
                shard=str(shard) if shard is not None else None,
            )
            sink = _both(collector, stream)
    started = time.perf_counter()
    counters: list[Any] = [collector]  # the workers' shared counters replace it once they exist
    outcome: list[LoadOutcome] = []
    worker_peaks_kb: list[int] = []
    worker_failures: list[str] = []
    pairs_counts: list[int] = []  # the workers' pair stream counters, once they are done
    followed = (
        FollowedLog(
            scenario.recorded[0],
            scenario.base_dir,
            selection_for(scenario.recorded[0], scenario.selection),
        )
        if options.follow
        else None
    )

    async def carry_out() -> None:
        if options.tls_only or scenario.tls_probe.probe:
            for host_tls in await probe_scenario(scenario, now):
                collector.add_tls(host_tls)
        if options.tls_only:
            return
        if live is not None and options.workers == 1:
            live.replay_starting()  # each worker process starts its own clock
        if followed is not None:
            await replay_stream(
                scenario,
                sink,
                followed.feed,
                rate_per_s=options.follow_pairs_per_s or DEFAULT_RATE_PER_S,
                concurrency=options.concurrency,
                seed=options.seed,
                on_outcome=outcome.append,
                on_unsent=followed.unsent,
            )
            return
        if options.workers > 1:

            def started(shared: SharedProgress) -> None:
                counters[0] = shared
                if live is not None:
                    live.workers_started(shared)

            done = await replay_in_workers(
                scenario,
                collector,
                workers=options.workers,
                concurrency=options.concurrency,
                seed=options.seed,
                on_started=started,
                metrics=live is not None,
                shard=shard,
                pairs=options.pairs,
                redaction_key=key[0],
                on_pairs_written=pairs_counts.extend,
            )
            worker_peaks_kb.extend(done.peak_rss_kb)
            worker_failures.extend(done.failures)
            if done.load is not None:
                outcome.append(done.load)
            return
        await replay(
            scenario,
            sink,
            concurrency=options.concurrency,
            seed=options.seed,
            share=share,
            on_outcome=outcome.append,
        )

    def progress() -> RunProgress:
        source = counters[0]
        counts = followed.counts if followed is not None else None
        return RunProgress(
            source.pairs_done,
            scenario.pair_count if followed is None else None,
            source.pairs_with_differences,
            {side: source.failures[side] for side in SIDES},
            time.perf_counter() - started,
            counts.lines if counts is not None else None,
            counts.skipped if counts is not None else (),
        )

    work = asyncio.ensure_future(carry_out())
    if cancelled:
        work.cancel()  # stopped while the metrics server started
    ticker = None
    if on_progress is not None and not options.tls_only:
        ticker = asyncio.ensure_future(_tick(progress, on_progress))
    cancelled |= await _finish_despite_cancel(work)
    if ticker is not None:
        ticker.cancel()
        cancelled |= await _finish_despite_cancel(ticker)
    failure: Exception | None = None
    if work.cancelled():
        cancelled = True
    elif (error := work.exception()) is not None:
        if not isinstance(error, Exception):
            raise error  # SystemExit and the like are not the run's to report
        failure = error  # a bug: the report keeps what completed, and says so
    if ticker is not None and not ticker.cancelled() and failure is None:
        display_error = ticker.exception()  # a progress display that broke is a bug too
        if isinstance(display_error, Exception):
            failure = display_error
    stopped_by = (stop_cause() or "cancelled") if cancelled else None
    if options.pairs is not None:
        if stream is not None:
            stream.close()
            pairs_counts = [stream.counters[i] for i in range(3)]
        end_pair_stream(options.pairs, pairs_counts or [0, 0, 0])
    if shard is not None:
        # Every shard walks the whole schedule and keeps its turns: the rate it was asked
        # for is its share of the scenario's (a closed model's pairs in flight are divided
        # alike, in the engine).
        outcome[:] = [
            dataclasses.replace(
                o, target_rate=None if o.target_rate is None else o.target_rate / shard.count
            )
            for o in outcome
        ]
    report = finish_report(
        scenario,
        collector,
        started_at=now,
        started=started,
        outcome=outcome,
        stopped_by=stopped_by,
        internal_error=describe_exception(failure) if failure is not None else None,
        worker_failures=worker_failures,
        followed=followed.summary if followed is not None else None,
        coverage_rules=rules,
        shard=shard,
        resources={
            "workers": options.workers,
            "workers_peak_rss_mb": [round(kb / 1024, 1) for kb in worker_peaks_kb],
        }
        if resources
        else None,
    )
    result = RunResult(report, collector, outcome[0] if outcome else None, failure, worker_failures)
    if live is not None:
        # A second Ctrl-C changes nothing here either: the push goes on to its timeout.
        ending = asyncio.ensure_future(live.end(result.load, result.exit_code))
        await _finish_despite_cancel(ending, pass_on=False)
        result.metrics = live.metrics
        result.metrics_push_error = ending.result()
    return result


def _preflight(scenario: Scenario) -> None:
    """Raise `PreflightFailed` when the scenario's Gateway API objects cannot serve: sending
    traffic to an entry point that is not programmed would only measure that."""
    settings = scenario.preflight
    if settings is None:
        return
    try:
        findings = preflight_files(
            [str(scenario.resolve_path(name)) for name in settings.files],
            str(scenario.resolve_path(settings.secrets)) if settings.secrets else None,
        )
    except ScenarioError as exc:
        raise UsageError("\n".join(str(problem) for problem in exc.problems)) from None
    if findings:
        raise PreflightFailed([str(finding) for finding in findings])


def _coverage_rules(scenario: Scenario) -> tuple[list[Rule], list[Rule]] | None:
    settings = scenario.coverage
    if settings is None:
        return None
    try:
        return coverage_rules(settings.ingress, settings.routes, scenario.base_dir)
    except ScenarioError as exc:
        raise UsageError("\n".join(str(problem) for problem in exc.problems)) from None


def _coverage_entry(
    scenario: Scenario,
    collector: RunCollector,
    rules: tuple[list[Rule], list[Rule]] | None,
) -> CoverageEntry | None:
    """Which rules the requests that were answered reached: the run's requests, recorded and
    followed ones included (the collector has every request that completed a pair)."""
    if rules is None or scenario.coverage is None:
        return None
    sent = [
        SentRequest(t.request.method, t.request.url, t.request.headers)
        for t in collector.requests.values()
        if t.pairs
    ]
    counts: list[CoverageCount | None] = []
    for found in rules:
        if not found:
            counts.append(None)
            continue
        result = coverage(found, sent)
        counts.append(
            {"rules": result.rules, "covered": result.covered, "uncovered": result.uncovered}
        )
    total = sum(count["rules"] for count in counts if count is not None)
    reached = sum(count["covered"] for count in counts if count is not None)
    return {
        "ingress": counts[0],
        "routes": counts[1],
        "share": round(reached / total, 4) if total else None,
        "min": scenario.coverage.min,
    }


def _both(collector: RunCollector, stream: PairStream) -> Callable[[Any], None]:
    def sink(pair: Any) -> None:
        collector(pair)
        stream(pair)

    return sink


async def _finish_despite_cancel(task: asyncio.Future[Any], *, pass_on: bool = True) -> bool:
    """Wait until `task` has finished, whatever its outcome. A cancellation of the waiting task
    (a Ctrl-C, or a second one) is passed on to `task` (unless not `pass_on`: the task then
    finishes as it would have) and absorbed here, so that the caller goes on to report;
    returns whether one arrived."""
    cancelled = False
    current = asyncio.current_task()
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
            if pass_on:
                task.cancel()
            if current is not None:
                current.uncancel()
    return cancelled


async def _tick(
    read: Callable[[], RunProgress], on_progress: Callable[[RunProgress], None]
) -> None:
    while True:
        on_progress(read())
        await asyncio.sleep(PROGRESS_EVERY_S)


def finish_report(
    scenario: Scenario,
    collector: RunCollector,
    *,
    started_at: datetime.datetime,
    started: float,
    outcome: list[LoadOutcome],
    stopped_by: str | None = None,
    internal_error: str | None = None,
    worker_failures: list[str] | None = None,
    followed: SourceSummary | None = None,
    coverage_rules: tuple[list[Rule], list[Rule]] | None = None,
    resources: Resources | None = None,
    shard: Shard | None = None,
) -> Report:
    """The report of a run (`started` is its time.perf_counter()).

    A run that did not end by itself says why: `stopped_by` a signal's name or "cancelled",
    an `internal_error` (one line), or `worker_failures`. Then `interrupted` is true, `stop`
    says the cause and whether any pair had completed, and the outcome carries that cause's
    exit code. `resources`, when given, gains the peak RSS measured once the report is built,
    since building it can cost more memory than the replay.

    A follow run (`followed`: its log's counts) ends by a stop: once a pair has completed, a
    signal or a cancellation is recorded in `stop` but the verdict is the answers' own."""
    worker_failures = worker_failures or []
    verdict = stop_verdict(
        collector.pairs_done,
        signal_name=stopped_by,
        internal_error=internal_error,
        worker_failures=worker_failures,
    )
    ended_as_meant = (
        followed is not None
        and verdict is not None
        and verdict.cause in ("SIGINT", "SIGTERM", "cancelled")
        and collector.pairs_done > 0
    )
    if followed is not None:
        # What was followed is in no scenario file: the report names the requests sent (the
        # first of each name, as tallied) and the log's counts.
        scenario = dataclasses.replace(
            scenario,
            requests=tuple(tally.request for tally in collector.requests.values()),
            sources=(followed.as_report(),),
        )
    key = load_key(os.environ)
    report = build_report(
        scenario,
        collector,
        started_at=started_at.isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - started,
        interrupted=verdict is not None and not ended_as_meant,
        load=outcome[0] if outcome else None,
        resources=resources,
        redaction_key=key,
        coverage=_coverage_entry(scenario, collector, coverage_rules),
        pairs_planned=... if shard is None else planned_pairs(scenario, shard),
        shard=None if shard is None else (shard.index, shard.count),
    )
    report["stop"] = None
    if followed is not None:
        report["totals"]["pairs_planned"] = None  # as many as the log gains
    if verdict is not None:
        # Added after the report was built: hidden the same way (a message may quote input).
        redactor = redactor_for(scenario, key[0])
        if not ended_as_meant:
            report["outcome"] = {
                "exit_code": int(verdict.exit_code),
                "reason": redactor.text(verdict.reason),
            }
        report["stop"] = redactor.walk(
            {
                "cause": verdict.cause,
                "before_first_pair": collector.pairs_done == 0,
                "worker_failures": list(worker_failures),
            }
        )
    if resources is not None:
        report["resources"] = {**resources, "peak_rss_mb": round(peak_rss_kb() / 1024, 1)}
    return report


async def run_scenario(
    scenario: Scenario,
    *,
    concurrency: int | None = None,
    seed: int | None = None,
    tls_only: bool = False,
    workers: int = 1,
) -> Report:
    """The whole run as a library call returning the report as data (what `shadowdiff run
    --json` writes). No progress display, no signal handling; a bug that stopped the run is
    raised once the report is built."""
    result = await run(scenario, RunOptions(concurrency, seed, tls_only, workers))
    if result.internal_error is not None:
        raise result.internal_error
    return result.report
