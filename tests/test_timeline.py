"""The report's timeline: pairs completed and failures per side over wall-clock time, bounded
whatever the run's length, and merged exactly across processes and reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.replay.engine import replay
from shadowdiff.report import RunCollector, build_report
from shadowdiff.scenario import load_scenario
from shadowdiff.stats.timeline import MAX_INTERVALS, Timeline

S = 1_000_000_000  # nanoseconds per second
EPOCH = 1_800_000_000  # a Unix time, in seconds


def test_each_pair_lands_in_its_second_with_its_failures() -> None:
    timeline = Timeline()
    timeline.add((EPOCH + 0) * S + 10)
    timeline.add((EPOCH + 0) * S + 999_999_999, failed=(True, False))
    timeline.add((EPOCH + 2) * S, server_error=(False, True))
    assert timeline.to_dict() == {
        "interval_s": 1,
        "start_s": EPOCH,
        "pairs": [2, 0, 1],
        "failures": {"baseline": [1, 0, 0], "candidate": [0, 0, 0]},
        "server_errors": {"baseline": [0, 0, 0], "candidate": [0, 0, 1]},
    }


def test_an_empty_timeline_has_no_start() -> None:
    assert Timeline().to_dict()["start_s"] is None
    assert Timeline().to_dict()["pairs"] == []


def test_a_long_run_is_coarsened_to_stay_within_the_bound() -> None:
    timeline = Timeline()
    day_s = 24 * 3600
    for second in range(0, day_s, 7):
        timeline.add((EPOCH + second) * S, failed=(second % 2 == 0, False))
    written = timeline.to_dict()
    assert len(written["pairs"]) <= MAX_INTERVALS
    assert written["interval_s"] == 128  # the smallest power of two that fits a day in 1024
    assert written["start_s"] % written["interval_s"] == 0
    assert sum(written["pairs"]) == len(range(0, day_s, 7)) == timeline.pairs
    assert sum(written["failures"]["baseline"]) == len(range(0, day_s, 14))


@settings(max_examples=60, deadline=None)
@given(
    ended_s=st.lists(st.integers(0, 5000), min_size=1, max_size=300),
    shards=st.integers(1, 5),
)
def test_timelines_of_shards_merge_into_the_single_runs(ended_s: list[int], shards: int) -> None:
    """Whatever each shard coarsened to on its own, the merge equals one timeline of all."""
    single = Timeline()
    parts = [Timeline() for _ in range(shards)]
    for index, second in enumerate(ended_s):
        when = (EPOCH + second) * S + index
        failed = (index % 3 == 0, index % 5 == 0)
        single.add(when, failed=failed)
        parts[index % shards].add(when, failed=failed)
    merged = Timeline()
    for part in parts:
        merged.merge(Timeline.from_dict(part.to_dict()))  # as two reports would be merged
    assert merged.to_dict() == single.to_dict()


@pytest.mark.parametrize(
    "broken",
    [
        {"interval_s": 3, "start_s": 0, "pairs": [], "failures": {}, "server_errors": {}},
        {"interval_s": 2, "start_s": 1, "pairs": [1]},
        {
            "interval_s": 1,
            "start_s": 0,
            "pairs": [1, 2],
            "failures": {"baseline": [0], "candidate": [0, 0]},
            "server_errors": {"baseline": [0, 0], "candidate": [0, 0]},
        },
        {
            "interval_s": 1,
            "start_s": 0,
            "pairs": [-1],
            "failures": {"baseline": [0], "candidate": [0]},
            "server_errors": {"baseline": [0], "candidate": [0]},
        },
        {"pairs": "many"},
    ],
    ids=["not-a-power-of-two", "unaligned", "unequal-lengths", "negative", "missing-keys"],
)
def test_a_timeline_that_is_not_one_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"timeline|power of two"):
        Timeline.from_dict(broken)


async def test_a_load_run_reports_its_pairs_failures_and_5xx_over_time(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    async def candidate(request: web.Request) -> web.Response:
        if request.path == "/slow":
            await asyncio.sleep(0.6)  # past the total timeout: a transport failure
        if request.path == "/broken":
            return web.Response(status=503, text="unavailable")
        return web.Response(text="ok")

    baseline = await start_entry_point()
    candidate_entry = await start_entry_point("127.0.0.2", handler=candidate)
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate_entry,
            "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"
            "defaults: {timeouts: {total_s: 0.3}}\n"
            "load: {model: open, rate: 40, duration_s: 2.2}\n"
            "requests:\n  - {name: ok, url: 'http://app.example.com/'}\n"
            "  - {name: broken, url: 'http://app.example.com/broken'}\n"
            "  - {name: slow, url: 'http://app.example.com/slow'}\n",
        )
    )
    started_s = time.time()
    collector = RunCollector()
    outcome = await replay(scenario, collector, seed=1)
    report = build_report(
        scenario, collector, started_at="t", duration_s=outcome.elapsed_s, load=outcome
    )
    timeline, totals = report["timeline"], report["totals"]
    entries = {entry["name"]: entry for entry in report["requests"]}
    assert timeline["interval_s"] == 1 and len(timeline["pairs"]) >= 2
    assert timeline["start_s"] is not None and started_s - 1 <= timeline["start_s"] <= time.time()
    assert sum(timeline["pairs"]) == totals["pairs"] > 50
    assert sum(timeline["failures"]["candidate"]) == totals["failures"]["candidate"]["total"]
    assert totals["failures"]["candidate"]["total"] == entries["slow"]["pairs"] > 0
    assert sum(timeline["failures"]["baseline"]) == 0
    assert (
        sum(timeline["server_errors"]["candidate"])
        == entries["broken"]["status"]["candidate"].get("503", 0)
        > 0
    )
    assert sum(timeline["server_errors"]["baseline"]) == 0
