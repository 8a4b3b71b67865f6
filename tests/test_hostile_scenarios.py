"""Scenario files that once crashed or hung the loader (the shared hostile fixtures), and a
short profile of the mutation fuzzer: each ends as located problems or a scenario."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shadowdiff.errors import ScenarioError
from shadowdiff.scenario import load_scenario, parse_scenario

from .fuzz.scenarios import ROOT, fuzz

HOSTILE = sorted((ROOT.parent / "shared" / "fixtures" / "hostile" / "scenarios").glob("*.yaml"))
# Files that are valid once read safely (their trouble was at the first send, or a plain
# string that looked like a date).
LOADS = {"034-UnicodeEncodeError.yaml", "z-baddate.yaml"}


def test_the_shared_hostile_files_are_there() -> None:
    assert len(HOSTILE) >= 40, "expected ../shared/fixtures/hostile/scenarios beside the repo"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("path", HOSTILE, ids=lambda path: path.name)
def test_a_hostile_file_ends_as_located_problems(path: Path) -> None:
    if path.name in LOADS:
        assert load_scenario(path, environ={}).requests
        return
    with pytest.raises(ScenarioError) as error:
        load_scenario(path, environ={})
    for problem in error.value.problems:
        assert problem.line >= 1 and problem.column >= 1, problem


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("z-laughs5.yaml", "more than 100,000 values"),
        ("000-RecursionError.yaml", "nested deeper than 64 levels"),
        ("004-ConstructorError.yaml", "YAML tags are not supported"),
        ("z-bodysize100.yaml", "body.size"),
        ("z-matrixbomb.yaml", "more than 20,000 distinct requests"),
        ("015-ConstructorError.yaml", "YAML merge key"),
        ("001-ReaderError.yaml", "U+0000"),
    ],
)
def test_the_cli_says_what_is_wrong_in_one_line_and_exits_2(name: str, expected: str) -> None:
    path = ROOT.parent / "shared" / "fixtures" / "hostile" / "scenarios" / name
    result = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_dates_stay_text_for_the_fields_that_parse_them() -> None:
    text = (
        "targets: {baseline: {address: 127.0.0.1}, candidate: {address: 127.0.0.2}}\n"
        "name: 2001-01-01\n"
        "requests: [{name: a, url: 'https://a.example.com/'}]\n"
        "accept: [{field: server, reason: r, until: 2027-02-30}]\n"
    )
    with pytest.raises(ScenarioError) as error:
        parse_scenario(text, "s.yaml", base_dir=Path("."), environ={})
    assert [p.field for p in error.value.problems] == ["accept[0].until"]


@pytest.mark.timeout(120)
def test_mutated_scenario_files_end_as_scenarios_or_located_problems() -> None:
    fuzz(150)


@pytest.mark.timeout(10)
def test_a_scenario_or_body_file_that_never_ends_is_refused_after_its_limit(
    tmp_path: Path,
) -> None:
    # A device says it holds 0 bytes: a size check passes it, and a whole read never ends
    # (/dev/zero took 24 GB of memory before the kernel stopped it).
    with pytest.raises(ScenarioError) as error:
        load_scenario("/dev/zero", environ={})
    assert "larger than 16 MiB" in str(error.value)
    scenario = tmp_path / "body.yaml"
    scenario.write_text(
        "version: 1\n"
        "targets: {baseline: {address: 127.0.0.1}, candidate: {address: 127.0.0.2}}\n"
        "requests:\n"
        "  - {name: upload, method: POST, allow_unsafe: true, url: http://a.test/,\n"
        "     body: {file: /dev/zero}}\n"
    )
    with pytest.raises(ScenarioError) as error:
        load_scenario(scenario, environ={})
    [problem] = error.value.problems
    assert (problem.line, problem.field) == (5, "requests[0].body.file"), problem
    assert "larger than 64 MiB" in problem.message
