"""Live metrics read by the real consumers: Debian's Prometheus scrapes a load run
(`--workers 2`) and the test reads the pair counter and a latency histogram back through
Prometheus's HTTP API; a CI-style run pushes to Debian's Pushgateway
and what it holds equals the report. Both are started here with their own configuration and
a bounded lifetime (tests/prometheus.py); `./dev test` installs them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from .cli_process import CliProcess
from .prometheus import free_port, get, run_prometheus, run_pushgateway
from .test_metrics import read_serving_url


def answering(service: str) -> Callable[[web.Request], Any]:
    """An echo that names the service behind each path; the candidate's /v2 reaches v1."""

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(0.002)  # a backend's few milliseconds
        if request.path == "/v2/items":
            return web.json_response({"service": service})
        return web.json_response({"service": "v1", "path": request.path})

    return handle


def load_scenario_text() -> str:
    """Six seconds of open-model load, with one planted regression (/v2 reaches v1 on the
    candidate)."""
    return (
        "compare: {noise: {share: 0}}\n"
        "tls_probe: {probe: false}\n"
        "load: {model: open, arrivals: constant, rate: 40, duration_s: 6}\n"
        "requests:\n"
        "  - {name: shop home, url: 'http://shop.example.com/'}\n"
        "  - {name: api v1, url: 'http://api.example.com/v1/items'}\n"
        "  - {name: api v2, url: 'http://api.example.com/v2/items'}\n"
    )


