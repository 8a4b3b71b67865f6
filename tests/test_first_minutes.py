"""What a new user trips over in the first ten minutes (each found by trying it as one)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import unused_port
from .test_cli import shadowdiff

ROOT = Path(__file__).parents[1]


def test_dev_without_arguments_lists_every_command() -> None:
    result = subprocess.run([str(ROOT / "dev")], capture_output=True, text=True, timeout=30)
    commands = re.findall(r"^(\w+)\)$", (ROOT / "dev").read_text(), flags=re.MULTILINE)
    assert result.returncode == 2
    for command in commands:
        if command != "shadowdiff":  # passes its arguments on; shown in the last help line
            assert f"./dev {command}" in result.stdout, command


def test_dev_bench_help_installs_nothing_first() -> None:
    result = subprocess.run(
        [str(ROOT / "dev"), "bench", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("usage:")
    assert "installing" not in result.stderr


async def test_json_dash_writes_the_report_to_stdout(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    baseline = await start_entry_point()
    candidate = await start_entry_point("127.0.0.2")
    path = write_scenario(
        baseline, candidate, "requests:\n  - {name: a, url: 'http://app.example.com/'}\n", ca_file
    )
    code, stdout, stderr = await shadowdiff("run", str(path), "--json", "-")
    assert code == 0
    assert json.loads(stdout)["totals"]["pairs"] == 1
    assert "exit 0" in stderr
    assert not (Path.cwd() / "-").exists()


async def test_a_plain_http_run_shows_no_https_port_and_tls_only_has_nothing_to_check(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    baseline = await start_entry_point()
    candidate = await start_entry_point("127.0.0.2")
    path = write_scenario(
        baseline, candidate, "requests:\n  - {name: a, url: 'http://app.example.com/'}\n", ca_file
    )
    code, stdout, _ = await shadowdiff("run", str(path))
    header = stdout.splitlines()[0] + stdout.splitlines()[1]
    assert code == 0 and f"http {baseline.http_port}" in header and "https" not in header
    code, stdout, stderr = await shadowdiff("run", str(path), "--tls-only")
    assert code == 2 and "no request has an https:// URL" in stderr and stdout == ""


async def test_echo_pod_applies_without_service() -> None:
    port = unused_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shadowdiff",
        "echo",
        "--pod",
        "cart-7d9c5b6f4-x2k4q",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        ready = await asyncio.wait_for(process.stderr.readline(), timeout=20)
        assert b"echo backend" in ready
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["pod"] == "cart-7d9c5b6f4-x2k4q"
    finally:
        process.terminate()
        await process.wait()


async def test_validate_without_the_environment_names_what_a_run_needs(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "targets:\n"
        "  baseline: {address: '${GATEWAY_IP}'}\n"
        "  candidate: {address: '${B:-10.0.0.2}'}\n"
        "defaults: {headers: {Authorization: 'Bearer ${TOKEN}'}}\n"
        "requests:\n  - {name: a, url: 'https://x.example.com/'}\n"
    )
    code, stdout, stderr = await shadowdiff("validate", "--no-env", str(path))
    assert code == 0 and stderr == ""
    assert f"{path}: needs environment variables GATEWAY_IP, TOKEN" in stdout
    code, _, stderr = await shadowdiff("validate", str(path))
    assert code == 2 and stderr.count("is not set") == 2
