"""`run`, the one way to carry out a run: options checked against the scenario, progress while
it goes, and a report of what completed when it is cancelled."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from shadowdiff.errors import UsageError
from shadowdiff.pair import RunProgress
from shadowdiff.run import RunOptions, check_options, run
from shadowdiff.scenario import load_scenario

from .test_cli import shadowdiff

QUIET = "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"
OPEN_LOAD = "load: {model: open, rate: 50, duration_s: 1}\n"
REQUESTS = "requests:\n  - {name: a, url: 'http://app.example.com/'}\n"


def scenario_file(write_scenario: Callable[..., Path], body: str) -> Path:
    target = "address: 127.0.0.1\n    ports: {http: 9}"
    return write_scenario(target, target, QUIET + body)


@pytest.mark.parametrize(
    ("body", "options", "message"),
    [
        (OPEN_LOAD + REQUESTS, RunOptions(concurrency=4), "does not apply to the open load model"),
        (REQUESTS, RunOptions(tls_only=True), "no request has an https:// URL"),
        (
            "requests:\n  - {name: a, url: 'https://app.example.com/'}\n",
            RunOptions(tls_only=True, workers=2, seed=1),
            "--tls-only sends no request: --workers, --seed cannot apply",
        ),
        (REQUESTS, RunOptions(concurrency=0), "--concurrency must be at least 1"),
        (REQUESTS, RunOptions(workers=0), "--workers must be at least 1"),
    ],
)
def test_options_that_cannot_apply_are_refused_not_ignored(
    write_scenario: Callable[..., Path], body: str, options: RunOptions, message: str
) -> None:
    scenario = load_scenario(scenario_file(write_scenario, body))
    with pytest.raises(UsageError, match=message):
        check_options(scenario, options)


async def test_cli_refuses_concurrency_with_an_open_model_before_sending(
    write_scenario: Callable[..., Path],
) -> None:
    path = scenario_file(write_scenario, OPEN_LOAD + REQUESTS)
    code, out, err = await shadowdiff("run", str(path), "--concurrency", "8")
    assert code == 2 and out == ""
    assert err.strip() == (
        f"error: {path}: --concurrency does not apply to the open load model, which starts "
        "pairs on schedule; set load.max_in_flight in the scenario to bound the pairs in flight"
    )


async def test_cancelled_run_returns_the_report_of_what_completed(
    write_scenario: Callable[..., Path],
) -> None:
    """Cancel the task awaiting `run` mid-way: it still returns, with the pairs that completed,
    `interrupted`, the stop's cause, and progress counts seen on the way."""
    answered = 0
    enough = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        nonlocal answered
        answered += 1
        if answered >= 20:
            enough.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    target = f"address: 127.0.0.1\n    ports: {{http: {port}}}"
    path = write_scenario(
        target,
        target,
        QUIET + "load: {model: closed, concurrency: 2, duration_s: 60}\n" + REQUESTS,
    )
    seen: list[RunProgress] = []
    try:
        task = asyncio.ensure_future(run(load_scenario(path), on_progress=seen.append))
        await asyncio.wait_for(enough.wait(), 30)
        task.cancel()
        result = await asyncio.wait_for(task, 30)
    finally:
        await runner.cleanup()
    report = result.report
    assert report["interrupted"] is True
    stop = report.get("stop")
    assert stop is not None and stop["cause"] == "cancelled"
    assert report["outcome"]["exit_code"] == 130
    assert report["outcome"]["reason"].startswith("cancelled after ")
    assert report["totals"]["pairs"] == result.collector.pairs_done >= 10
    assert result.load is not None and result.load.interrupted
    assert seen and seen[0].pairs_planned is None  # bounded by time
    assert all(b.pairs_done >= a.pairs_done for a, b in itertools.pairwise(seen))
