"""Follow mode: a growing ingress-nginx log replayed as it grows, through rotation and
truncation, at a bounded rate, ended by a signal with the report of what was compared.

The tailing itself is driven step by step (each wait of the follower runs the next change to
the file), so rotation and truncation are exact; the rest runs real loopback servers, and the
real CLI as a process. Readiness is read from /proc: the follower has the log open at its end.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from shadowdiff.cli import main
from shadowdiff.pair import RunProgress
from shadowdiff.render.follow_summary import FollowSummaryLine, follow_summary
from shadowdiff.replay.stream import Handoff, RateLimit, replay_stream
from shadowdiff.report.collect import RunCollector
from shadowdiff.run import RunOptions, RunResult, run
from shadowdiff.scenario import Scenario, load_scenario
from shadowdiff.scenario.model import RecordedSource
from shadowdiff.sources import MAX_LINE_BYTES, selection_for
from shadowdiff.sources.follow import (
    FollowedLog,
    follow_lines,
    followed_records,
    select_followed,
)
from shadowdiff.sources.record import Recorded, Skipped
from shadowdiff.sources.select import Selection, SourceSummary

from .cli_process import CliProcess, until
from .conftest import EntryPoint

FOLLOWED = """\
compare: {noise: {share: 0}}
tls_probe: {probe: false}
sources:
  - ingress_nginx_log: access.log
    default_host: app.example.com
    scheme: http
select:
  paths_exclude: ["/healthz"]
"""


def nginx_line(path: str, method: str = "GET", agent: str = "curl/8.5") -> bytes:
    """One line of ingress-nginx's default `upstreaminfo` format."""
    return (
        f'10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "{method} {path} HTTP/1.1" 200 12 "-" '
        f'"{agent}" 100 0.001 [shop-web-8080] [] 10.1.2.3:8080 12 0.001 200 abc123\n'
    ).encode()


def append(path: Path, data: bytes) -> None:
    # Opened and closed each time: the test holds no descriptor that looks like the follower's.
    with path.open("ab") as file:
        file.write(data)


def following(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open with its offset at the file's end: from then on,
    whatever is appended is the follower's to read."""
    size, name = path.stat().st_size, str(path.resolve())
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) != name:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue
        position = next(line for line in info.splitlines() if line.startswith("pos:"))
        if int(position.split()[1]) == size:
            return True
    return False


def tail(path: Path, steps: list[Callable[[], object]], **options: Any) -> list[bytes]:
    """Every line `follow_lines` yields when each of its waits runs the next step; it stops
    at the wait after the last step."""
    pending = list(steps)

    def wait(_: float) -> None:
        if pending:
            pending.pop(0)()
        else:
            pending.append(lambda: None)  # a marker: no step left
            done.append(True)

    done: list[bool] = []
    return list(follow_lines(path, lambda: not done, poll_s=0, wait=wait, **options))


# --- the tailing, step by step -------------------------------------------------------------


def test_follow_lines_yields_only_what_is_written_after_it_began_each_line_whole(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"old 1\nold 2\n")
    lines = tail(
        log,
        [
            lambda: append(log, b"new 1\nnew 2 sta"),  # a line half written
            lambda: append(log, b"rt and end\n"),
        ],
    )
    assert lines == [b"new 1\n", b"new 2 start and end\n"]


def test_follow_lines_reads_a_rotated_file_to_its_end_then_the_new_one_from_its_start(
    tmp_path: Path,
) -> None:
    log, rotated = tmp_path / "access.log", tmp_path / "access.log.1"

    def rotate() -> None:
        append(log, b"a2\n")
        log.rename(rotated)
        append(rotated, b"a3\n")  # the writer has not reopened yet: still the old file
        append(rotated, b"a4 without newline")

    lines = tail(
        log,
        [
            lambda: append(log, b"a1\n"),
            rotate,
            lambda: None,  # the name names no file for a while
            lambda: append(log, b"b1\n"),  # the writer reopened: a new file
            lambda: append(log, b"b2\n"),
        ],
        from_start=True,
    )
    assert lines == [b"a1\n", b"a2\n", b"a3\n", b"a4 without newline", b"b1\n", b"b2\n"]


def test_follow_lines_reads_a_truncated_file_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")

    def truncate_and_write() -> None:
        log.write_bytes(b"c1\n")  # as copytruncate leaves it, then the writer goes on

    lines = tail(
        log,
        [
            lambda: append(log, b"a1 a long line\na2 another long line\n"),
            truncate_and_write,
            lambda: append(log, b"c2\n"),
        ],
    )
    assert lines == [b"a1 a long line\n", b"a2 another long line\n", b"c1\n", b"c2\n"]


