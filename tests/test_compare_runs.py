"""`shadowdiff compare-runs` as a user runs it: two saved reports of real runs, the verdict and
its exit code, the JSON result, and files that are not reports (one located line, exit 2)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.errors import UsageError
from shadowdiff.report import run_figures
from shadowdiff.report.run_figures import read_report_figures

from .test_cli import shadowdiff

SCENARIO = "compare: {noise: {share: 0}}\ndefaults: {concurrency: 2}\nrequests:\n  - {name: home, url: 'https://app.example.com/', repeat: 60}\n"


@pytest.fixture
async def reports(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> tuple[Path, Path]:
    """Two runs of one scenario against the same two loopback servers."""
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    scenario = write_scenario(baseline, candidate, SCENARIO, ca_file)
    paths = tmp_path / "checkpoint.json", tmp_path / "current.json"
    for path in paths:
        code, _, stderr = await shadowdiff("run", str(scenario), "-q", "--json", str(path))
        assert code == 0, stderr
    return paths


async def test_two_runs_alike_exit_0_with_every_figure_shown(
    reports: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "comparison.json"
    code, stdout, stderr = await shadowdiff(
        "compare-runs", str(reports[0]), str(reports[1]), "--json", str(out)
    )
    assert code == 0, stdout + stderr
    assert "exit 0: nothing worse than the checkpoint" in stdout
    for label in ("answered/s", "error rate", "5xx rate", "p50 ms", "p90 ms", "p99 ms"):
        assert stdout.count(f"│   {label} ") == 3, label  # baseline, candidate and overall
    document = json.loads(out.read_text())
    assert document["schema"] == "shadowdiff.compare-runs/1"
    assert document["outcome"]["exit_code"] == 0
    assert {c["subject"] for c in document["checks"]} == {"baseline", "candidate", "overall"}
    p50 = next(c for c in document["checks"] if (c["subject"], c["figure"]) == ("overall", "p50"))
    assert p50["status"] == "alike" and p50["checkpoint"]["low"] <= p50["checkpoint"]["value"]
    # 60 answers per side bound a p90 but not a p99: said, not guessed.
    p99 = next(c for c in document["checks"] if (c["subject"], c["figure"]) == ("candidate", "p99"))
    assert p99["status"] == "not judged" and "too few answers" in p99["reason"]
    assert "too few answers in the checkpoint" in stdout
    # --json -: the JSON on stdout, the table on stderr.
    code, stdout, stderr = await shadowdiff(
        "compare-runs", str(reports[0]), str(reports[1]), "--json", "-"
    )
    assert code == 0 and json.loads(stdout)["outcome"]["exit_code"] == 0
    assert "compare-runs:" in stderr


async def test_reports_of_different_scenarios_are_refused(
    reports: tuple[Path, Path], tmp_path: Path
) -> None:
    other = json.loads(reports[1].read_text())
    other["scenario"]["name"] = "another scenario"
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    code, stdout, stderr = await shadowdiff("compare-runs", str(reports[0]), str(other_path))
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "different scenarios" in stderr, stderr
    corrected = json.loads(reports[1].read_text())
    corrected["latency"]["corrected"] = True
    other_path.write_text(json.dumps(corrected))
    code, _, stderr = await shadowdiff("compare-runs", str(reports[0]), str(other_path))
    assert code == 2 and "compare runs of one load model" in stderr, stderr


def write(tmp_path: Path, document: Any, name: str = "hostile.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


HOSTILE: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("not json", lambda r: "{not json", "not a shadowdiff report: Expecting"),
    ("deeply nested", lambda r: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("a list", lambda r: [1, 2], "(top): expected a JSON object"),
    (
        "another schema",
        lambda r: {**r, "schema": "other/9"},
        "schema: expected 'shadowdiff.report/1'",
    ),
    (
        "a string count",
        lambda r: {**r, "totals": {**r["totals"], "pairs": "60"}},
        "totals.pairs: expected a whole number",
    ),
    (
        "a bool count",
        lambda r: {**r, "totals": {**r["totals"], "pairs": True}},
        "totals.pairs: expected a whole number",
    ),
    (
        "a huge number",
        lambda r: json.dumps(r).replace('"pairs": 60', '"pairs": ' + "9" * 5000),
        "not a shadowdiff report: Exceeds the limit",
    ),
    (
        "a bucket that is a string",
        lambda r: _histogram(r, buckets=["x"]),
        "latency.histograms.baseline.buckets[0]: expected [index, count]",
    ),
    (
        "a negative bucket count",
        lambda r: _histogram(r, buckets=[[10, -1]]),
        "latency.histograms.baseline.buckets[0][1]: expected a whole number",
    ),
    (
        "a bucket past any latency",
        lambda r: _histogram(r, buckets=[[10**12, 1]]),
        "latency.histograms.baseline.buckets[0][0]: expected a whole number from 0 to",
    ),
    (
        "counts that do not add up",
        lambda r: _histogram(r, count=7),
        "latency.histograms.baseline.count: expected the buckets' total",
    ),
    (
        "another bucketing",
        lambda r: _histogram(r, significant_digits=2),
        "latency.histograms.baseline.significant_digits: expected 3",
    ),
    (
        "a missing histogram",
        lambda r: {**r, "latency": {**r["latency"], "histograms": {}}},
        "latency.histograms.baseline: missing",
    ),
    (
        "NaN seconds",
        lambda r: json.dumps({**r, "load": {**r["load"], "measured_s": float("nan")}}),
        "load.measured_s: expected a number from 0",
    ),
    (
        "more failures than pairs",
        lambda r: _failures(r, 10**6),
        "totals.failures.baseline.total: expected at most totals.pairs",
    ),
    (
        "a control character",
        lambda r: {**r, "scenario": {"name": 7, "file": "x"}},
        "scenario.name: expected a string; got int 7",
    ),
]


def _histogram(report: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(report)
    changed["latency"]["histograms"]["baseline"].update(fields)
    return changed


def _failures(report: dict[str, Any], total: int) -> dict[str, Any]:
    changed = copy.deepcopy(report)
    changed["totals"]["failures"]["baseline"]["total"] = total
    return changed


@pytest.fixture(scope="module")
def saved_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real report (the demo's), to break in every way."""
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("demo") / "demo.json"
    subprocess.run(
        [sys.executable, "-m", "shadowdiff", "demo", "--json", str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    report: dict[str, Any] = json.loads(path.read_text())
    report["totals"]["pairs"] = 60
    return report


@pytest.mark.parametrize(
    ("name", "break_it", "message"), HOSTILE, ids=[case[0] for case in HOSTILE]
)
def test_a_file_that_is_not_a_report_is_one_located_line(
    saved_report: dict[str, Any],
    tmp_path: Path,
    name: str,
    break_it: Callable[[dict[str, Any]], Any],
    message: str,
) -> None:
    path = write(tmp_path, break_it(copy.deepcopy(saved_report)))
    with pytest.raises(UsageError) as raised:
        read_report_figures(path)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_file_past_the_size_limit_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saved_report: dict[str, Any]
) -> None:
    path = write(tmp_path, saved_report)
    monkeypatch.setattr(run_figures, "REPORT_LIMIT_BYTES", 1024)
    with pytest.raises(UsageError, match="larger than 0 MiB: not a shadowdiff report"):
        read_report_figures(path)
    for not_a_file in (tmp_path, tmp_path / "fifo"):
        if not_a_file.name == "fifo":
            os.mkfifo(not_a_file)  # opening it would wait for a writer
        with pytest.raises(UsageError, match="not a regular file"):
            read_report_figures(not_a_file)
    with pytest.raises(UsageError, match="no such file"):
        read_report_figures(tmp_path / "missing.json")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_any_value_anywhere_ends_as_figures_or_one_line(
    saved_report: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Replace any value of a real report, at any depth, with any JSON value: reading it gives
    figures or a UsageError, never another exception."""
    report = copy.deepcopy(saved_report)
    node: Any = report
    while True:
        keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and data.draw(st.booleans()):
            node = child
            continue
        node[key] = data.draw(JSON_VALUES)
        break
    path = tmp_path_factory.mktemp("hostile") / "report.json"
    path.write_text(json.dumps(report))
    try:
        read_report_figures(path)
    except UsageError as exc:
        assert "\n" not in str(exc)


async def test_cli_names_the_file_and_field_and_exits_2(
    saved_report: dict[str, Any], tmp_path: Path
) -> None:
    good = write(tmp_path, saved_report, "good.json")
    bad = write(tmp_path, _histogram(saved_report, buckets=[["\x1b[31m", 1]]), "bad.json")
    code, stdout, stderr = await shadowdiff("compare-runs", str(good), str(bad))
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"error: {bad}: latency.histograms.baseline.buckets[0][0]:"), stderr
    assert "\x1b" not in stderr and "Traceback" not in stderr
    # `report --hgrm` reads the same histograms the same way.
    code, stdout, stderr = await shadowdiff("report", str(bad), "--hgrm", str(tmp_path / "x"))
    assert code == 2 and "latency.histograms.baseline.buckets[0][0]" in stderr, stderr
    assert stdout == "" and not list(tmp_path.glob("x.*"))
