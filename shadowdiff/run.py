"""One whole run as the CLI and the demo do it: the TLS probe, then the replay, into a
collector the caller owns (so that an interrupted run still has everything that completed)."""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

from shadowdiff.engine import LoadOutcome, replay
from shadowdiff.redaction import load_key
from shadowdiff.report.collect import RunCollector
from shadowdiff.report.document import build_report
from shadowdiff.scenario import Scenario
from shadowdiff.tls import probe_scenario
from shadowdiff.workers import SharedProgress, replay_in_workers


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
) -> None:
    """Probe TLS (unless the scenario turns it off), then replay every request (unless
    `tls_only`). Cancel the calling task to stop; the collector keeps what completed, and
    `outcome` (when given) receives how the replay was paced."""
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
    interrupted: bool = False,
    resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of a run that `execute` filled in (`started` is its time.perf_counter())."""
    return build_report(
        scenario,
        collector,
        started_at=started_at.isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - started,
        interrupted=interrupted,
        load=outcome[0] if outcome else None,
        resources=resources,
        redaction_key=load_key(os.environ),
    )


async def run_scenario(
    scenario: Scenario,
    *,
    concurrency: int | None = None,
    seed: int | None = None,
    tls_only: bool = False,
    workers: int = 1,
) -> dict[str, Any]:
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
