"""Shards (`run --shard`, a Kubernetes Indexed Job's JOB_COMPLETION_INDEX), the `--pairs`
stream, and `merge`: four shards send exactly one run, and their merged report has exactly
the figures of the union of their pair lines."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.errors import UsageError
from shadowdiff.replay.pacing import deal
from shadowdiff.replay.shard import Shard, resolve_shard
from shadowdiff.report.document import write_report
from shadowdiff.report.figures import figures_from_pairs, figures_from_report
from shadowdiff.report.merge import merge_reports
from shadowdiff.report.pair_stream import PairsFileError, read_pair_lines

from .test_merge import write_shard_reports

SCENARIO = """\
compare: {noise: {share: 0}}
tls_probe: {probe: false}
thresholds:
  - difference_rate < 50%
requests:
  - {name: home, url: 'http://app.example.com/', repeat: 7}
  - {name: cart, url: 'http://app.example.com/cart', repeat: 5}
  - {name: api, url: 'http://app.example.com/api', repeat: 3}
  - {name: once, url: 'http://app.example.com/once'}
"""
PAIRS = 16


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shadowdiff",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _candidate(request: web.Request) -> web.Response:
    # The cart route lost a header on the candidate: one signature, counted per pair.
    headers = {} if request.path == "/cart" else {"X-Frame-Options": "DENY"}
    return web.Response(text="ok", headers=headers)


def _baseline(request: web.Request) -> web.Response:
    return web.Response(text="ok", headers={"X-Frame-Options": "DENY"})


async def test_four_indexed_shards_send_one_run_and_merge_into_its_figures(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    baseline = await start_entry_point("127.0.0.1", handler=_baseline)
    candidate = await start_entry_point("127.0.0.2", handler=_candidate)
    scenario = write_scenario(baseline, candidate, SCENARIO)

    code, out, err = await _cli("run", str(scenario), "--json", str(tmp_path / "one.json"), "-q")
    assert code == 1, out + err
    single_run = Counter((seen.method, seen.raw_path) for seen in baseline.requests)
    assert sum(single_run.values()) == PAIRS
    baseline.requests.clear()
    candidate.requests.clear()

    # As four pods of an Indexed Job: Kubernetes sets the index, the manifest the count.
    # Shard 3 also spreads its share over two worker processes writing one pairs file.
    shards = await asyncio.gather(
        *(
            _cli(
                "run",
                str(scenario),
                "--json",
                str(tmp_path / f"shard-{k}.json"),
                "--pairs",
                str(tmp_path / f"shard-{k}.ndjson"),
                "-q",
                *(["--workers", "2"] if k == 3 else []),
                env={"JOB_COMPLETION_INDEX": str(k), "SHADOWDIFF_SHARDS": "4"},
            )
            for k in range(4)
        )
    )
    for code, out, err in shards:
        assert code in (0, 1, 4), out + err
    for side in (baseline, candidate):
        assert Counter((seen.method, seen.raw_path) for seen in side.requests) == single_run

    lines = [line for k in range(4) for line in read_pair_lines(tmp_path / f"shard-{k}.ndjson")]
    sent = Counter((line["request"], line["repetition"]) for line in lines)
    assert sent == Counter(
        {
            (name, i): 1
            for name, repeat in [("home", 7), ("cart", 5), ("api", 3), ("once", 1)]
            for i in range(repeat)
        }
    )  # every (request, repetition) once: no overlap, nothing missing
    assert sorted(line["index"] for line in lines) == list(range(PAIRS))
    # Each pair its own trace, the id both servers saw in that pair's traceparent.
    assert len({line["trace_id"] for line in lines}) == PAIRS
    seen_traces = {
        value.split("-")[1]
        for side in (baseline, candidate)
        for seen in side.requests
        for name, value in seen.headers
        if name.lower() == "traceparent"
    }
    assert seen_traces == {line["trace_id"] for line in lines}
    for k in range(4):
        report = json.loads((tmp_path / f"shard-{k}.json").read_text())
        assert report["shard"] == f"{k}/4"
        assert {line["shard"] for line in read_pair_lines(tmp_path / f"shard-{k}.ndjson")} == {
            f"{k}/4"
        }
        # Each shard sends the mix: every request with more than three repeats is in each.
        assert {"home", "cart"} <= {entry["name"] for entry in report["requests"]}
        ends = (tmp_path / f"shard-{k}.ndjson").read_text().splitlines()
        assert json.loads(ends[-1])["type"] == "end"

    merged_path = tmp_path / "merged.json"
    code, out, err = await _cli(
        "merge",
        *(str(tmp_path / f"shard-{k}.json") for k in range(4)),
        "--json",
        str(merged_path),
        "--markdown",
        str(tmp_path / "merged.md"),
        "-q",
    )
    merged = json.loads(merged_path.read_text())
    single = json.loads((tmp_path / "one.json").read_text())
    assert code == 1 == merged["outcome"]["exit_code"], out + err
    assert figures_from_report(merged) == figures_from_pairs(lines)
    assert merged["totals"]["pairs"] == merged["totals"]["pairs_planned"] == PAIRS
    assert merged["merged"] == {"reports": 4, "shards": ["0/4", "1/4", "2/4", "3/4"]}
    assert (
        "Merged from 4 report(s) (shards 0/4, 1/4, 2/4, 3/4)."
        in (tmp_path / "merged.md").read_text()
    )
    # The same counts as the single run (latencies differ: another moment).
    for key in ("pairs_with_differences", "pairs_alike", "signatures", "failures"):
        assert merged["totals"][key] == single["totals"][key], key
    # Thresholds are decided again on the merged figures: 5 of 16 pairs differ.
    assert merged["thresholds"][0]["measured"] == pytest.approx(5 / 16)
    assert merged["thresholds"][0]["passed"] is True
    assert [(s["field"], s["count"]) for s in merged["signatures"]] == [
        (s["field"], s["count"]) for s in single["signatures"]
    ]


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        ("2/4", {}, Shard(2, 4)),
        (None, {}, None),
        (None, {"JOB_COMPLETION_INDEX": "1", "SHADOWDIFF_SHARDS": "3"}, Shard(1, 3)),
        ("auto", {"JOB_COMPLETION_INDEX": "0", "SHADOWDIFF_SHARDS": "1"}, Shard(0, 1)),
        ("0/2", {"JOB_COMPLETION_INDEX": "1", "SHADOWDIFF_SHARDS": "3"}, Shard(0, 2)),
    ],
    ids=["flag", "none", "indexed-job", "auto", "flag-wins"],
)
def test_shard_comes_from_the_flag_or_the_indexed_job(
    flag: str | None, environ: dict[str, str], expected: Shard | None
) -> None:
    assert resolve_shard(flag, environ) == expected


@pytest.mark.parametrize(
    ("flag", "environ", "message"),
    [
        ("4/4", {}, "shard index 4 is not below the count 4"),
        ("1/0", {}, "the shard count must be 1 to"),
        ("-1/4", {}, "expected K/N"),
        ("1/٤", {}, "expected K/N"),
        ("a/b\r\nX", {}, "expected K/N"),
        ("auto", {}, "JOB_COMPLETION_INDEX is not set"),
        (None, {"JOB_COMPLETION_INDEX": "2"}, "SHADOWDIFF_SHARDS is not set"),
        (None, {"JOB_COMPLETION_INDEX": "5", "SHADOWDIFF_SHARDS": "4"}, "not below the count"),
    ],
    ids=[
        "index-too-big",
        "zero",
        "negative",
        "arabic-digit",
        "crlf",
        "auto-no-env",
        "no-count",
        "env-index-too-big",
    ],
)
def test_a_bad_shard_is_one_clear_line(
    flag: str | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        resolve_shard(flag, environ)
    assert "\n" not in str(caught.value)


async def test_a_bad_shard_exits_2_before_sending(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    scenario = write_scenario(baseline, baseline, SCENARIO)
    code, _, err = await _cli("run", str(scenario), "--shard", "3/3")
    assert code == 2 and err.strip().splitlines() == [
        "error: --shard: shard index 3 is not below the count 3 (shards are counted from 0: "
        "0/3 to 2/3)"
    ]
    assert baseline.requests == []


def _report(tmp_path: Path, name: str, change: Callable[[dict[str, Any]], None]) -> str:
    """The demo-like report of a small run, changed by `change`, written to `name`."""
    source = json.loads((tmp_path / "base.json").read_text())
    change(source)
    path = tmp_path / name
    path.write_text(json.dumps(source))
    return str(path)


@pytest.fixture
def base_report(tmp_path: Path) -> Path:
    """A whole run's report, built in process (tests/test_merge.py)."""
    whole, _ = write_shard_reports(tmp_path, count=1)
    write_report(tmp_path / "base.json", whole)
    return tmp_path / "base.json"


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(report: dict[str, Any]) -> None:
        target: Any = report
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


