"""Thresholds: parsed at load, evaluated on the run, failing with their own exit code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from shadowdiff.scenario.model import Threshold

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
    assert "FAIL candidate.p99 < 10ms: measured" in " ".join(stdout.split())
    assert "2 threshold(s) failed" in stdout


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
