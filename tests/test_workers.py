"""--workers: several processes each send a share of the pairs; their results merge into one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from shadowdiff.report.collect import RunCollector
from shadowdiff.stats.histogram import LatencyHistogram

from .test_cli import shadowdiff

QUIET = "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"


async def test_two_workers_send_exactly_one_run_and_merge_it(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point(
        "127.0.0.2",
        handler=lambda r: web.json_response({"path": r.raw_path}, headers={"X-Side": "c"}),
    )
    scenario = write_scenario(
        baseline,
        candidate,
        QUIET + "requests:\n  - {name: a, url: 'http://app.example.com/a', repeat: 150}\n"
        "  - {name: b, url: 'http://app.example.com/b', repeat: 150}\n",
    )
    report_path = tmp_path / "r.json"
    code, stdout, stderr = await shadowdiff(
        "run", str(scenario), "--workers", "2", "--json", str(report_path), "-q"
    )
    report = json.loads(report_path.read_text())
    assert code == 1, stdout + stderr  # the candidate answers differently: every pair differs
    assert (
        report["resources"]["workers"] == 2 and len(report["resources"]["workers_peak_rss_mb"]) == 2
    )
    assert report["totals"]["pairs"] == report["totals"]["pairs_with_differences"] == 300
    assert len(baseline.requests) == len(candidate.requests) == 300
    assert sorted(record["index"] for record in report["pairs"]) == list(range(300))
    assert {entry["name"]: entry["pairs"] for entry in report["requests"]} == {"a": 150, "b": 150}
    # One signature line per route (/a and /b), 150 pairs each.
    assert sum(line["count"] for line in report["signatures"] if line["field"] == "x-side") == 300
    assert report["latency"]["baseline"]["total"]["count"] == 300
    # Each worker makes trace ids of its own: no two pairs share one, and the servers saw each
    # pair's on both sides.
    traces = {record["trace_id"] for record in report["pairs"]}
    assert len(traces) == 300 and None not in traces
    for entry in (baseline, candidate):
        seen = {v[3:35] for s in entry.requests for k, v in s.headers if k.lower() == "traceparent"}
        assert seen == traces


def test_collectors_merge_like_one_run() -> None:
    """What --workers relies on: collectors of disjoint shares merge into the single run's."""
    from shadowdiff.observation import Observation, Timings
    from shadowdiff.pair import Pair
    from shadowdiff.spec import RequestSpec

    spec = RequestSpec("r", "GET", "http://a.example.com/", (), None)
    rng = np.random.default_rng(5)
    latencies = rng.integers(100_000, 5_000_000, size=(1000, 2))

    def pair(index: int) -> Pair:
        baseline_ns, candidate_ns = (int(v) for v in latencies[index])
        return Pair(
            index,
            spec,
            Observation("baseline", status=200, timings=Timings(0, total_ns=baseline_ns)),
            Observation("candidate", status=200, timings=Timings(0, total_ns=candidate_ns)),
            (),
        )

    single = RunCollector()
    for index in range(1000):
        single(pair(index))
    merged = RunCollector()
    for shard in range(4):
        part = RunCollector()
        for index in range(shard, 1000, 4):
            part(pair(index))
        merged.merge(part)
    single.flush()
    for side in ("baseline", "candidate"):
        one = single.requests["r"].latency[side].histogram
        four = merged.requests["r"].latency[side].histogram
        assert isinstance(one, LatencyHistogram) and isinstance(four, LatencyHistogram)
        assert four == one and four.count == 1000
    assert merged.pairs_done == 1000 and merged.requests["r"].pairs == 1000


async def test_ctrl_c_with_workers_still_writes_the_report(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        return web.Response(text="ok")

    entry = await start_entry_point(handler=slow)
    scenario = write_scenario(
        entry,
        entry,
        QUIET
        + "defaults: {concurrency: 4}\nrequests:\n  - {name: a, url: 'http://app.example.com/', repeat: 100000}\n",
    )
    report_path = tmp_path / "r.json"
    code, _, stderr = await shadowdiff(
        "run",
        str(scenario),
        "--workers",
        "2",
        "--json",
        str(report_path),
        "-q",
        interrupt_when=lambda: len(entry.requests) >= 40,
    )
    assert code == 130, stderr
    report = json.loads(report_path.read_text())
    assert report["interrupted"] is True and 0 < report["totals"]["pairs"] < 100000
    assert "Traceback" not in stderr


async def test_each_worker_sends_the_mix_in_a_time_bounded_run(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    """Two requests cycled for a while by two workers: each worker sends both, so both get
    about as many pairs, even though one is much slower than the other."""
    import asyncio

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/slow":
            await asyncio.sleep(0.01)
        return web.Response(text="ok")

    entry = await start_entry_point(handler=answer)
    scenario = write_scenario(
        entry,
        entry,
        QUIET + "load: {model: closed, concurrency: 4, duration_s: 1.5}\n"
        "requests:\n  - {name: fast, url: 'http://app.example.com/fast'}\n"
        "  - {name: slow, url: 'http://app.example.com/slow'}\n",
    )
    report_path = tmp_path / "r.json"
    code, stdout, stderr = await shadowdiff(
        "run", str(scenario), "--workers", "2", "--json", str(report_path), "-q"
    )
    assert code == 0, stdout + stderr
    report = json.loads(report_path.read_text())
    pairs = {entry["name"]: entry["pairs"] for entry in report["requests"]}
    assert pairs["slow"] > 50
    assert 0.8 < pairs["fast"] / pairs["slow"] < 1.25, pairs
    # Each worker placed its own pairs on the wall clock; the report added them.
    assert sum(report["timeline"]["pairs"]) == report["totals"]["pairs"]
    assert len(report["timeline"]["pairs"]) >= 2


def test_workers_deal_each_request_in_turn_and_together_make_the_run() -> None:
    from shadowdiff.replay.pacing import deal

    # Two requests cycled, as a time-bounded run does: index modulo 2 gave each worker one.
    run = ["a", "b"] * 10 + ["c"] * 5
    shares = [list(deal(run, (k, 2), lambda name: name)) for k in range(2)]
    for share in shares:
        assert {name for _, name in share} == {"a", "b", "c"}
        assert sum(name == "a" for _, name in share) == 5
    assert sorted(index for share in shares for index, _ in share) == list(range(len(run)))
    assert list(deal(run, (0, 1), lambda name: name)) == list(enumerate(run))