async def test_prometheus_scrapes_a_load_run_and_reads_back_pairs_and_latency(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    baseline = await start_entry_point("127.0.0.1", handler=answering("v2"))
    candidate = await start_entry_point("127.0.0.2", handler=answering("v1"))
    scenario = write_scenario(baseline, candidate, load_scenario_text())
    report_path = tmp_path / "report.json"
    with run_prometheus(tmp_path / "prometheus") as prometheus:
        port = free_port()
        await asyncio.to_thread(prometheus.scrape_before_it_listens, f"127.0.0.1:{port}")
        process = await CliProcess.start(
            "run",
            str(scenario),
            "--workers",
            "2",
            "--metrics-port",
            str(port),
            "--json",
            str(report_path),
        )
        await read_serving_url(process)

        async def scraped() -> list[list[Any]]:
            # Off the event loop: it serves the entry points meanwhile.
            found = await asyncio.to_thread(prometheus.query, "shadowdiff_pairs_total[1m]")
            return found[0]["values"] if found else []

        # Three scrapes while the run goes on (it lasts six seconds, scrapes are 1 s apart).
        samples: list[list[Any]] = []
        while len(samples) < 3 and process.process.returncode is None:
            await asyncio.sleep(0.2)
            samples = await scraped()
        code, stdout, stderr = await process.finish()
        assert code == 1, stdout + stderr  # the planted /v2 regression
        report = json.loads(report_path.read_text())
        samples = await scraped()
        assert len(samples) >= 3, (samples, prometheus.targets(), stderr)
        # The counter grew from scrape to scrape, and never past what the report counts.
        counts = [float(v) for _, v in samples]
        assert counts == sorted(counts) and counts[-1] > counts[0] >= 0, counts
        assert counts[-1] <= report["totals"]["pairs"]
        # The latency histogram as Prometheus holds it at the last scrape: cumulative buckets
        # ending in +Inf, which equals the count, which equals the answered requests.
        at_s = float(samples[-1][0])
        for side in ("baseline", "candidate"):
            buckets = {
                entry["metric"]["le"]: float(entry["value"][1])
                for entry in prometheus.query(
                    f'shadowdiff_request_duration_seconds_bucket{{side="{side}"}}', at_s
                )
            }
            assert len(buckets) == 16 and "+Inf" in buckets, buckets
            ordered = [buckets[le] for le in sorted(buckets, key=float)]
            assert ordered == sorted(ordered) and ordered[-1] > 0
            (count,) = prometheus.query(
                f'shadowdiff_request_duration_seconds_count{{side="{side}"}}', at_s
            )
            answered = prometheus.query(
                f'sum(shadowdiff_requests_total{{side="{side}", failure_class="none"}})', at_s
            )
            assert float(count["value"][1]) == buckets["+Inf"] == float(answered[0]["value"][1])
        # In seconds: answers that take milliseconds, not thousands of seconds.
        (median,) = prometheus.query(
            "histogram_quantile(0.5, sum by (le) "
            '(shadowdiff_request_duration_seconds_bucket{side="candidate"}))',
            at_s,
        )
        assert 0.001 < float(median["value"][1]) < 1.0, median
        (planted,) = prometheus.query(
            'shadowdiff_differences_total{kind="json_field", severity="error", ruling="reported"}',
            at_s,
        )
        assert float(planted["value"][1]) > 0
        # While the schedule ran (the last scrape may come after it ended: 0 then).
        during_s = float(samples[len(samples) // 2][0])
        (target,) = prometheus.query("shadowdiff_load_current_target_pairs_per_second", during_s)
        assert target["metric"]["model"] == "open" and float(target["value"][1]) == 40


async def test_a_ci_run_pushes_to_the_pushgateway_what_the_report_says(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point(
        "127.0.0.2",
        handler=lambda r: web.json_response(
            {"path": r.path}, status=404 if r.path == "/gone" else 200
        ),
    )
    scenario = write_scenario(
        baseline,
        candidate,
        "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"
        "load: {model: closed, concurrency: 4, duration_s: 1}\n"
        "requests:\n  - {name: home, url: 'http://app.example.com/'}\n"
        "  - {name: gone, url: 'http://app.example.com/gone'}\n",
    )
    report_path = tmp_path / "report.json"
    with run_pushgateway(tmp_path) as gateway:
        process = await CliProcess.start(
            "run",
            str(scenario),
            "--metrics-push",
            gateway,
            "--metrics-job",
            "cutover ci/stage",  # a space and a slash: the client library encodes the path
            "--json",
            str(report_path),
            "-q",
        )
        code, stdout, stderr = await process.finish()
        held = get(f"{gateway}/metrics").decode()
    assert code == 1, stdout + stderr  # /gone differs
    assert "warning" not in stderr, stderr
    report = json.loads(report_path.read_text())
    pushed = {
        (
            sample.name,
            tuple(sorted((k, v) for k, v in sample.labels.items() if k != "instance")),
        ): sample.value
        for family in text_string_to_metric_families(held)
        for sample in family.samples
        if sample.labels.get("job") == "cutover ci/stage"
    }

    def pushed_value(name: str, **labels: str) -> float:
        key = (name, tuple(sorted({**labels, "job": "cutover ci/stage"}.items())))
        assert key in pushed, (key, sorted(pushed)[:5])
        return float(pushed[key])

    totals = report["totals"]
    assert pushed_value("shadowdiff_pairs_total") == totals["pairs"] > 0
    assert pushed_value("shadowdiff_pairs_differing_total") == totals["pairs_with_differences"]
    gone = next(entry for entry in report["requests"] if entry["name"] == "gone")
    assert (
        pushed_value(
            "shadowdiff_requests_total", side="candidate", status_class="4xx", failure_class="none"
        )
        == gone["pairs"]
    )
    for side in ("baseline", "candidate"):
        assert (
            pushed_value("shadowdiff_request_duration_seconds_count", side=side)
            == pushed_value("shadowdiff_request_duration_seconds_bucket", side=side, le="+Inf")
            == report["latency"][side]["total"]["count"]
        )
    assert pushed_value("shadowdiff_run_exit_code") == 1
    assert pushed_value(
        "shadowdiff_load_achieved_pairs_per_second", model="closed"
    ) == pytest.approx(report["load"]["achieved_rate"], abs=0.01)
