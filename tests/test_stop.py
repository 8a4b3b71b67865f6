"""SIGINT and SIGTERM at any moment, single process or --workers: every process ends, the
report of what completed is written, and the exit code says which signal (130, 143). Real
`shadowdiff run` processes against real loopback servers; signals are sent once a readiness
condition holds (requests seen by the server, handlers installed, workers started)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from .cli_process import CliProcess, until

QUIET = "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"
ENDLESS = QUIET + (
    "defaults: {concurrency: 4}\n"
    "requests:\n  - {name: a, url: 'http://app.example.com/a', repeat: 1000000}\n"
    "  - {name: b, url: 'http://app.example.com/b', repeat: 1000000}\n"
)


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(0.002)
    return web.Response(text="ok")


@pytest.fixture
async def endless_run(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> Any:
    """Start `shadowdiff run` on a scenario that would run for hours; yields a starter."""
    entry = await start_entry_point("127.0.0.1", handler=_slow)
    scenario = write_scenario(entry, entry, ENDLESS)
    report_path = tmp_path / "report.json"
    started: list[CliProcess] = []

    async def start(workers: int) -> tuple[CliProcess, Any, Path]:
        run = await CliProcess.start(
            "run", str(scenario), "-q", "--workers", str(workers), "--json", str(report_path)
        )
        started.append(run)
        return run, entry, report_path

    yield start
    for run in started:
        run.kill_group()


def _stopped_report(report_path: Path, cause: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(report_path.read_text())
    assert report["interrupted"] is True
    assert report["stop"]["cause"] == cause
    assert report["outcome"]["exit_code"] == (143 if cause == "SIGTERM" else 130)
    return report


CASES = [
    pytest.param(signal.SIGINT, True, 1, id="ctrl-c"),
    pytest.param(signal.SIGINT, True, 2, id="double-ctrl-c"),
    pytest.param(signal.SIGTERM, False, 1, id="sigterm"),
]


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
@pytest.mark.parametrize(("signum", "group", "times"), CASES)
async def test_signal_during_the_run_ends_every_process_and_writes_the_report(
    endless_run: Any, workers: int, signum: int, group: bool, times: int
) -> None:
    run, entry, report_path = await endless_run(workers)
    await until(lambda: len(entry.requests) >= 40, 30, "the server to see 40 requests")
    for _ in range(times):  # a second Ctrl-C at once must not cost the report
        run.send(signum, group=group)
    code, _, stderr = await run.finish()
    assert code == 128 + signum, stderr
    assert await run.nothing_left_behind()
    report = _stopped_report(report_path, signal.Signals(signum).name)
    assert report["totals"]["pairs"] > 0 and report["stop"]["before_first_pair"] is False
    assert report["resources"]["workers"] == workers
    assert "Traceback" not in stderr


async def test_signal_before_the_first_pair_writes_a_report_that_says_so(
    endless_run: Any,
) -> None:
    run, _, report_path = await endless_run(1)
    # As early as can be: the handlers are installed before shadowdiff imports the rest.
    await until(run.catches_stop_signals, 30, "the handlers to be installed")
    run.send(signal.SIGTERM)
    code, stdout, stderr = await run.finish()
    assert code == 143, stderr
    report = _stopped_report(report_path, "SIGTERM")
    assert report["totals"]["pairs"] == 0 and report["stop"]["before_first_pair"] is True
    assert report["outcome"]["reason"] == "interrupted by SIGTERM before the first pair"
    assert "before the first pair" in stdout
    assert await run.nothing_left_behind()
    assert "Traceback" not in stderr


async def test_ctrl_c_while_workers_start_ends_them_all(endless_run: Any) -> None:
    run, _, report_path = await endless_run(2)
    await until(lambda: len(run.workers()) >= 1, 30, "a worker process to start")
    run.send(signal.SIGINT, group=True)
    code, _, stderr = await run.finish()
    assert code == 130, stderr
    _stopped_report(report_path, "SIGINT")
    assert await run.nothing_left_behind()
    assert "Traceback" not in stderr


async def test_a_worker_that_dies_ends_the_run_and_the_report_says_so(endless_run: Any) -> None:
    run, entry, report_path = await endless_run(2)
    await until(lambda: len(entry.requests) >= 40, 30, "the server to see 40 requests")
    worker = run.workers()[0]
    worker.kill()
    code, stdout, stderr = await run.finish()
    assert code == 3, stdout + stderr
    report = json.loads(report_path.read_text())
    assert report["stop"]["cause"] == "worker_died" and report["interrupted"] is True
    assert "died (killed by SIGKILL)" in report["outcome"]["reason"]
    # The other worker was stopped and what it completed merged (it may not have begun).
    assert len(report["resources"]["workers_peak_rss_mb"]) == 1
    assert await run.nothing_left_behind()


async def test_workers_end_when_their_parent_is_killed(endless_run: Any) -> None:
    run, entry, _ = await endless_run(2)
    await until(lambda: len(entry.requests) >= 40, 30, "the server to see 40 requests")
    workers = run.workers()
    assert len(workers) == 2
    run.send(signal.SIGKILL)
    await run.finish()
    assert await run.nothing_left_behind()


async def test_signal_check_script_at_readiness_moments() -> None:
    """A few cases of `./dev signals`, at readiness moments instead of set times."""
    from .signal_check import Case, Server, check_cases

    async def handlers_installed(run: CliProcess, server: Server) -> None:
        await until(run.catches_stop_signals, 30, "the handlers to be installed")

    async def pairs_flowing(run: CliProcess, server: Server) -> None:
        start = server.requests
        await until(lambda: server.requests >= start + 40, 30, "40 more requests")

    cases = [
        Case(1, "double-sigint", "handlers installed", handlers_installed),
        Case(2, "sigterm", "handlers installed", handlers_installed),
        Case(2, "double-sigint", "40 requests", pairs_flowing),
    ]
    lines: list[str] = []
    totals = await check_cases(cases, runs=1, say=lines.append)
    assert (totals["runs"], totals["failed"]) == (3, 0), lines


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
async def test_ctrl_c_held_down_still_ends_with_the_report_and_130(
    endless_run: Any, workers: int
) -> None:
    """SIGINT to the group every 10 ms from the first pairs until the process has exited:
    none of them, not even one during Python's own shutdown, costs the report or the code."""
    run, entry, report_path = await endless_run(workers)
    await until(lambda: len(entry.requests) >= 40, 30, "the server to see 40 requests")
    while run.send(signal.SIGINT, group=True) and run.process.returncode is None:
        await asyncio.sleep(0.01)
    code, _, stderr = await run.finish()
    assert code == 130, stderr
    _stopped_report(report_path, "SIGINT")
    assert await run.nothing_left_behind()
