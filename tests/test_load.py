"""Load models against real servers: the open model's schedule, coordinated omission, warm-up,
ramps, and a run that cannot hold its rate."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from shadowdiff.replay.engine import replay
from shadowdiff.replay.pacing import arrival_offsets, expected_pairs
from shadowdiff.report import ExitCode, RunCollector, build_report
from shadowdiff.report.schema import Report
from shadowdiff.scenario import load_scenario
from shadowdiff.scenario.model import LoadSettings

QUIET = "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"


async def run(scenario_path: Path) -> Report:
    scenario = load_scenario(scenario_path)
    collector = RunCollector()
    outcome = await replay(scenario, collector, seed=3)
    return build_report(
        scenario, collector, started_at="t", duration_s=outcome.elapsed_s, load=outcome
    )


async def test_open_model_shows_a_stall_that_the_uncorrected_figure_hides(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    """One request stalls for a second. With one pair in flight, the pairs scheduled during
    the stall wait for it: measured from their intended start they are late (corrected p99
    near a second); measured from when the client got round to sending them they look fast
    (uncorrected p99 in milliseconds)."""
    stall = {"at": time.monotonic() + 1.0, "done": False}

    async def stalls_once(request: web.Request) -> web.Response:
        if not stall["done"] and time.monotonic() >= stall["at"]:
            stall["done"] = True
            await asyncio.sleep(1.0)
        return web.Response(text="ok")

    baseline = await start_entry_point(handler=stalls_once)
    candidate = await start_entry_point("127.0.0.2")
    report = await run(
        write_scenario(
            baseline,
            candidate,
            QUIET + "load: {model: open, rate: 100, duration_s: 3, max_in_flight: 1}\n"
            "requests:\n  - {name: a, url: 'http://app.example.com/'}\n",
        )
    )
    latency = report["latency"]
    assert latency["corrected"] is True
    assert latency["baseline"]["total"]["p99"] >= 900
    assert latency["baseline"]["total_uncorrected"]["p99"] < 100
    assert latency["baseline"]["total_uncorrected"]["max"] >= 1000  # the stall itself is there


async def test_open_model_holds_its_rate(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    entry = await start_entry_point()
    report = await run(
        write_scenario(
            entry,
            entry,
            QUIET + "load: {model: open, rate: 200, duration_s: 2, warmup_s: 0.5}\n"
            "requests:\n  - {name: a, url: 'http://app.example.com/'}\n  - {name: b, url: 'http://app.example.com/b'}\n",
        )
    )
    load = report["load"]
    assert load is not None and load["model"] == "open" and load["valid"], load
    assert load["target_rate"] == pytest.approx(200, rel=0.02)
    assert load["achieved_rate"] == pytest.approx(200, rel=0.05)
    assert report["totals"]["pairs"] == pytest.approx(400, abs=3)
    # Warm-up pairs are compared but not measured: about 0.5 s worth fewer latencies.
    measured = report["latency"]["baseline"]["total"]["count"]
    assert measured == pytest.approx(300, abs=3)
    assert {entry["name"] for entry in report["requests"]} == {"a", "b"}  # cycled through both


async def test_run_that_cannot_hold_its_rate_is_invalid(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    entry = await start_entry_point(handler=slow)
    report = await run(
        write_scenario(
            entry,
            entry,
            QUIET + "load: {model: open, rate: 200, duration_s: 1, max_in_flight: 2}\n"
            "requests:\n  - {name: a, url: 'http://app.example.com/'}\n",
        )
    )
    assert report["load"] is not None and report["load"]["valid"] is False
    assert report["outcome"]["exit_code"] == ExitCode.RUN_FAILED
    assert report["outcome"]["reason"].startswith("target rate not held")


async def test_closed_model_with_a_duration_cycles_the_requests(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    entry = await start_entry_point()
    report = await run(
        write_scenario(
            entry,
            entry,
            QUIET + "load: {model: closed, concurrency: 4, duration_s: 1}\n"
            "requests:\n  - {name: a, url: 'http://app.example.com/'}\n",
        )
    )
    load = report["load"]
    assert load is not None and load["model"] == "closed" and load["elapsed_s"] >= 1.0
    assert report["totals"]["pairs"] > 50  # far more than the one request the file lists


def settings(**fields: Any) -> LoadSettings:
    return LoadSettings.model_validate({"model": "open", **fields})


def test_ramp_stages_follow_the_rate_integral() -> None:
    load = settings(stages=[{"duration_s": 2, "rate": 100}, {"duration_s": 1, "rate": 100}])
    offsets = list(arrival_offsets(load, random.Random(0)))
    assert expected_pairs(load, 0, 3) == pytest.approx(200, rel=0.01)
    assert len(offsets) == pytest.approx(200, abs=2)
    # The ramp: a quarter of the first stage's pairs in its first half.
    first_second = sum(1 for offset in offsets if offset < 1)
    assert first_second == pytest.approx(25, abs=2)


def test_a_pause_between_stages_starts_nothing() -> None:
    load = settings(
        stages=[
            {"duration_s": 1, "rate": 0},
            {"duration_s": 1, "rate": 0},
            {"duration_s": 1, "rate": 0},
        ]
    )
    assert list(arrival_offsets(load, random.Random(0))) == []
    load = settings(stages=[{"duration_s": 0.5, "rate": 0}, {"duration_s": 1, "rate": 10}])
    # 0 -> 0 (a pause), then a ramp 0 -> 10 over a second: 5 pairs, none before 0.5 s.
    offsets = list(arrival_offsets(load, random.Random(0)))
    assert len(offsets) == 5 and min(offsets) >= 0.5


def test_poisson_arrivals_average_to_the_rate() -> None:
    load = settings(rate=500, duration_s=10, arrivals="poisson")
    counts = [len(list(arrival_offsets(load, random.Random(seed)))) for seed in range(5)]
    for count in counts:
        assert count == pytest.approx(5000, abs=4 * 5000**0.5)
    assert len(set(counts)) > 1  # each seed draws its own arrivals
    # Random, not evenly spaced: exponential gaps have a standard deviation equal to their
    # mean (coefficient of variation 1); constant arrivals have none.
    offsets = list(arrival_offsets(load, random.Random(9)))
    gaps = np.diff(offsets)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.1)
    even = np.diff(list(arrival_offsets(settings(rate=500, duration_s=10), random.Random(9))))
    assert even.std() / even.mean() < 0.01


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "open"}, "an open model needs a rate or stages"),
        ({"model": "open", "rate": 10}, "needs duration_s or max_pairs"),
        (
            {"model": "open", "stages": [{"duration_s": 1, "rate": 1}], "duration_s": 5},
            "stages set the duration",
        ),
    ],
)
def test_inconsistent_load_settings_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadSettings.model_validate(fields)


async def test_interrupted_open_run_still_reports_its_pacing(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    import json

    from .test_cli import shadowdiff

    entry = await start_entry_point()
    scenario = write_scenario(
        entry,
        entry,
        QUIET + "load: {model: open, rate: 100, duration_s: 60}\n"
        "requests:\n  - {name: a, url: 'http://app.example.com/'}\n",
    )
    report_path = tmp_path / "r.json"
    code, _, stderr = await shadowdiff(
        "run",
        str(scenario),
        "-q",
        "--json",
        str(report_path),
        # 150 pairs (two requests each) of a 100 pairs/s schedule: enough for the rates.
        interrupt_when=lambda: len(entry.requests) >= 300,
    )
    assert code == 130, stderr
    report = json.loads(report_path.read_text())
    load = report["load"]
    assert load["interrupted"] is True and load["model"] == "open"
    assert load["target_rate"] == pytest.approx(100, rel=0.02)
    assert load["achieved_rate"] == pytest.approx(100, rel=0.1)
    assert (
        report["latency"]["corrected"] is True
        and report["latency"]["baseline"]["total"]["count"] > 100
    )
