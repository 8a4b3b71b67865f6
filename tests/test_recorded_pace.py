"""`load.pace: recorded`: recorded requests start at their recorded times (scaled by `speed`),
measured like the open model, and recordings that cannot be paced are refused at load time."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.errors import ScenarioError, UsageError
from shadowdiff.replay.pacing import recorded_offsets
from shadowdiff.run import RunOptions, check_options, run
from shadowdiff.scenario import load_scenario
from shadowdiff.spec import RequestSpec

QUIET = "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"


def at(*times: float) -> list[RequestSpec]:
    return [
        RequestSpec(f"r{i}", "GET", "http://a.test/", (), None, recorded_at_s=t)
        for i, t in enumerate(times)
    ]


def test_offsets_follow_the_recording_scaled_by_speed() -> None:
    assert recorded_offsets(at(100.25, 100.75, 102.25), speed=2) == [0.0, 0.25, 1.0]


def test_requests_of_one_whole_second_are_spread_across_it() -> None:
    # $time_local says only the second: three requests in it start a third of a second apart.
    offsets = recorded_offsets(at(50, 50, 50, 51), speed=1)
    assert offsets == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])


def test_a_time_that_goes_back_starts_at_once_and_never_earlier() -> None:
    # nginx logs a request when it ends: a slow one is written after quicker later ones.
    assert recorded_offsets(at(10.5, 12.5, 11.5, 13.5), speed=1) == [0.0, 2.0, 2.0, 3.0]


@given(
    st.lists(
        st.floats(min_value=0, max_value=1e10, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=50,
    ),
    st.floats(min_value=0.01, max_value=1000),
)
def test_offsets_never_go_back_and_start_at_zero(times: list[float], speed: float) -> None:
    offsets = recorded_offsets(at(*times), speed)
    assert len(offsets) == len(times) and offsets[0] == 0.0
    assert all(b >= a for a, b in itertools.pairwise(offsets))


def write_capture(folder: Path, times: Sequence[float | None]) -> Path:
    lines = []
    for i, t in enumerate(times):
        entry: dict[str, Any] = {"method": "GET", "url": f"http://app.example.com/item/{i}"}
        if t is not None:
            entry["time"] = t
        lines.append(json.dumps(entry))
    path = folder / "capture.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def paced_scenario(
    write_scenario: Callable[..., Path], port: int, load: str, extra: str = ""
) -> Path:
    target = f"address: 127.0.0.1\n    ports: {{http: {port}}}"
    return write_scenario(
        target,
        target,
        QUIET + f"load: {load}\nsources: [{{jsonl: capture.jsonl}}]\n" + extra,
    )


@pytest.mark.parametrize(
    ("load", "extra", "times", "message"),
    [
        ("{pace: recorded}", "", [1.0, None], "load.pace: pace: recorded needs a recorded time"),
        (
            "{pace: recorded}",
            "requests:\n  - {name: hand, url: 'http://app.example.com/'}\n",
            [1.0],
            "1 have none (first: 'hand')",
        ),
        ("{pace: recorded, rate: 5}", "", [1.0], "leave out rate"),
        ("{model: closed, speed: 2x}", "", [1.0], "speed applies to pace: recorded only"),
        (
            "{pace: recorded}",
            "",
            [0.0, 1e9],
            "the recorded times span 1.16e+04 days",
        ),
        ("{pace: recorded, speed: 0x}", "", [1.0], "load.speed"),
    ],
)
def test_recordings_that_cannot_be_paced_are_refused_at_load_time(
    tmp_path: Path,
    write_scenario: Callable[..., Path],
    load: str,
    extra: str,
    times: list[float | None],
    message: str,
) -> None:
    write_capture(tmp_path, times)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(paced_scenario(write_scenario, 9, load, extra))
    assert message in str(raised.value)


def test_json_nan_and_infinity_are_no_time(
    tmp_path: Path, write_scenario: Callable[..., Path]
) -> None:
    (tmp_path / "capture.jsonl").write_text(
        '{"method": "GET", "url": "http://app.example.com/", "time": NaN}\n'
        '{"method": "GET", "url": "http://app.example.com/", "time": Infinity}\n'
    )
    with pytest.raises(ScenarioError, match="2 have none"):
        load_scenario(paced_scenario(write_scenario, 9, "{pace: recorded}"))


def test_concurrency_flag_is_refused_at_recorded_pace(
    tmp_path: Path, write_scenario: Callable[..., Path]
) -> None:
    write_capture(tmp_path, [1.0, 2.0])
    scenario = load_scenario(paced_scenario(write_scenario, 9, "{pace: recorded}"))
    with pytest.raises(UsageError, match=r"does not apply to load\.pace: recorded"):
        check_options(scenario, RunOptions(concurrency=4))


async def test_requests_arrive_at_the_recorded_gaps_divided_by_speed(
    tmp_path: Path, write_scenario: Callable[..., Path]
) -> None:
    arrivals: dict[str, float] = {}

    async def handler(request: web.Request) -> web.Response:
        arrivals.setdefault(request.path, time.perf_counter())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        recorded = [1_733_137_200.0, 1_733_137_200.4, 1_733_137_201.2, 1_733_137_202.0]
        write_capture(tmp_path, recorded)
        scenario = load_scenario(
            paced_scenario(write_scenario, runner.addresses[0][1], "{pace: recorded, speed: 2x}")
        )
        result = await asyncio.wait_for(run(scenario, RunOptions()), 30)
    finally:
        await runner.cleanup()
    first = arrivals["/item/0"]
    gaps = [arrivals[f"/item/{i}"] - first for i in range(len(recorded))]
    expected = [(t - recorded[0]) / 2 for t in recorded]
    assert gaps == pytest.approx(expected, abs=0.1)
    load = result.report["load"]
    assert load is not None
    assert load["model"] == "recorded" and load["pairs"] == 4 and load["valid"], load
    assert result.report["totals"]["pairs"] == 4


async def test_a_schedule_the_candidate_cannot_keep_is_reported_as_not_held(
    tmp_path: Path, write_scenario: Callable[..., Path]
) -> None:
    """With one pair in flight and a candidate slower than the recorded gaps, pairs start late:
    the load section must say the schedule was not held (exit 3), as the open model does."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        write_capture(tmp_path, [1_733_137_200.0 + 0.1 * i for i in range(12)])
        scenario = load_scenario(
            paced_scenario(
                write_scenario, runner.addresses[0][1], "{pace: recorded, max_in_flight: 1}"
            )
        )
        result = await asyncio.wait_for(run(scenario, RunOptions()), 30)
    finally:
        await runner.cleanup()
    load = result.report["load"]
    assert load is not None and load["model"] == "recorded"
    assert not load["valid"] and "not held" in (load["reason"] or ""), load
    assert result.report["outcome"]["exit_code"] == 3


def test_several_sources_replay_in_the_order_of_their_times(
    tmp_path: Path, write_scenario: Callable[..., Path]
) -> None:
    (tmp_path / "late.jsonl").write_text(
        "".join(
            json.dumps({"method": "GET", "url": f"http://app.example.com/late/{i}", "time": 10 + i})
            + "\n"
            for i in range(2)
        )
    )
    (tmp_path / "early.jsonl").write_text(
        "".join(
            json.dumps({"method": "GET", "url": f"http://app.example.com/early/{i}", "time": i})
            + "\n"
            for i in range(2)
        )
    )
    target = "address: 127.0.0.1\n    ports: {http: 9}"
    path = write_scenario(
        target,
        target,
        QUIET + "load: {pace: recorded}\nsources: [{jsonl: late.jsonl}, {jsonl: early.jsonl}]\n",
    )
    scenario = load_scenario(path)
    assert [spec.url.rsplit("/", 2)[1] for spec in scenario.requests] == [
        "early",
        "early",
        "late",
        "late",
    ]
    assert recorded_offsets(list(scenario.requests), 1) == [0.0, 1.0, 10.0, 11.0]