_REFUSED: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_set(["tool", "version"], "0.0.1"), "written by shadowdiff '0.0.1'"),
    (_set(["schema"], "other/9"), "schema 'other/9' is not"),
    (_set(["state", "scenario", "name"], "another"), "another scenario or other settings"),
    (_set(["state", "collector", "requests", 0, "pairs"], "7"), "requests[0].pairs: expected"),
    (
        _set(["state", "collector", "requests", 0, "latency", "baseline", "buckets"], [[1, 5]]),
        "buckets do not add up",
    ),
    (_set(["state", "collector", "phases"], []), "state.collector.phases: expected an object"),
    (_set(["state", "scenario", "compare"], {"fail_on": "sometimes"}), "compare.fail_on"),
    (_set(["state", "shard"], {"index": 5, "count": 2}), "index 5 is not below count 2"),
]


def test_merge_refuses_what_is_not_the_same_run_or_not_a_report(
    base_report: Path, tmp_path: Path
) -> None:
    for change, message in _REFUSED:
        changed = _report(tmp_path, "changed.json", change)
        with pytest.raises(UsageError) as caught:
            merge_reports([str(base_report), changed])
        assert message in str(caught.value) and "\n" not in str(caught.value), message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "nested deeper than"),
        (b"\xff\xfe not json", "not JSON"),
        (b"[1, 2]", "not a shadowdiff report (a JSON list)"),
        (b'{"schema": "shadowdiff.report/1", "tool": {"version": 7}}', "written by shadowdiff 7"),
    ],
    ids=["deep", "bytes", "list", "wrong-type"],
)
def test_merge_refuses_hostile_files_with_their_name(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "hostile.json"
    path.write_bytes(content)
    with pytest.raises(UsageError) as caught:
        merge_reports([str(path)])
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_merge_refuses_a_shard_twice_or_missing(base_report: Path, tmp_path: Path) -> None:
    first = _report(tmp_path, "a.json", _set(["state", "shard"], {"index": 0, "count": 2}))
    again = _report(tmp_path, "b.json", _set(["state", "shard"], {"index": 0, "count": 2}))
    with pytest.raises(UsageError, match=r"shard 0/2 is .*a\.json too"):
        merge_reports([first, again])
    with pytest.raises(UsageError, match="shard 1/2 missing"):
        merge_reports([first])


def test_merge_refuses_the_same_run_twice_and_reports_of_two_keys(
    base_report: Path, tmp_path: Path
) -> None:
    copy = _report(tmp_path, "copy.json", lambda report: None)
    with pytest.raises(UsageError, match=r"copy\.json: the same run as .*base\.json"):
        merge_reports([str(base_report), copy])
    other_key = _report(tmp_path, "k.json", _set(["redaction", "key_id"], "0badc0de"))
    with pytest.raises(UsageError, match=r"k\.json: redacted with another key"):
        merge_reports([str(base_report), other_key])


def test_a_pairs_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    path.write_text('{"type": "header", "schema": "shadowdiff.pairs/9"}\n')
    with pytest.raises(PairsFileError, match=r"p\.ndjson:1: schema 'shadowdiff\.pairs/9'"):
        list(read_pair_lines(path))


async def test_pairs_stop_at_their_bounds_and_say_so(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    baseline = await start_entry_point("127.0.0.1", handler=_baseline)
    scenario = write_scenario(baseline, baseline, SCENARIO)
    pairs = tmp_path / "p.ndjson"
    code, out, err = await _cli(
        "run", str(scenario), "--pairs", str(pairs), "--pairs-limit", "5", "-q"
    )
    assert code == 0, out + err
    lines = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["header"] + ["pair"] * 5 + ["end"]
    assert lines[0]["schema"] == "shadowdiff.pairs/1"
    assert lines[-1]["pairs_written"] == 5 and lines[-1]["pairs_left_out"] == PAIRS - 5
    code, out, err = await _cli(
        "run", str(scenario), "--pairs", str(pairs), "--pairs-max-bytes", "10", "-q"
    )
    assert code == 0 and json.loads(pairs.read_text().splitlines()[-1])["pairs_left_out"] == PAIRS


@given(
    repeats=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    count=st.integers(1, 6),
    workers=st.integers(1, 3),
)
def test_shards_and_their_workers_deal_each_pair_exactly_once(
    repeats: list[int], count: int, workers: int
) -> None:
    items = [(f"r{i}", rep) for i, repeat in enumerate(repeats) for rep in range(repeat)]
    seen: list[int] = []
    for index in range(count):
        shard = Shard(index, count)
        whole_shard = [i for i, _ in deal(items, shard.share(), lambda item: item[0])]
        by_workers = sorted(
            i
            for k in range(workers)
            for i, _ in deal(items, shard.share(k, workers), lambda item: item[0])
        )
        assert by_workers == whole_shard  # a shard's workers split exactly its share
        seen += whole_shard
    assert sorted(seen) == list(range(len(items)))  # together: the run, once


async def test_an_open_model_shard_runs_its_share_of_the_rate(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    baseline = await start_entry_point("127.0.0.1", handler=_baseline)
    scenario = write_scenario(
        baseline,
        baseline,
        "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"
        "load: {model: open, rate: 80, duration_s: 1}\n"
        "requests:\n  - {name: home, url: 'http://app.example.com/'}\n"
        "  - {name: cart, url: 'http://app.example.com/cart'}\n",
    )
    code, out, err = await _cli(
        "run", str(scenario), "--shard", "1/4", "--json", str(tmp_path / "r.json"), "-q"
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0, out + err
    assert report["load"]["target_rate"] == pytest.approx(20, rel=0.1)
    assert report["load"]["valid"] and 18 <= report["totals"]["pairs"] <= 22
    assert {entry["name"] for entry in report["requests"]} == {"home", "cart"}
