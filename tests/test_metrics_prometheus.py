"""Live metrics read by the real consumers: Debian's Prometheus scrapes a load run against the
proxy lab (two nginx, `--workers 2`) and the test reads the pair counter and a latency
histogram back through Prometheus's HTTP API; a CI-style run pushes to Debian's Pushgateway
and what it holds equals the report. Both are started here with their own configuration and
a bounded lifetime (tests/prometheus.py); `./dev test` installs them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from .cli_process import CliProcess, until
from .lab import Lab, nginx_binary, run_lab
from .prometheus import get, run_prometheus, run_pushgateway
from .test_metrics import read_serving_url


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if nginx_binary() is None:
        if os.environ.get("SHADOWDIFF_REQUIRE_SYSTEM_PACKAGES") == "1":
            pytest.fail("nginx is missing in CI: ./dev test should have installed it")
        pytest.skip("nginx is not installed (./dev test installs it)")
    with run_lab(tmp_path_factory.mktemp("lab")) as running:
        yield running


def lab_load_scenario(lab: Lab, folder: Path) -> Path:
    """Six seconds of open-model load on the lab: alike routes, and one planted regression
    (/v2 reaches the v1 service on the candidate)."""
    path = folder / "load.yaml"
    path.write_text(
        "targets:\n"
        f"  baseline: {{address: {lab.baseline.address}, ports: {{http: {lab.baseline.http_port}, "
        f"https: {lab.baseline.https_port}}}, tls: {{ca: '{lab.ca_file}'}}}}\n"
        f"  candidate: {{address: {lab.candidate.address}, ports: {{http: "
        f"{lab.candidate.http_port}, https: {lab.candidate.https_port}}}, "
        f"tls: {{ca: '{lab.ca_file}'}}}}\n"
        "tls_probe: {probe: false}\n"
        "load: {model: open, arrivals: constant, rate: 40, duration_s: 6}\n"
        "requests:\n"
        "  - {name: shop home, url: 'https://shop.lab.test/'}\n"
        "  - {name: api v1, url: 'https://api.lab.test/v1/items'}\n"
        "  - {name: api v2, url: 'https://api.lab.test/v2/items'}\n"
    )
    return path


@pytest.mark.nginx
async def test_prometheus_scrapes_a_lab_run_and_reads_back_pairs_and_latency(
    lab: Lab, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    with run_prometheus(tmp_path / "prometheus") as prometheus:
        process = await CliProcess.start(
            "run",
            str(lab_load_scenario(lab, tmp_path)),
            "--workers",
            "2",
            "--metrics-port",
            "0",
            "--json",
            str(report_path),
        )
        url = await read_serving_url(process)
        prometheus.scrape(urlsplit(url).netloc)

        def scraped() -> list[list[Any]]:
            found = prometheus.query("shadowdiff_pairs_total[1m]")
            return found[0]["values"] if found else []

        # Three scrapes while the run goes on (it lasts six seconds, scrapes are 1 s apart).
        await until(
            lambda: len(scraped()) >= 3 or process.process.returncode is not None,
            20,
            "three scrapes",
        )
        code, stdout, stderr = await process.finish()
        assert code == 1, stdout + stderr  # the planted /v2 regression
        report = json.loads(report_path.read_text())
        samples = scraped()
        assert len(samples) >= 3, (samples, prometheus.targets())
        # The counter grew from scrape to scrape, and never past what the report counts.
        counts = [float(v) for _, v in samples]
        assert counts == sorted(counts) and counts[-1] > counts[0] > 0, counts
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
        # In seconds: nginx on loopback answers in milliseconds, not in hundreds of seconds.
        (median,) = prometheus.query(
            "histogram_quantile(0.5, sum by (le) "
            '(shadowdiff_request_duration_seconds_bucket{side="candidate"}))',
            at_s,
        )
        assert 0 < float(median["value"][1]) < 1.0, median
        (planted,) = prometheus.query(
            'shadowdiff_differences_total{kind="backend", severity="error", ruling="reported"}',
            at_s,
        )
        assert float(planted["value"][1]) > 0
        (target,) = prometheus.query("shadowdiff_load_current_target_pairs_per_second", at_s)
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
