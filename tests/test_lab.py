"""The proxy lab: real nginx instances, one like ingress-nginx's defaults and one with planted
regressions, in front of `shadowdiff echo` backends with two replicas each (tests/lab)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shadowdiff.engine import replay
from shadowdiff.report import RunCollector, build_report
from shadowdiff.scenario import load_scenario

from .lab import Lab, nginx_binary, run_lab

LAB_SCENARIO = Path(__file__).parent / "lab" / "scenario.yaml"

# Each planted regression (tests/lab/candidate.conf, marked PLANTED), and exactly what must be
# reported for it: kind and field.
PLANTED = {
    "regression: redirect status": {("status", "status")},
    "regression: hsts": {("header_missing", "strict-transport-security")},
    "regression: wrong backend": {("backend", "service")},
    "regression: rewrite lost": {("backend_path", "path")},
    "regression: forwarded host": {("backend_header", "x-forwarded-host")},
    "regression: request id replaced": {("backend_header", "x-request-id")},
    "regression: trailing slash": {("status", "status")},
    "regression: cookie flags": {("cookie", "sid")},
    "regression: body size": {("status", "status")},
    "regression: underscore header": {("backend_header", "x_custom")},
    # /REPORTS falls through to the shop route, which also sets the shop's cookie.
    "regression: regex case": {("backend", "service"), ("cookie", "lab_visit")},
    "regression: cors preflight": {
        ("header_changed", "access-control-allow-origin"),
        ("header_changed", "access-control-max-age"),
    },
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing in CI: ./dev test should have installed it")
        pytest.skip("nginx is not installed (./dev test installs it)")
    with run_lab(tmp_path_factory.mktemp("lab")) as running:
        yield running


@pytest.fixture(scope="module")
def lab_report(lab: Lab) -> dict[str, Any]:
    import asyncio

    scenario = load_scenario(LAB_SCENARIO, environ=lab.environ())
    collector = RunCollector()
    asyncio.run(replay(scenario, collector, seed=7))
    return build_report(scenario, collector, started_at="t", duration_s=1.0)


def reported(report: dict[str, Any], request: str) -> set[tuple[str, str]]:
    (entry,) = [e for e in report["requests"] if e["name"] == request]
    return {(d["kind"], d["field"]) for d in entry["differences"] if d["status"] == "reported"}


def test_lab_runs_at_least_500_pairs_without_transport_failures(lab_report: dict[str, Any]) -> None:
    totals = lab_report["totals"]
    assert totals["pairs"] == totals["pairs_planned"] >= 500
    assert totals["failures"]["baseline"]["total"] == totals["failures"]["candidate"]["total"] == 0


@pytest.mark.parametrize("request_name", sorted(PLANTED))
def test_every_planted_regression_is_reported(
    lab_report: dict[str, Any], request_name: str
) -> None:
    assert reported(lab_report, request_name) == PLANTED[request_name]


def test_routes_configured_alike_report_nothing(lab_report: dict[str, Any]) -> None:
    alike = [e for e in lab_report["requests"] if e["name"].startswith("alike:")]
    assert sum(e["pairs"] for e in alike) >= 400
    noisy = {
        e["name"]: reported(lab_report, e["name"]) for e in alike if reported(lab_report, e["name"])
    }
    assert noisy == {}


def test_random_body_token_is_noise_not_a_difference(lab_report: dict[str, Any]) -> None:
    (token,) = [line for line in lab_report["signatures"] if line["field"] == "$.token"]
    assert token["status"] == "noise" and token["noise_rate"] == 1.0


def test_alike_routes_really_vary_in_what_the_comparison_ignores(lab: Lab) -> None:
    """Guard against a lab that is alike only because nothing varies: replicas answer in turn,
    cookie values and generated request IDs change on every response."""
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(lab.ca_file))
    pods, cookies = set(), set()
    for _ in range(4):
        request = urllib.request.Request(
            f"https://{lab.baseline.address}:{lab.baseline.https_port}/",
            headers={"Host": "shop.lab.test"},
        )
        # SNI is not what this checks; the certificate names the lab hosts, so skip the check.
        context.check_hostname = False
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            pods.add(json.loads(response.read())["pod"])
            cookies.add(response.headers["Set-Cookie"])
    assert len(pods) == 2 and len(cookies) == 4


def test_cli_reports_the_lab_in_100_columns(lab: Lab, tmp_path: Path) -> None:
    import subprocess

    report_path = tmp_path / "lab.json"
    result = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "run", str(LAB_SCENARIO), "--json", str(report_path)],
        env={**os.environ, **lab.environ(), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    report = json.loads(report_path.read_text())
    reported_lines = [line for line in report["signatures"] if line["status"] == "reported"]
    # Each signature once, with its count and an example.
    for line in reported_lines:
        assert result.stdout.count(f"{line['count']}/{line['pairs']}") >= 1
    assert result.stdout.count("header missing: strict-transport-security") == 1
