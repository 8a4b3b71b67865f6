"""Saturation is visible: a run whose sender could not keep up says so instead of blaming the
targets, and a run slowed by a stalling target is never marked sender-limited. Real servers on
loopback; the busy sender is this process, kept busy by a sink that burns CPU per pair."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from rich.console import Console

from shadowdiff.pair import LoadOutcome, Pair
from shadowdiff.render.html.page import render_page
from shadowdiff.render.junit import render_junit
from shadowdiff.render.markdown import render_markdown
from shadowdiff.render.terminal import render_report
from shadowdiff.replay.engine import replay
from shadowdiff.report import RunCollector, build_report
from shadowdiff.report.schema import Report
from shadowdiff.report.sender import BUSY_SHARE, sender_health, sender_reason
from shadowdiff.scenario import load_scenario

QUIET = "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"
REQUESTS = "requests:\n  - {name: a, url: 'http://app.example.com/'}\n"


async def _run(path: Path, burn_s_per_pair: float = 0.0) -> tuple[Report, LoadOutcome]:
    scenario = load_scenario(path)
    collector = RunCollector()

    def sink(pair: Pair) -> None:
        collector(pair)
        deadline = time.perf_counter() + burn_s_per_pair
        while time.perf_counter() < deadline:
            pass  # what a sender too slow for its rate looks like from inside

    outcome = await replay(scenario, sink, seed=3)
    report = build_report(
        scenario, collector, started_at="t", duration_s=outcome.elapsed_s, load=outcome
    )
    return report, outcome


async def test_a_sender_that_cannot_keep_up_is_named_as_the_bottleneck(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    entry = await start_entry_point()
    path = write_scenario(
        entry, entry, QUIET + "load: {model: open, rate: 400, duration_s: 1}\n" + REQUESTS
    )
    report, outcome = await _run(path, burn_s_per_pair=0.004)  # 1.6 s of work per second
    load = report["load"]
    assert load is not None
    assert load["sender"]["limited"] is True, load
    # Busy with one pair, the loop is late to finish the others too: slots fill as well.
    assert outcome.late_by_sender + outcome.late_by_slots > 200
    # Past the share that marks a loop busy (0.5 exactly was seen in a clean-clone run).
    assert load["sender"]["loop_busy_share"] > BUSY_SHARE
    if not load["valid"]:  # whether the rate held depends on how late the starts were
        assert "the sender was the bottleneck, not the targets" in (load["reason"] or "")
    assert "the sender was the bottleneck" in _rendered(report)
    # Held or not, every report a CI run keeps says so, not the terminal alone.
    held = copy.deepcopy(report)
    assert held["load"] is not None
    held["load"]["valid"], held["load"]["reason"] = True, None
    for shown in (report, held):
        for render in (render_markdown, render_junit, render_page):
            assert "the sender was the bottleneck" in render(shown), render.__name__


async def test_a_stalling_target_is_not_blamed_on_the_sender(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    async def stalls(request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return web.Response(text="ok")

    baseline = await start_entry_point(handler=stalls)
    candidate = await start_entry_point("127.0.0.2")
    path = write_scenario(
        baseline,
        candidate,
        QUIET + "load: {model: open, rate: 100, duration_s: 1, max_in_flight: 4}\n" + REQUESTS,
    )
    report, outcome = await _run(path)
    load = report["load"]
    assert load is not None and load["valid"] is False  # 4 in flight x 5/s: 20 of 100 pairs/s
    assert load["sender"]["limited"] is False, load
    assert outcome.late_by_slots > 0 and outcome.late_by_sender <= 5
    assert "waited for a slot in flight: the targets answered too slowly" in (load["reason"] or "")
    # The pairs no slot came free for before the window ended are dropped, as k6 drops
    # iterations: the run ends with its window (and the pairs in flight), not 5 s later.
    assert outcome.dropped > 50 and load["dropped"] == outcome.dropped
    assert f"{outcome.dropped} pairs dropped" in (load["reason"] or "")
    assert outcome.elapsed_s < 2.0
    assert "the sender was the bottleneck" not in _rendered(report)


def _rendered(report: Report) -> str:
    console = Console(width=200, record=True)
    console.print(render_report(report))
    return console.export_text()


def test_a_healthy_run_is_not_limited() -> None:
    outcome = LoadOutcome(
        "open", 200, 1.0, 1.0, 200.0, 200, loop_ticks=50, loop_late_ticks=2, cpu_share=0.3
    )
    assert sender_health(outcome)["limited"] is False


async def test_a_stalling_candidate_that_fills_the_slots_is_named_as_the_slower_side(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    """The candidate alone stalls (20 ms a request; the baseline answers at once) and fills
    load.max_in_flight, so every pair waits for a slot. Measured from the intended start both
    sides carry that wait, which hides the candidate's +20 ms per pair:
    the ratios read "alike", no latency difference was reported, and the reason blamed "the
    targets". 8 slots: over 100 pairs in 0.6 s (about 180 here), so that the request gets a
    comparison of its own (latency_ms.comparison) besides the run's."""

    async def stalls(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        return web.Response(text="ok")

    baseline = await start_entry_point()
    candidate = await start_entry_point("127.0.0.2", handler=stalls)
    path = write_scenario(
        baseline,
        candidate,
        QUIET
        + "load: {model: open, rate: 1000, duration_s: 0.6, max_in_flight: 8}\n"
        + "thresholds: [ratio.p50 < 1.2]\n"
        + REQUESTS,
    )
    report, _ = await _run(path)
    # The ratio threshold reads the same sides: it fails (it passed, alike from the start).
    (threshold,) = report["thresholds"]
    assert threshold["passed"] is False and (threshold["measured"] or 0) > 2, threshold
    (request,) = report["requests"]
    assert request["latency_ms"]["difference"]["p50"] > 15, "the paired shift is there"
    latency = [s for s in report["signatures"] if s["kind"] == "latency"]
    assert latency, "a candidate 20 ms slower per pair than a 1 ms baseline is slower"
    # The ratios agree with the finding: from the actual send, as the terminal says, while
    # the summaries stay from the intended start (the wait for a slot still shows there).
    for comparison in (report["latency"]["comparison"], request["latency_ms"]["comparison"]):
        p50 = cast(dict[str, Any], comparison).get("p50")  # absent with too few samples
        assert p50 is not None and p50["verdict"] == "slower", comparison
    shown = _rendered(report).splitlines()
    (line,) = [line for line in shown if line.startswith("candidate/baseline p50")]
    assert line.startswith("candidate/baseline p50 from the actual send: ") and "slower" in line
    corrected = report["latency"]["baseline"]["total"]["p50"]
    assert corrected > report["latency"]["baseline"]["total_uncorrected"]["p50"] + 20


@pytest.mark.parametrize(
    ("outcome", "limited", "said", "not_said"),
    [
        # Near capacity: the loop late in 94% of ticks at 69% of a core. Its own work made its
        # loop late; the targets were blamed.
        (
            LoadOutcome(
                "open",
                9_000,
                3.0,
                3.0,
                3_800.0,
                8_000,
                late_by_slots=9_052,
                loop_ticks=150,
                loop_late_ticks=141,
                loop_lag_max_ms=417.0,
                cpu_share=0.69,
            ),
            True,
            "the sender was the bottleneck",
            "the targets answered too slowly",
        ),
        # Slot waits while the sender was busy: the targets and its own work both count.
        (
            LoadOutcome(
                "open",
                900,
                1.0,
                1.0,
                1_000.0,
                800,
                late_by_slots=100,
                loop_ticks=50,
                cpu_share=0.7,
            ),
            False,
            "its own work",
            "the targets answered too slowly",
        ),
        # Other work on the machine makes an idle sender's loop late too (seen with a stalling
        # target beside a parallel test run): its loop says nothing of its own load.
        (
            LoadOutcome(
                "open",
                20,
                1.0,
                1.0,
                100.0,
                20,
                late_by_slots=16,
                loop_ticks=50,
                loop_late_ticks=30,
                cpu_share=0.12,
            ),
            False,
            "the targets answered too slowly",
            "the sender was the bottleneck",
        ),
    ],
    ids=["busy-loop-below-a-core", "busy-sender-slot-waits", "idle-sender-busy-machine"],
)
def test_who_was_slow_is_said_as_the_measures_show(
    outcome: LoadOutcome, limited: bool, said: str, not_said: str
) -> None:
    health = sender_health(outcome)
    reason = sender_reason(health, scheduled=True)
    assert health["limited"] is limited
    assert said in reason and not_said not in reason, reason
