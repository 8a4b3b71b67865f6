"""`shadowdiff watch` refuses what cannot work before sending anything (exit 2, one line), and
its table shows what servers and nameservers said without letting them act on the terminal."""

from __future__ import annotations

import copy
import json
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from shadowdiff.render.watch_table import COLUMNS, WatchDisplay, plain_line, row_cells
from shadowdiff.watch.schema import IntervalRow, PathRow

from .test_cli import shadowdiff

SCENARIO = """\
targets: {baseline: {address: 127.0.0.1}, candidate: {address: 127.0.0.2}}
requests: [{name: home, url: 'https://app.example.com/'}]
"""


def _checkpoint(tmp_path: Path, answers: int) -> Path:
    from shadowdiff.stats.histogram import LatencyHistogram

    histogram = LatencyHistogram()
    histogram.record([1000] * answers)
    side = {"baseline": {"200": answers}, "candidate": {"200": answers}}
    report = {
        "schema": "shadowdiff.report/1",
        "latency": {
            "histograms": {"baseline": histogram.to_dict(), "candidate": histogram.to_dict()}
        },
        "requests": [{"status": side, "failures": {"baseline": {}, "candidate": {}}}],
    }
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(report))
    return path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--nameserver", "dns.example.com"], "--nameserver: expected the nameserver's IP address"),
        (["--nameserver", "127.0.0.1:53", "--rate", "0"], "--rate must be more than 0"),
        (["--nameserver", "127.0.0.1:53", "--interval", "0.01"], "--interval must be from 0.2"),
        (["--nameserver", "127.0.0.1:53", "--rollback-p99-ratio", "0.9"], "--rollback-p99-ratio must be more than 1"),
        (["--nameserver", "127.0.0.1:53", "--rollback-p99-ratio", "1.5"], "a p99 rule needs at least 100"),
        (["--nameserver", "127.0.0.1:53", "--json", "/no/such/folder/w.json"], "folder /no/such/folder does not exist"),
        (["--nameserver", "127.0.0.1:53", "--json", "-"], "--json -: give a file name"),
    ],
    ids=["name as nameserver", "rate 0", "tiny interval", "ratio under 1", "small checkpoint", "json folder", "json stdout"],
)  # fmt: skip
async def test_watch_refuses_what_cannot_work_before_sending(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    scenario = tmp_path / "watch.yaml"
    scenario.write_text(SCENARIO)
    checkpoint = _checkpoint(tmp_path, 10)
    code, stdout, stderr = await shadowdiff(
        "watch", str(scenario), "--checkpoint", str(checkpoint), *flags
    )
    assert code == 2, stderr
    assert message in stderr and "Traceback" not in stderr and stdout == ""


async def test_watch_refuses_a_checkpoint_that_is_not_a_run_report(tmp_path: Path) -> None:
    scenario = tmp_path / "watch.yaml"
    scenario.write_text(SCENARIO)
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text('{"schema": "shadowdiff.watch/1"}')
    code, _, stderr = await shadowdiff(
        "watch", str(scenario), "--checkpoint", str(checkpoint), "--nameserver", "127.0.0.1"
    )
    assert code == 2 and "is not 'shadowdiff.report/1'" in stderr, stderr


def _path(**values: object) -> PathRow:
    row: PathRow = {
        "requests": 20, "errors": 1, "error_rate": 0.05, "error_points_low": -2.0,
        "p50_ms": 12.0, "p99_ms": 30.0, "p99_ratio": 1.1, "slow_share": 0.0,
        "slow_share_low": 0.0, "error_crossed": False, "p99_crossed": False, "failures": {},
        "reached": {},
    }  # fmt: skip
    row.update(values)  # type: ignore[typeddict-item]
    return row


ROW: IntervalRow = {
    "interval": 3,
    "at": "2026-12-02T20:00:00+00:00",
    "elapsed_s": 30.0,
    "dns": {
        "shares": {"baseline": 0.75, "candidate": 0.25, "other": 0.0},
        "ttl_s": 60,
        "hosts": [
            {
                "host": "app.example.com",
                "baseline": 3,
                "candidate": 1,
                "other": 0,
                "ttl_s": 60,
                "error": None,
                "message": "",
            },
            {
                "host": "api.example.com",
                "baseline": 0,
                "candidate": 0,
                "other": 0,
                "ttl_s": None,
                "error": "malformed",
                "message": "bad\x1b[31m\nlabel",
            },
        ],
    },
    "paths": {"dns": _path(), "baseline": _path(errors=0, error_rate=0.0), "candidate": _path()},
    "skipped": 0,
    "verdict": "candidate_worse",
    "crossed": ["error_rate_points"],
    "streaks": {"error_rate_points": 1, "p99_ratio": 0},
}


def test_a_row_reads_as_shares_rates_and_the_verdict() -> None:
    cells = dict(zip(COLUMNS, row_cells(ROW, 10.0), strict=True))
    assert cells["DNS b/c/o%"] == "75/25/0 malformed"
    assert cells["err% d/b/c"] == "5.0/0.0/5.0"
    assert cells["req/s"] == "2.0"
    assert cells["verdict"] == "candidate worse (errors)"


def test_nothing_a_nameserver_says_acts_on_the_terminal() -> None:
    hostile = copy.deepcopy(ROW)
    hostile["dns"]["hosts"][1]["error"] = "x\x1b[2J\ry"
    line = plain_line(hostile, 10.0)
    assert "\x1b" not in line and "\r" not in line and "\n" not in line
    out = StringIO()
    display = WatchDisplay(10.0, "watch", console=Console(file=out, force_terminal=True, width=200))
    display.show(hostile)
    display.close()
    assert "\x1b[2J" not in out.getvalue() and "candidate worse" in out.getvalue()
    lines = StringIO()
    WatchDisplay(10.0, "watch", json_lines=True, out=lines).show(hostile)
    assert "\x1b" not in lines.getvalue() and json.loads(lines.getvalue())["interval"] == 3
