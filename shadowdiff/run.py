"""One whole run as the CLI and the demo do it: the TLS probe, then the replay, into a
collector the caller owns (so that an interrupted run still has everything that completed)."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Sequence

from shadowdiff.memory import peak_rss_kb
from shadowdiff.pair import LoadOutcome
from shadowdiff.redaction import load_key
from shadowdiff.replay.engine import replay
from shadowdiff.replay.workers import SharedProgress, replay_in_workers
from shadowdiff.report.collect import RunCollector
from shadowdiff.report.document import build_report, redactor_for
from shadowdiff.report.schema import Report, Resources
from shadowdiff.report.verdict import stop_verdict
from shadowdiff.scenario import Scenario
from shadowdiff.tls import probe_scenario


async def execute(
    scenario: Scenario,
    collector: RunCollector,
    *,
    now: datetime.datetime,
    concurrency: int | None = None,
    seed: int | None = None,
    tls_only: bool = False,
    outcome: list[LoadOutcome] | None = None,
    workers: int = 1,
    progress: list[SharedProgress] | None = None,
    worker_peaks_kb: list[int] | None = None,
    worker_failures: list[str] | None = None,
) -> None:
    """Probe TLS (unless the scenario turns it off), then replay every request (unless
    `tls_only`). Cancel the calling task to stop; the collector keeps what completed, and
    `outcome` (when given) receives how the replay was paced, and `worker_failures` a line for
    each worker process that died."""
    if tls_only or scenario.tls_probe.probe:
        for host_tls in await probe_scenario(scenario, now):
            collector.add_tls(host_tls)
    if tls_only:
        return
    if workers > 1:
        merged, peaks, _ = await replay_in_workers(
            scenario,
            collector,
            workers=workers,
            concurrency=concurrency,
            seed=seed,
            progress=progress,
            failures=worker_failures,
        )
        if worker_peaks_kb is not None:
            worker_peaks_kb.extend(peaks)
        if outcome is not None and merged is not None:
            outcome.append(merged)
        return
    await replay(
        scenario,
        collector,
        concurrency=concurrency,
        seed=seed,
        on_outcome=outcome.append if outcome is not None else None,
    )


def finish_report(
    scenario: Scenario,
    collector: RunCollector,
    *,
    started_at: datetime.datetime,
    started: float,
    outcome: list[LoadOutcome],
    stopped_by: str | None = None,
    internal_error: str | None = None,
    worker_failures: Sequence[str] = (),
    resources: Resources | None = None,
) -> Report:
    """The report of a run that `execute` filled in (`started` is its time.perf_counter()).

    A run that did not end by itself says why: `stopped_by` a signal (its name), an
    `internal_error` (one line), or `worker_failures`. Then `interrupted` is true, `stop` says
    the cause and whether any pair had completed, and the outcome carries that cause's exit
    code. `resources`, when given, gains the peak RSS measured once the report is built, since
    building it can cost more memory than the replay."""
    verdict = stop_verdict(
        collector.pairs_done,
        signal_name=stopped_by,
        internal_error=internal_error,
        worker_failures=worker_failures,
    )
    key = load_key(os.environ)
    report = build_report(
        scenario,
        collector,
        started_at=started_at.isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - started,
        interrupted=verdict is not None,
        load=outcome[0] if outcome else None,
        resources=resources,
        redaction_key=key,
    )
    report["stop"] = None
    if verdict is not None:
        # Added after the report was built: hidden the same way (a message may quote input).
        redactor = redactor_for(scenario, key[0])
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
    """The whole run as a library call: TLS probe, replay, and the report as data (what
    `shadowdiff run --json` writes). No progress display, no signal handling."""
    now = datetime.datetime.now(datetime.UTC)
    collector = RunCollector(accept=scenario.accept, today=now.date())
    outcome: list[LoadOutcome] = []
    started = time.perf_counter()
    await execute(
        scenario,
        collector,
        now=now,
        concurrency=concurrency,
        seed=seed,
        tls_only=tls_only,
        outcome=outcome,
        workers=workers,
    )
    return finish_report(scenario, collector, started_at=now, started=started, outcome=outcome)
