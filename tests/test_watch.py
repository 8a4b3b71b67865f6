"""`shadowdiff watch` as a user runs it during a cutover: a real dnsmasq serves the hostname,
two entry points on 127.0.0.1 and 127.0.0.2 answer, and the test moves the DNS records from
the baseline to the candidate mid-watch. The CLI runs as a process; its JSON lines are read as
they come."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from shadowdiff.report import write_report
from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario

from .conftest import EntryPoint, echo_handler
from .dnsmasq import running_dnsmasq
from .prometheus import free_port, get

HOST = "app.example.com"
BASELINE, CANDIDATE = "127.0.0.1", "127.0.0.2"
ONLY_BASELINE = [(BASELINE, HOST)]
HALF = [(BASELINE, HOST), (CANDIDATE, HOST)]
ONLY_CANDIDATE = [(CANDIDATE, HOST)]


class Watching:
    """`python -m shadowdiff watch ...` with its stdout read line by line as JSON."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.rows: list[dict[str, Any]] = []
        self.stderr = b""
        self._reading = asyncio.ensure_future(self._read())
        self._errors = asyncio.ensure_future(self._read_errors())

    @classmethod
    async def start(cls, *args: str) -> Watching:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shadowdiff",
            "watch",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.rows.append(json.loads(line))

    async def _read_errors(self) -> None:
        assert self.process.stderr is not None
        self.stderr = await self.process.stderr.read()

    async def until(self, condition: Callable[[dict[str, Any]], bool], timeout_s: float) -> int:
        """Wait for a row that meets `condition`; its interval number."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        seen = 0
        while asyncio.get_running_loop().time() < deadline:
            for row in self.rows[seen:]:
                if condition(row):
                    return int(row["interval"])
            seen = len(self.rows)
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"no such row within {timeout_s} s; rows: {self.rows}; stderr: {self.stderr!r}"
        )

    async def finish(self, timeout_s: float = 15) -> int:
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise AssertionError("watch did not end in time") from None
        await self._reading
        await self._errors
        return code


def flaky(every: int, failing: int, state: dict[str, bool]) -> Any:
    """An echo that, once `state["failing"]`, answers 503 to `failing` of every `every`."""
    seen = [0]
    echo = echo_handler("candidate")

    async def handle(request: web.Request) -> web.StreamResponse:
        seen[0] += 1
        if state["failing"] and seen[0] % every < failing:
            return web.Response(status=503, text="upstream connect error")
        answer = echo(request)
        return answer if isinstance(answer, web.StreamResponse) else await answer

    return handle


async def _setup(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
    candidate_handler: Any = None,
) -> tuple[Path, Path, EntryPoint, EntryPoint]:
    baseline = await start_entry_point(BASELINE, name="baseline")
    candidate = await start_entry_point(CANDIDATE, handler=candidate_handler, name="candidate")
    scenario = write_scenario(
        baseline,
        candidate,
        f"""
        rollback_when: {{error_rate_points: 1, intervals: 2}}
        requests:
          - {{name: home, url: "https://{HOST}/", repeat: 60}}
          - {{name: api, url: "https://{HOST}/api/items", repeat: 60}}
          - {{name: order, method: POST, url: "https://{HOST}/orders", allow_unsafe: true}}
        """,
        ca_file,
    )
    # The checkpoint, as the day starts: `shadowdiff run --json` before DNS moves.
    checkpoint = tmp_path / "checkpoint.json"
    write_report(str(checkpoint), await run_scenario(load_scenario(scenario)))
    for entry in (baseline, candidate):
        entry.requests.clear()
        entry.server_names.clear()
    return scenario, checkpoint, baseline, candidate


def _scraped(port: int) -> dict[str, float]:
    """The watch's /metrics, read with the Prometheus client's own parser: series -> value."""
    text = get(f"http://127.0.0.1:{port}/metrics").decode()
    return {
        sample.name
        + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items())) + "}"
           if sample.labels else ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }  # fmt: skip


def _shares(row: dict[str, Any]) -> dict[str, float] | None:
    shares: dict[str, float] | None = row["dns"]["shares"]
    return shares


async def test_watch_shows_the_dns_shift_as_it_happens(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    scenario, checkpoint, baseline, candidate = await _setup(
        start_entry_point, write_scenario, ca_file, tmp_path
    )
    with running_dnsmasq(tmp_path, ONLY_BASELINE) as dns_server:
        nameserver = f"127.0.0.1:{dns_server.port}"
        metrics_port = free_port()
        watching = await Watching.start(
            str(scenario), "--checkpoint", str(checkpoint), "--nameserver", nameserver,
            "--rate", "10", "--interval", "0.5", "--json-lines",
            "--metrics-port", str(metrics_port),
        )  # fmt: skip
        await watching.until(lambda r: _shares(r) == {"baseline": 1, "candidate": 0, "other": 0}, 8)
        before = await asyncio.to_thread(_scraped, metrics_port)
        assert before['shadowdiff_watch_dns_share{target="baseline"}'] == 1
        await asyncio.to_thread(dns_server.move, HALF)
        await watching.until(
            lambda r: _shares(r) == {"baseline": 0.5, "candidate": 0.5, "other": 0}, 5
        )
        await asyncio.to_thread(dns_server.move, ONLY_CANDIDATE)
        last = await watching.until(
            lambda r: (
                _shares(r) == {"baseline": 0, "candidate": 1, "other": 0}
                and r["paths"]["dns"]["reached"]["candidate"] > 0
            ),
            5,
        )
        # The same shift in the metrics a dashboard reads.
        after = await asyncio.to_thread(_scraped, metrics_port)
        watching.process.send_signal(signal.SIGINT)
        code = await watching.finish()
    assert code == 0, watching.stderr
    assert after['shadowdiff_watch_dns_share{target="candidate"}'] == 1
    assert after['shadowdiff_watch_dns_share{target="baseline"}'] == 0
    assert after['shadowdiff_watch_requests_total{path="dns"}'] > 0
    assert after["shadowdiff_watch_rollback"] == 0
    documented = (Path(__file__).parents[1] / "docs" / "metrics.md").read_text()
    for name in {series.split("{")[0] for series in after}:
        assert f"`{name}`" in documented, name
    row = next(r for r in watching.rows if r["interval"] == last)
    assert row["dns"]["ttl_s"] == 1  # dnsmasq's --local-ttl
    assert row["dns"]["hosts"][0] == {
        "host": HOST, "baseline": 0, "candidate": 1, "other": 0, "ttl_s": 1, "error": None,
        "message": "",
    }  # fmt: skip
    # Following DNS, the client's requests reached the candidate, with the production name.
    assert candidate.requests and all(seen.host == HOST for seen in candidate.requests)
    assert set(candidate.server_names) == {HOST}
    # Only the safe requests went out, whatever the scenario allowed.
    assert {seen.method for seen in baseline.requests + candidate.requests} == {"GET"}
    assert all(r["verdict"] in ("ok", "too_few") for r in watching.rows)


async def test_watch_calls_for_a_rollback_once_dns_sends_clients_to_a_failing_candidate(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    state = {"failing": False}
    scenario, checkpoint, _, _ = await _setup(
        start_entry_point, write_scenario, ca_file, tmp_path, flaky(5, 3, state)
    )
    state["failing"] = True  # the regression appears after the checkpoint was taken
    report_path = tmp_path / "watch.json"
    with running_dnsmasq(tmp_path, ONLY_BASELINE) as dns_server:
        watching = await Watching.start(
            str(scenario), "--checkpoint", str(checkpoint),
            "--nameserver", f"127.0.0.1:{dns_server.port}",
            "--rate", "10", "--interval", "1", "--json-lines", "--json", str(report_path),
        )  # fmt: skip
        # Worse already, but DNS does not send anyone there: nothing to roll back yet.
        await watching.until(lambda r: r["verdict"] == "candidate_worse", 8)
        before = await watching.until(lambda r: r["streaks"]["error_rate_points"] >= 2, 5)
        await asyncio.to_thread(dns_server.move, HALF)
        shifted = len(watching.rows)
        code = await watching.finish()
    assert code == 5, watching.stderr
    assert all(r["verdict"] != "rollback" for r in watching.rows[:-1])
    assert before <= shifted
    fired = watching.rows[-1]
    assert fired["verdict"] == "rollback"
    assert fired["interval"] <= shifted + 2  # within two intervals of the shift
    report = json.loads(report_path.read_text())
    assert report["outcome"]["exit_code"] == 5
    assert report["rollback"]["rule"] == "error_rate_points"
    assert report["rollback"]["interval"] == fired["interval"]
    figures = report["rollback"]["figures"]["paths"]["candidate"]
    assert figures["error_rate"] > 0.3 and figures["error_points_low"] > 1
    assert report["rollback"]["figures"]["dns"]["shares"]["candidate"] == 0.5
    assert "ROLLBACK" in watching.stderr.decode()


async def test_watch_runs_until_stopped_and_exits_0_with_a_report(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    scenario, checkpoint, _, _ = await _setup(start_entry_point, write_scenario, ca_file, tmp_path)
    report_path = tmp_path / "watch.json"
    with running_dnsmasq(tmp_path, HALF) as dns_server:
        watching = await Watching.start(
            str(scenario), "--checkpoint", str(checkpoint),
            "--nameserver", f"127.0.0.1:{dns_server.port}",
            "--rate", "10", "--interval", "0.5", "--json-lines", "--json", str(report_path),
        )  # fmt: skip
        await watching.until(lambda r: r["interval"] >= 4, 10)
        watching.process.send_signal(signal.SIGTERM)
        code = await watching.finish()
    assert code == 0, watching.stderr
    report = json.loads(report_path.read_text())
    assert report["schema"] == "shadowdiff.watch/1"
    assert report["stop_cause"] == "SIGTERM" and report["rollback"] is None
    assert report["intervals_total"] >= 4
    assert report["requests"] == ["home", "api"] and report["skipped_unsafe"] == ["order"]
    assert report["checkpoint"]["baseline"]["requests"] == 121  # the POST went once
    assert all(r["verdict"] in ("ok", "too_few") for r in report["intervals"])
