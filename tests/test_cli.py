"""The command line, run as a user runs it: a subprocess, its output and its exit code."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from .cli_process import CliProcess, until
from .conftest import unused_port

REQUESTS = "requests:\n  - {name: home, url: 'https://app.example.com/', repeat: 3}\n"


async def shadowdiff(
    *args: str, interrupt_when: Callable[[], bool] | None = None
) -> tuple[int, str, str]:
    """Run the CLI in a subprocess while this test's servers keep serving; with
    `interrupt_when`, send it SIGINT once that condition holds."""
    run = await CliProcess.start(*args)
    if interrupt_when is not None:
        await until(interrupt_when, 30, "the moment to interrupt")
        run.send(signal.SIGINT)
    return await run.finish(timeout_s=30)


async def test_validate_prints_one_located_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "targets:\n"
        "  baseline: {address: 10.0.0.1, ports: {https: 99999}}\n"
        "  candidate: {adress: 10.0.0.2}\n"
        "requests:\n"
        "  - {name: home, method: GTE, url: 'https://app.example.com/'}\n"
    )
    code, stdout, stderr = await shadowdiff("validate", str(path))
    lines = stderr.strip().splitlines()
    assert code == 2 and stdout == ""
    assert len(lines) == 3, stderr
    assert lines[0].startswith(f"error: {path}:2:48: targets.baseline.ports.https:")
    assert lines[1].startswith(f"error: {path}:3:15: targets.candidate.adress: unknown field")
    assert lines[2].startswith(f"error: {path}:5:26: requests[0].method: expected one of GET")
    assert "Traceback" not in stderr


async def test_validate_says_what_each_source_replays_and_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file that is no HAR at all read as "ok, 0 requests": the reason was in a run's
    # report only. The path comes from the environment, which no output shows.
    (tmp_path / "notes.har").write_text("not a HAR file\n")
    (tmp_path / "requests.jsonl").write_text(
        '{"method": "GET", "url": "https://app.example.com/"}\n{"method": "GET", "url": 7}\n'
    )
    monkeypatch.setenv("RECORDINGS", str(tmp_path))
    path = tmp_path / "recorded.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 10.0.0.1}\n  candidate: {address: 10.0.0.2}\n"
        "sources:\n  - har: ${RECORDINGS}/notes.har\n  - jsonl: ${RECORDINGS}/requests.jsonl\n"
    )
    code, stdout, _ = await shadowdiff("validate", str(path))
    assert code == 0
    assert stdout.replace(str(path), "FILE").splitlines() == [
        "FILE: ok, 1 requests, 1 pairs",
        "  ${RECORDINGS}/notes.har: 0 of 1 to replay; skipped: 1 malformed",
        "    ${RECORDINGS}/notes.har: expected a HAR file (JSON with log.entries)",
        "  ${RECORDINGS}/requests.jsonl: 1 of 2 to replay; skipped: 1 malformed",
        "    ${RECORDINGS}/requests.jsonl:2: expected string `method` and `url`",
    ], stdout


async def test_validate_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 10.0.0.1}\n  candidate: {address: 10.0.0.2}\n" + REQUESTS
    )
    code, stdout, _ = await shadowdiff("validate", str(path))
    assert (code, stdout.strip()) == (0, f"{path}: ok, 1 requests, 3 pairs")


async def test_run_alike_targets_exits_0_and_writes_the_report(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    scenario = write_scenario(baseline, candidate, REQUESTS, ca_file)
    report_path = tmp_path / "report.json"
    code, stdout, stderr = await shadowdiff("run", str(scenario), "--json", str(report_path))
    assert code == 0, stdout + stderr
    assert "all 3 pairs alike" in stdout
    report = json.loads(report_path.read_text())
    assert report["schema"] == "shadowdiff.report/1"
    assert report["totals"]["pairs"] == 3 and report["outcome"]["exit_code"] == 0


async def test_run_with_differences_exits_1_and_shows_them(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    baseline = await start_entry_point(
        handler=lambda r: web.Response(
            text="ok", headers={"Strict-Transport-Security": "max-age=31536000"}
        )
    )
    candidate = await start_entry_point("127.0.0.2", handler=lambda r: web.Response(text="ok"))
    code, stdout, _ = await shadowdiff(
        "run", str(write_scenario(baseline, candidate, REQUESTS, ca_file))
    )
    assert code == 1
    assert "strict-transport-security" in stdout and "3/3" in stdout


async def test_run_against_unreachable_candidate_exits_3(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    baseline = await start_entry_point()
    closed = f"address: 127.0.0.2\n    ports: {{https: {unused_port('127.0.0.2')}}}"
    code, stdout, _ = await shadowdiff(
        "run", str(write_scenario(baseline, closed, REQUESTS, ca_file))
    )
    assert code == 3
    assert "candidate failed every request (refused)" in stdout


async def test_ctrl_c_stops_the_run_and_still_writes_the_report(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    entry = await start_entry_point(handler=slow)
    scenario = write_scenario(
        entry,
        entry,
        "defaults: {concurrency: 2}\nrequests:\n  - {name: a, url: 'http://app.example.com/', repeat: 2000}\n",
        ca_file,
    )
    report_path = tmp_path / "report.json"
    code, _, stderr = await shadowdiff(
        "run",
        str(scenario),
        "--json",
        str(report_path),
        "--quiet",
        interrupt_when=lambda: len(entry.requests) >= 20,
    )
    assert code == 130, stderr
    report = json.loads(report_path.read_text())
    assert report["interrupted"] is True
    assert 0 < report["totals"]["pairs"] < 2000
    assert len(report["pairs"]) == report["totals"]["pairs"]
    assert "Traceback" not in stderr


async def test_unreadable_ca_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 127.0.0.1, tls: {ca: ca.pem}}\n  candidate: {address: 127.0.0.1}\n"
        "tls_probe: {probe: false}\n" + REQUESTS
    )
    code, stdout, stderr = await shadowdiff("run", str(path))
    assert code == 2, stdout + stderr
    # Found when the scenario loads, located like any other scenario error.
    assert stderr.startswith(f"error: {path}:2:") and stderr.count("\n") == 1
    assert "targets.baseline.tls.ca: not a usable CA bundle" in stderr
    assert "Traceback" not in stderr


async def test_missing_report_folder_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 10.0.0.1}\n  candidate: {address: 10.0.0.2}\n" + REQUESTS
    )
    code, _, stderr = await shadowdiff("run", str(path), "--json", str(tmp_path / "no" / "r.json"))
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "does not exist" in stderr


async def test_demo_shows_every_planted_difference(tmp_path: Path) -> None:
    report_path = tmp_path / "demo.json"
    code, stdout, stderr = await shadowdiff("demo", "--json", str(report_path))
    assert code == 1, stderr
    findings = {
        (entry["name"], difference["kind"], difference["field"])
        for entry in json.loads(report_path.read_text())["requests"]
        for difference in entry["differences"]
    }
    assert findings == {
        ("plain HTTP goes to HTTPS", "status", "status"),  # 308 -> 302
        ("api v1", "header_missing", "strict-transport-security"),
        ("api v2", "header_missing", "strict-transport-security"),
        ("api v2", "backend", "service"),  # routed to the wrong backend
        ("docs without trailing slash", "status", "status"),  # 301 -> 404
    }
    # Planted in TLS: the candidate's certificate expires in ten days.
    tls = json.loads(report_path.read_text())["tls"]
    assert {entry["host"] for entry in tls} == {"shop.demo.test", "api.demo.test"}
    for entry in tls:
        assert {(d["kind"], d["field"], d["severity"]) for d in entry["differences"]} == {
            ("tls_certificate", "expiry", "warning"),
            ("tls_certificate", "reissued", "info"),
            # With no SNI or an unknown one, each side presents its own certificate.
            ("tls_default_certificate", "no SNI", "info"),
            ("tls_default_certificate", "unknown SNI", "info"),
        }
    for shown in (
        "308",
        "302",
        "strict-transport-security",
        "backend: service",
        "api-v1",
        "404",
        "TLS shop.demo.test",
    ):
        assert shown in stdout


async def test_report_command_renders_a_saved_report(tmp_path: Path) -> None:
    report_path = tmp_path / "demo.json"
    await shadowdiff("demo", "--json", str(report_path))
    code, stdout, _ = await shadowdiff("report", str(report_path))
    assert code == 1 and "backend: service" in stdout
    report_path.write_text('{"schema": "other/9"}')
    code, _, stderr = await shadowdiff("report", str(report_path))
    assert code == 2 and "is not 'shadowdiff.report/1'" in stderr


async def test_schema_is_json_schema() -> None:
    code, stdout, _ = await shadowdiff("schema")
    schema = json.loads(stdout)
    assert code == 0 and schema["title"] == "shadowdiff scenario"
    assert {"targets", "requests", "matrix", "defaults"} <= set(schema["properties"])


@pytest.mark.parametrize("args", [["run"], ["frobnicate"], ["run", "x.yaml", "--concurrency", "0"]])
async def test_bad_command_lines_exit_2(args: list[str]) -> None:
    code, _, stderr = await shadowdiff(*args)
    assert code == 2 and "Traceback" not in stderr


def _hsts_pair_servers() -> tuple[Any, Any]:
    return (
        lambda r: web.Response(
            text="ok", headers={"Strict-Transport-Security": "max-age=31536000", "Server": "nginx"}
        ),
        lambda r: web.Response(text="ok", headers={"Server": "envoy"}),
    )


@pytest.mark.parametrize(
    ("accept", "fail_on", "code", "shown"),
    [
        ("", "error", 1, "header missing: strict-transport-security"),
        (
            "accept:\n  - {field: strict-transport-security, reason: 'HSTS moves to the CDN', until: 2999-01-01}\n",
            "error",
            0,
            "accepted header missing: strict-transport-security",
        ),
        (
            "accept:\n  - {field: strict-transport-security, reason: 'HSTS moves to the CDN', until: 2020-01-01}\n",
            "error",
            1,
            "acceptance expired 2020-01-01",
        ),
        (
            "accept:\n  - {field: strict-transport-security, reason: 'HSTS moves to the CDN'}\n",
            "warning",
            1,
            "header changed: server",
        ),
    ],
    ids=["reported", "accepted", "expired", "fail-on-warning"],
)
async def test_acceptance_and_fail_on_decide_the_exit_code(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    accept: str,
    fail_on: str,
    code: int,
    shown: str,
) -> None:
    baseline_handler, candidate_handler = _hsts_pair_servers()
    baseline = await start_entry_point(handler=baseline_handler)
    candidate = await start_entry_point("127.0.0.2", handler=candidate_handler)
    body = f"compare: {{fail_on: {fail_on}}}\n{accept}{REQUESTS}"
    exit_code, stdout, stderr = await shadowdiff(
        "run", str(write_scenario(baseline, candidate, body, ca_file))
    )
    assert exit_code == code, stdout + stderr
    assert shown in " ".join(stdout.split())


async def test_help_lists_every_exit_code() -> None:
    from shadowdiff.report.verdict import exit_code_table

    code, stdout, _ = await shadowdiff("--help")
    assert code == 0
    help_text = " ".join(stdout.split())
    for exit_code, meaning in exit_code_table():
        assert f"{exit_code} {' '.join(meaning.split())}" in help_text


# Planted bug: the sink raises once five pairs are collected, inside the engine's task group.
FAULT = """
import shadowdiff.run
real_replay = shadowdiff.run.replay

