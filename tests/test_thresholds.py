"""Thresholds: parsed at load, evaluated on the run, failing with their own exit code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.report.collect import RequestTally
from shadowdiff.report.thresholds import evaluate_thresholds
from shadowdiff.scenario.model import Threshold
from shadowdiff.spec import RequestSpec

from .test_cli import shadowdiff


@pytest.mark.parametrize(
    ("check", "parsed"),
    [
        ("candidate.p99 < 250ms", ("candidate", "p99", "<", 250.0)),
        ("baseline.p99.9 <= 1.5s", ("baseline", "p99.9", "<=", 1500.0)),
        ("candidate.mean < 800us", ("candidate", "mean", "<", 0.8)),
        ("ratio.p99 < 1.2", ("ratio", "p99", "<", 1.2)),
        ("candidate.error_rate < 0.1%", ("candidate", "error_rate", "<", 0.001)),
        ("difference_rate < 0.5%", ("run", "difference_rate", "<", 0.005)),
    ],
)
def test_threshold_expressions(check: str, parsed: tuple[str, str, str, float]) -> None:
    subject, metric, op, limit = Threshold.model_validate(check).parsed
    assert (subject, metric, op) == parsed[:3] and limit == pytest.approx(parsed[3])


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("candidate.p99 < 250", "a latency needs a unit"),
        ("ratio.p99 < 1.2ms", "a ratio has no unit"),
        ("candidate.error_rate < 3ms", "is a share"),
        ("candidate.p98 < 1ms", "expected SUBJECT.METRIC OP VALUE"),
        ("ratio.error_rate < 2", "ratio.error_rate is not a threshold"),
        # Read as infinity, it was written to --json as `Infinity`, which is no JSON.
        ("ratio.p99 < " + "9" * 400, "too large"),
        ("candidate.p99 < " + "9" * 400 + "s", "too large"),
    ],
)
def test_bad_threshold_is_a_located_scenario_error(
    tmp_path: Path, check: str, message: str
) -> None:
    from shadowdiff.errors import ScenarioError
    from shadowdiff.scenario import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 127.0.0.1}\n  candidate: {address: 127.0.0.1}\n"
        f"thresholds:\n  - '{check}'\nrequests:\n  - {{name: a, url: 'https://a.example.com/'}}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (5, "thresholds[0]") and message in problem.message


async def test_failed_thresholds_exit_4_and_name_the_measured_value(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.03)
        return web.Response(text="ok")

    baseline = await start_entry_point(handler=lambda r: web.Response(text="ok"))
    candidate = await start_entry_point("127.0.0.2", handler=slow)
    scenario = write_scenario(
        baseline,
        candidate,
        "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"
        "thresholds:\n"
        "  - candidate.p99 < 10ms\n"
        "  - baseline.p99 < 1s\n"
        "  - candidate.error_rate < 1%\n"
        "  - difference_rate < 0.5%\n"
        "  - ratio.p50 < 1.2\n"
        "  - {check: 'candidate.p50 < 1s', request: 'nothing matches *'}\n"
        "requests:\n  - {name: a, url: 'http://app.example.com/', repeat: 30}\n",
    )
    report_path = tmp_path / "r.json"
    code, stdout, _ = await shadowdiff("run", str(scenario), "--json", str(report_path), "-q")
    assert code == 4, stdout
    results = {r["check"]: r for r in json.loads(report_path.read_text())["thresholds"]}
    assert results["candidate.p99 < 10ms"]["passed"] is False
    assert results["candidate.p99 < 10ms"]["measured"] >= 30
    assert results["baseline.p99 < 1s"]["passed"] is True
    assert results["candidate.error_rate < 1%"]["passed"] is True
    assert results["difference_rate < 0.5%"]["passed"] is True
    assert results["candidate.p50 < 1s"] | {"measured": None} == results["candidate.p50 < 1s"]
    assert results["candidate.p50 < 1s"]["passed"] is False  # checked nothing: not a pass
    assert results["ratio.p50 < 1.2"]["interval"][0] > 1.2  # 30 ms on a loopback answer
    said = " ".join(stdout.split())
    assert "FAIL candidate.p99 < 10ms: measured" in said
    assert "FAIL ratio.p50 < 1.2: measured" in said and "(95% interval" in said
    assert "3 threshold(s) failed" in stdout


async def test_differences_take_precedence_over_thresholds(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    baseline = await start_entry_point(handler=lambda r: web.Response(text="ok", status=200))
    candidate = await start_entry_point(
        "127.0.0.2", handler=lambda r: web.Response(text="no", status=503)
    )
    scenario = write_scenario(
        baseline,
        candidate,
        "tls_probe: {probe: false}\nthresholds: ['difference_rate < 1%']\n"
        "requests:\n  - {name: a, url: 'http://app.example.com/', repeat: 5}\n",
    )
    code, stdout, _ = await shadowdiff("run", str(scenario), "-q")
    assert code == 1
    assert "threshold(s) failed too" in stdout


def _tally(baseline_us: Any, candidate_us: Any) -> RequestTally:
    tally = RequestTally(RequestSpec("page", "GET", "https://app.example.com/", (), None))
    tally.pairs = max(len(baseline_us), len(candidate_us))
    tally.latency["baseline"].histogram.record(np.asarray(baseline_us, dtype=np.int64))
    tally.latency["candidate"].histogram.record(np.asarray(candidate_us, dtype=np.int64))
    return tally


def _judged(check: str, tally: RequestTally) -> Any:
    (result,) = evaluate_thresholds([Threshold.model_validate(check)], [tally], {})
    return result


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), pairs=st.integers(30, 300))
def test_identical_entry_points_pass_a_ratio_threshold_whatever_chance_measures(
    seed: int, pairs: int
) -> None:
    # Both sides drawn from one skewed distribution, as two identical servers answer: the
    # measured p50 ratio is often past 1.1 by chance, and that must not fail a build.
    rng = np.random.default_rng(seed)
    tally = _tally(*(rng.lognormal(np.log(400), 0.6, pairs).astype(int) + 1 for _ in "bc"))
    for check in ("ratio.p50 < 1.1", "ratio.p90 <= 1.1", "ratio.mean < 1.1", "ratio.max < 1.2"):
        result = _judged(check, tally)
        low, high = result["interval"]
        # The rare run where even the interval misses 1 (under 5% of them) may fail.
        assert result["passed"] or not low <= 1 <= high, result
        if result["passed"] and result["measured"] > result["limit"]:
            assert result["reason"].startswith("within chance"), result


def test_a_real_slowdown_past_the_limit_fails_with_its_interval() -> None:
    rng = np.random.default_rng(7)
    baseline = rng.lognormal(np.log(400), 0.3, 200).astype(int) + 1
    tally = _tally(baseline, baseline * 3 // 2)
    for check in ("ratio.p50 < 1.1", "ratio.p99 < 1.2", "ratio.mean < 1.1"):
        result = _judged(check, tally)
        assert result["passed"] is False and result["reason"] is None, result
        low, high = result["interval"]
        assert 1.2 < low <= result["measured"] <= high < 2, result
    # A limit that identical sides would not pass is judged on the measured value alone.
    same = _tally(baseline, baseline)
    assert _judged("ratio.p50 < 0.9", same) | {"passed": False, "interval": None} == _judged(
        "ratio.p50 < 0.9", same
    )
    # The maximum's interval is the 100th percentile's: a slowdown fails, chance passes.
    slower = _judged("ratio.max < 1.1", tally)
    assert slower["passed"] is False and slower["interval"][0] > 1.1, slower
