"""Mutated scenario files through the loader: each ends as a scenario or as located problems,
never as another exception, a hang or unbounded memory.

Seeds are the repository's scenarios and the shared hostile files; hypothesis mutates them
(lines duplicated, dropped or swapped, bytes replaced with YAML's special characters, tags,
aliases and control characters, values replaced with extreme ones). The default suite runs a
short profile (tests/test_hostile_scenarios.py); `./dev fuzz` runs a long one beside the
server fuzzer.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import hypothesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowdiff.errors import ScenarioError
from shadowdiff.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted(
    [
        *(ROOT / "scenarios").glob("*.yaml"),
        *(ROOT.parent / "shared" / "fixtures" / "hostile" / "scenarios").glob("*.yaml"),
    ]
)
# Well over what any seed takes; a file that needs longer has found a hang.
SLOW_S = 5.0

_PIECES = [
    "\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!set ",
    "!!python/tuple ",
    "!!timestamp ",
    "!!int ",
    "${X}",
    "$${",
    "\r\n",
    "\x00",
    "\x07",
    "\t",
    "Ω",
    "€",
    "\u202e",
    "\ufeff",
    "'",
    '"',
    "#",
    "|",
    ">",
    "?",
    "%",
    "@",
    "`",
    "~",
    "null",
    "9" * 30,
    "-1",
    "1e309",
    "2001-13-45",
    "0x",
    "0o9",
    "2GiB",
    "100GiB",
    "https://",
    "x" * 1000,
    "[" * 200,
    "{a: " * 100,
]


def _mutate(text: str, data: st.DataObject) -> str:
    lines = text.splitlines(keepends=True) or [""]
    for _ in range(data.draw(st.integers(1, 6))):
        action = data.draw(st.sampled_from(["insert", "replace", "drop", "duplicate", "swap"]))
        index = data.draw(st.integers(0, max(len(lines) - 1, 0)))
        line = lines[index] if lines else ""
        if action == "insert":
            at = data.draw(st.integers(0, len(line)))
            piece = data.draw(st.sampled_from(_PIECES))
            lines[index] = line[:at] + piece + line[at:]
        elif action == "replace" and line:
            at = data.draw(st.integers(0, len(line) - 1))
            piece = data.draw(st.one_of(st.sampled_from(_PIECES), st.text(max_size=3)))
            lines[index] = line[:at] + piece + line[at + 1 :]
        elif action == "drop" and len(lines) > 1:
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, line)
        elif action == "swap" and len(lines) > 1:
            other = data.draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
    return "".join(lines)


def check_one(text: str) -> None:
    """The invariant: a scenario or located problems, quickly."""
    started = time.perf_counter()
    try:
        parse_scenario(text, "fuzz.yaml", base_dir=ROOT / "scenarios", environ={"X": "1"})
    except ScenarioError as error:
        assert error.problems, "a ScenarioError lists its problems"
        for problem in error.problems:
            assert problem.file == "fuzz.yaml" and problem.message, problem
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW_S, f"took {elapsed:.1f} s"


def fuzz(count: int, seed: int | None = None) -> None:
    seeds = [path.read_text(encoding="utf-8", errors="replace") for path in SEEDS]

    @hypothesis.seed(seed if seed is not None else 0)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(seed=st.sampled_from(seeds), data=st.data())
    def run(seed: str, data: st.DataObject) -> None:
        check_one(_mutate(seed, data))

    run()


def main(count: int, seed: int | None = None) -> int:
    """Run `count` mutated files; print the counts; 0 when none failed (a failure raises
    with hypothesis's shrunk example, which is the report)."""
    started = time.perf_counter()
    fuzz(count, seed)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"scenario files: {count} mutated files, 0 tracebacks, 0 over {SLOW_S:.0f} s, "
        f"peak RSS {peak_mb:.0f} MB, {time.perf_counter() - started:.0f} s"
    )
    return 0