async def faulty_replay(scenario, sink, **options):
    def failing_sink(pair):
        sink(pair)
        if sink.pairs_done >= 5:
            raise ZeroDivisionError("planted after five pairs")
    return await real_replay(scenario, failing_sink, **options)

shadowdiff.run.replay = faulty_replay
"""


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
async def test_unexpected_exception_is_one_line_exit_70_and_the_partial_report(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    tmp_path: Path,
    debug: bool,
) -> None:
    entry = await start_entry_point()
    scenario = write_scenario(
        entry,
        entry,
        "tls_probe: {probe: false}\ndefaults: {concurrency: 1}\n"
        "requests:\n  - {name: a, url: 'http://app.example.com/', repeat: 100}\n",
    )
    report_path = tmp_path / "r.json"
    run = await CliProcess.start(
        "run",
        str(scenario),
        "-q",
        "--json",
        str(report_path),
        *(["--debug"] if debug else []),
        prelude=FAULT,
    )
    code, stdout, stderr = await run.finish()
    assert code == 70, stdout + stderr
    line = "error: internal: ZeroDivisionError: planted after five pairs"
    if debug:
        assert stderr.splitlines()[0] == line
        assert "Traceback" in stderr and "in failing_sink" in stderr  # where the bug is
    else:
        assert stderr.splitlines() == [line]
    report = json.loads(report_path.read_text())
    assert report["outcome"]["exit_code"] == 70 and report["stop"]["cause"] == "internal_error"
    assert report["outcome"]["reason"].startswith("internal error after 5 pairs: ZeroDivision")
    assert report["totals"]["pairs"] == 5  # what completed before the bug