def test_follow_lines_drops_an_overlong_line_without_holding_it(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    lines = tail(
        log,
        [
            lambda: append(log, b"x" * (2 * MAX_LINE_BYTES)),  # 2 MiB, no newline yet
            lambda: append(log, b"x" * 1000),
            lambda: append(log, b"\nok\n"),
        ],
    )
    assert len(lines) == 2 and lines[1] == b"ok\n"
    assert lines[0].startswith(b"\x00") and len(lines[0]) < 100  # the marker, never the line


def test_a_followed_jsonl_file_is_read_by_its_reader(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    log.write_text('{"method": "GET", "url": "https://app.example.com/old"}\n')

    def wait(_: float) -> None:
        append(log, b'{"method": "GET", "url": "https://app.example.com/new"}\nnot json\n')

    items = followed_records(
        RecordedSource(jsonl="requests.jsonl"), tmp_path, lambda: True, poll_s=0, wait=wait
    )
    found = [next(items), next(items)]
    assert isinstance(found[0], Recorded) and found[0].target == "/new"
    assert found[0].location == "requests.jsonl:1"
    assert isinstance(found[1], Skipped) and found[1].reason == "malformed"


# --- selection of followed requests ----------------------------------------------------------


def _recorded(count: int, path: str = "/items/{}") -> Iterator[Recorded]:
    for number in range(count):
        yield Recorded(f"log:{number + 1}", "GET", path.format(number), host="app.example.com")


def test_select_followed_counts_refused_requests_as_sampled_out_without_using_the_route_share() -> (
    None
):
    summary = SourceSummary("log")
    answers = iter([False, False, True, True, True, True])
    specs = list(
        select_followed(
            _recorded(6), Selection(per_route=2), summary, admit=lambda _: next(answers)
        )
    )
    # Two refused by the rate, then two sent: the route's share of 2 is spent only on those.
    assert [spec.url for spec in specs] == [
        "https://app.example.com/items/2",
        "https://app.example.com/items/3",
    ]
    assert summary.lines == 6 and summary.replayed == 2
    assert dict(summary.skipped) == {"sampled_out": 4}
    assert dict(summary.templates) == {"GET app.example.com/items/{n}": 2}


def test_select_followed_ends_once_sample_count_requests_went_out() -> None:
    summary = SourceSummary("log")
    items = _recorded(100)
    specs = list(select_followed(items, Selection(sample_count=3), summary, admit=lambda _: True))
    assert len(specs) == 3 and summary.lines == 3
    assert next(items).location == "log:4"  # nothing more was read


def test_the_rate_limit_allows_a_second_s_worth_then_the_rate() -> None:
    now = [0.0]
    limit = RateLimit(10, clock=lambda: now[0])
    assert sum(limit.take() for _ in range(50)) == 10
    now[0] += 0.5
    assert sum(limit.take() for _ in range(50)) == 5


# --- replaying a followed log against real servers -----------------------------------------


async def _start_follow(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    tmp_path: Path,
    *,
    handler: Any = None,
    rate: float = 1000,
    body: str = FOLLOWED,
) -> tuple[asyncio.Task[RunResult], Path, EntryPoint, EntryPoint]:
    baseline = await start_entry_point("127.0.0.1", handler=handler)
    candidate = await start_entry_point("127.0.0.2", handler=handler)
    log = tmp_path / "access.log"
    log.write_bytes(nginx_line("/before-the-start"))
    scenario = load_scenario(write_scenario(baseline, candidate, body), read_sources=False)
    task = asyncio.ensure_future(
        run(scenario, RunOptions(follow=True, follow_pairs_per_s=rate, concurrency=4))
    )
    await until(lambda: following(os.getpid(), log), 10, "the follower to open the log")
    return task, log, baseline, candidate


def answered(baseline: EntryPoint, candidate: EntryPoint) -> int:
    """Pairs both servers have seen: once stopped, the run compares those in flight."""
    return min(len(baseline.requests), len(candidate.requests))


async def _stop(task: asyncio.Task[RunResult]) -> Any:  # the report, read as JSON data
    task.cancel()
    result = await task
    return result.report


async def test_lines_appended_after_the_start_are_replayed(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    task, log, baseline, candidate = await _start_follow(
        start_entry_point, write_scenario, tmp_path
    )
    append(log, b"".join(nginx_line(f"/items/{n}") for n in range(5)) + nginx_line("/healthz"))
    await until(lambda: answered(baseline, candidate) >= 5, 10, "5 pairs")
    report = await _stop(task)
    assert sorted(seen.raw_path for seen in baseline.requests) == [f"/items/{n}" for n in range(5)]
    assert all(seen.host == "app.example.com" for seen in candidate.requests)
    assert report["totals"]["pairs"] == 5 and report["totals"]["pairs_planned"] is None
    assert report["outcome"]["exit_code"] == 0 and report["interrupted"] is False
    assert report["stop"]["cause"] == "cancelled"
    assert report["load"]["model"] == "follow"
    [source] = report["sources"]
    assert (source["lines"], source["replayed"]) == (6, 5)
    assert source["skipped"] == {"filtered": 1}
    assert [entry["name"] for entry in report["requests"]] == ["GET app.example.com/items/{n}"]


async def test_pairs_a_hung_candidate_never_answers_are_counted_as_its_timeouts(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    """Stopped while the candidate hangs on some requests: after the drain, the silent side's
    requests end as timeouts, so every pair sent is compared and counted, none vanishes."""
    hang = asyncio.Event()

    async def hanging(request: web.Request) -> web.Response:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if request.path.startswith("/slow") and sockname and sockname[0] == "127.0.0.2":
            await hang.wait()
        return web.Response(text="ok")

    task, log, _, candidate = await _start_follow(
        start_entry_point, write_scenario, tmp_path, handler=hanging
    )
    try:
        append(log, b"".join(nginx_line(f"/fast/{n}") for n in range(2)))
        append(log, b"".join(nginx_line(f"/slow/{n}") for n in range(2)))
        await until(lambda: len(candidate.requests) >= 4, 10, "4 requests at the candidate")
        report = await _stop(task)
    finally:
        hang.set()
    assert report["totals"]["pairs"] == 4
    failures = report["totals"]["failures"]["candidate"]
    assert failures == {"total": 2, "by_class": {"timeout": 2}}
    assert report["outcome"]["exit_code"] == 1  # the timeouts differ from the baseline's 200


async def test_a_rotation_and_a_truncation_lose_no_line_and_double_none(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    task, log, baseline, candidate = await _start_follow(
        start_entry_point, write_scenario, tmp_path
    )

    def paths() -> list[str]:
        return [seen.raw_path for seen in baseline.requests][: answered(baseline, candidate)]

    append(log, nginx_line("/a/1") + nginx_line("/a/2"))
    await until(lambda: len(paths()) >= 2, 10, "2 pairs")
    log.rename(tmp_path / "access.log.1")
    append(tmp_path / "access.log.1", nginx_line("/a/3"))  # before the writer reopens
    append(log, nginx_line("/b/1") + nginx_line("/b/2") + nginx_line("/b/3"))
    await until(lambda: len(paths()) >= 6, 10, "6 pairs")
    log.write_bytes(nginx_line("/c/1"))  # truncated, shorter than what was read
    await until(lambda: len(paths()) >= 7, 10, "7 pairs")
    report = await _stop(task)
    assert sorted(paths()) == sorted(["/a/1", "/a/2", "/a/3", "/b/1", "/b/2", "/b/3", "/c/1"]), (
        "a line lost or sent twice"
    )
    assert report["totals"]["pairs"] == 7 and report["sources"][0]["lines"] == 7


async def test_a_follow_run_with_sample_n_ends_by_itself_once_n_were_sent(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    task, log, _, _ = await _start_follow(
        start_entry_point, write_scenario, tmp_path, body=FOLLOWED + "  sample: 3\n"
    )
    append(log, b"".join(nginx_line(f"/items/{n}") for n in range(10)))
    report = (await asyncio.wait_for(task, 10)).report
    assert report["totals"]["pairs"] == 3 and report["stop"] is None
    assert report["outcome"]["exit_code"] == 0 and report["interrupted"] is False


HOSTILE = [
    nginx_line("/cr", agent="curl\rX-Injected: 1"),  # CR inside a quoted field
    nginx_line("/lf", agent="curl\nX-Injected: 1"),  # LF: the line breaks in two
    nginx_line("/nul\x00path"),
    nginx_line("/invalid-utf8-XX").replace(b"XX", b"\xff\xfe"),
]


async def test_hostile_lines_in_the_followed_log_are_skipped_and_counted(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    task, log, baseline, candidate = await _start_follow(
        start_entry_point, write_scenario, tmp_path
    )
    append(log, b"".join(HOSTILE))
    append(log, b"\xff\xfe" + b"y" * (2 * MAX_LINE_BYTES))  # invalid UTF-8, 2 MiB, no newline
    append(log, b"\n" + nginx_line("/fine"))
    await until(lambda: answered(baseline, candidate) >= 1, 10, "the pair after the hostile lines")
    report = await _stop(task)
    assert [seen.raw_path for seen in candidate.requests] == ["/fine"]
    [source] = report["sources"]
    # CR, NUL and invalid UTF-8 reach no wire; the LF line and the 2 MiB line do not parse.
    assert source["lines"] == 7 and source["replayed"] == 1
    assert source["skipped"] == {"malformed": 3, "not_sendable": 3}
    assert report["outcome"]["exit_code"] == 0


async def test_a_log_growing_faster_than_the_rate_holds_a_bounded_number_of_requests(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    peaks: list[list[int]] = []

    def slow() -> Any:
        in_flight, peak = [0], [0]
        peaks.append(peak)

        async def handle(request: web.Request) -> web.Response:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            await asyncio.sleep(0.05)
            in_flight[0] -= 1
            return web.Response(text="ok")

        return handle

    baseline = await start_entry_point("127.0.0.1", handler=slow())
    candidate = await start_entry_point("127.0.0.2", handler=slow())
    log = tmp_path / "access.log"
    lines = 20_000
    log.write_bytes(b"".join(nginx_line(f"/items/{n}") for n in range(lines)))
    scenario: Scenario = load_scenario(
        write_scenario(baseline, candidate, FOLLOWED), read_sources=False
    )
    source = scenario.recorded[0]
    # From its start: 20,000 lines arrive at once, far faster than 200 pairs/s.
    followed = FollowedLog(
        source, scenario.base_dir, selection_for(source, scenario.selection), from_start=True
    )
    handoffs: list[Handoff] = []
    collector = RunCollector()
    task = asyncio.ensure_future(
        replay_stream(
            scenario,
            collector,
            followed.feed,
            rate_per_s=200,
            concurrency=3,
            on_handoff=handoffs.append,
            on_unsent=followed.unsent,
        )
    )
    await until(lambda: followed.counts.lines == lines, 20, "every line to be read")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    summary = followed.summary
    assert summary.lines == lines
    # One second's worth may wait (200), and 3 pairs be in flight: no more, however fast.
    assert handoffs[0].capacity == 200 and handoffs[0].peak_held <= 200
    assert max(peak[0] for peak in peaks) <= 3
    sent = summary.replayed
    assert sent < 400  # at most one second's burst and the rate over the reading's time
    assert summary.skipped == {"sampled_out": lines - sent}
    # The pairs in flight when stopped were answered and compared; what waited, never sent.
    assert collector.pairs_done == sent


# --- the command line ------------------------------------------------------------------------


def _differ_on(path: str) -> Any:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(text="ok", status=503 if request.path == path else 200)

    return handle


@pytest.mark.parametrize(
    ("signum", "candidate_differs", "code"),
    [(signal.SIGINT, False, 0), (signal.SIGINT, True, 1), (signal.SIGTERM, False, 0)],
    ids=["ctrl-c-alike", "ctrl-c-differences", "sigterm-alike"],
)
async def test_a_signal_ends_a_follow_run_with_the_report_and_the_verdict_code(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    tmp_path: Path,
    signum: signal.Signals,
    candidate_differs: bool,
    code: int,
) -> None:
    baseline = await start_entry_point("127.0.0.1", handler=_differ_on("/none"))
    candidate = await start_entry_point(
        "127.0.0.2", handler=_differ_on("/items/3" if candidate_differs else "/none")
    )
    log = tmp_path / "access.log"
    log.write_bytes(nginx_line("/before-the-start") * 3)
    scenario = write_scenario(baseline, candidate, FOLLOWED)
    report_path = tmp_path / "report.json"
    process = await CliProcess.start(
        "run", str(scenario), "--follow", "--follow-rate", "500", "--json", str(report_path)
    )
    try:
        await until(lambda: following(process.pid, log), 30, "the CLI to follow the log")
        written = [nginx_line(f"/items/{n}") for n in range(8)]
        written += [nginx_line("/healthz"), nginx_line("/orders", method="POST")]
        append(log, b"".join(written))
        await until(lambda: answered(baseline, candidate) >= 8, 30, "8 pairs answered")
        process.send(signum, group=signum == signal.SIGINT)  # Ctrl-C goes to the group
        exit_code, _, stderr = await process.finish()
    finally:
        process.kill_group()
    assert exit_code == code, stderr
    assert "following access.log from its end" in stderr
    report = json.loads(report_path.read_text())
    assert report["stop"]["cause"] == signum.name and report["interrupted"] is False
    assert report["totals"]["pairs"] == 8
    assert report["totals"]["pairs_with_differences"] == (1 if candidate_differs else 0)
    [source] = report["sources"]
    assert source["lines"] == len(written) and source["replayed"] == 8
    assert source["skipped"] == {"filtered": 1, "unsafe": 1}
    assert "Traceback" not in stderr


async def test_ctrl_c_before_the_first_pair_exits_130(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    entry = await start_entry_point("127.0.0.1")
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    report_path = tmp_path / "report.json"
    process = await CliProcess.start(
        "run",
        str(write_scenario(entry, entry, FOLLOWED)),
        "--follow",
        "-q",
        "--json",
        str(report_path),
    )
    try:
        await until(lambda: following(process.pid, log), 30, "the CLI to follow the log")
        process.send(signal.SIGINT, group=True)
        exit_code, _, stderr = await process.finish()
    finally:
        process.kill_group()
    assert exit_code == 130, stderr
    report = json.loads(report_path.read_text())
    assert report["interrupted"] is True and report["stop"]["before_first_pair"] is True


@pytest.mark.parametrize(
    ("sources", "flags", "expected"),
    [
        ("  - {har: s.har}\n", [], "not har: a HAR file is one JSON document"),
        ("  - {goreplay: s.gor}\n", [], "not goreplay"),
        ("  - {jsonl: '-'}\n", [], "not standard input (-)"),
        ("  - {jsonl: a.jsonl}\n  - {jsonl: b.jsonl}\n", [], "the scenario has 2 sources"),
        ("  - {jsonl: missing.jsonl}\n", [], "cannot follow missing.jsonl: No such file"),
        ("  - {jsonl: a.jsonl}\n", ["--workers", "2"], "--workers cannot apply"),
        ("  - {jsonl: a.jsonl}\n", ["--follow-rate", "0"], "--follow-rate must be more than 0"),
        ("  - {jsonl: a.jsonl}\n", ["--follow-rate", "inf"], "at most 100,000 pairs/s; got inf"),
        ("  - {jsonl: a.jsonl}\n", ["--follow-rate", "nan"], "--follow-rate must be more than 0"),
    ],
    ids=[
        "har",
        "goreplay",
        "stdin",
        "two-sources",
        "missing",
        "workers",
        "zero-rate",
        "infinite-rate",
        "nan-rate",
    ],
)
def test_what_cannot_be_followed_is_refused_with_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sources: str,
    flags: list[str],
    expected: str,
) -> None:
    for name in ("a.jsonl", "b.jsonl", "s.har", "s.gor"):
        (tmp_path / name).write_text("")
    scenario = tmp_path / "follow.yaml"
    scenario.write_text(
        "targets:\n  baseline: {address: 127.0.0.1}\n  candidate: {address: 127.0.0.1}\n"
        "sources:\n" + sources
    )
    assert main(["run", str(scenario), "--follow", *flags]) == 2
    assert expected in capsys.readouterr().err


def test_follow_rate_without_follow_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "plain.yaml"
    scenario.write_text(
        "targets:\n  baseline: {address: 127.0.0.1}\n  candidate: {address: 127.0.0.1}\n"
        "requests:\n  - {name: a, url: 'http://app.example.com/'}\n"
    )
    assert main(["run", str(scenario), "--follow-rate", "5"]) == 2
    assert "--follow-rate applies to --follow only" in capsys.readouterr().err


# --- the rolling summary ---------------------------------------------------------------------


def test_the_summary_line_comes_every_few_seconds_with_pairs_failures_and_lines() -> None:
    stream = io.StringIO()
    line = FollowSummaryLine(stream, every_s=5)
    for tenth in range(121):  # 12 s of progress, ten times a second
        line.update(
            RunProgress(
                tenth,
                None,
                2,
                {"baseline": 0, "candidate": 1},
                tenth / 10,
                tenth * 100,
                (("filtered", tenth), ("sampled_out", tenth * 90)),
            )
        )
    written = stream.getvalue().splitlines()
    assert len(written) == 2
    assert written[1] == (
        "following 10s: 100 pairs, 2 differ, failures baseline 0 candidate 1; "
        "10,000 lines read, 9,100 skipped (100 filtered, 9,000 sampled_out)"
    )


def test_the_summary_of_a_run_without_a_log_leaves_lines_out() -> None:
    counts = RunProgress(3, None, 0, {"baseline": 0, "candidate": 0}, 65.0)
    assert follow_summary(counts) == (
        "following 1m05s: 3 pairs, 0 differ, failures baseline 0 candidate 0"
    )
