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

pytestmark = pytest.mark.nginx  # skipped (and named) where nginx cannot be installed

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
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(lab.ca_file))
    pods, cookies = set(), set()
    for _ in range(4):
        with (
            socket.create_connection(
                (lab.baseline.address, lab.baseline.https_port), timeout=5
            ) as raw,
            context.wrap_socket(raw, server_hostname="shop.lab.test") as tls,
        ):
            tls.sendall(b"GET / HTTP/1.1\r\nHost: shop.lab.test\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        pods.add(json.loads(body)["pod"])
        cookies.update(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"set-cookie:")
        )
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


def test_tls_probe_finds_refused_handshake_for_unknown_sni(lab: Lab) -> None:
    """The baseline answers an unknown or missing SNI with ingress-nginx's fake certificate; the
    candidate refuses the handshake (nginx `ssl_reject_handshake on`). Everything else alike."""
    import asyncio
    import datetime

    from shadowdiff.tls import probe_scenario

    scenario = load_scenario(LAB_SCENARIO, environ=lab.environ())
    results = asyncio.run(probe_scenario(scenario, datetime.datetime.now(datetime.UTC)))
    assert sorted(result.host for result in results) == [
        "api.lab.test",
        "legacy.lab.test",
        "shop.lab.test",
    ]
    for result in results:
        assert {(d.kind, d.field, d.severity) for d in result.differences} == {
            ("tls_default_certificate", "no SNI", "warning"),
            ("tls_default_certificate", "unknown SNI", "warning"),
        }
        assert result.baseline.unknown_sni is not None
        assert (result.baseline.unknown_sni.subject or "").startswith(
            "CN=Kubernetes Ingress Controller Fake Certificate"
        )
        assert (
            result.candidate.unknown_sni is not None and not result.candidate.unknown_sni.accepted
        )
        assert result.baseline.verified and result.candidate.verified


def test_clean_routes_stay_clean_run_after_run(lab: Lab) -> None:
    """Replicas named any way, split list headers and a candidate that closes idle connections
    after a second: nothing reported on a route configured alike, of any kind or severity
    (latency included), in three runs in a row."""
    import asyncio
    import dataclasses

    scenario = load_scenario(LAB_SCENARIO, environ=lab.environ())
    alike = tuple(spec for spec in scenario.requests if spec.name.startswith("alike:"))
    scenario = dataclasses.replace(scenario, requests=alike)
    for run in range(3):
        collector = RunCollector()
        asyncio.run(replay(scenario, collector, seed=run))
        report = build_report(scenario, collector, started_at="t", duration_s=1.0)
        found = [
            (line["requests"], line["kind"], line["field"], line["severity"])
            for line in report["signatures"]
            if line["status"] in ("reported", "expired")
        ]
        assert found == [], f"run {run + 1}: {found}"
        assert report["totals"]["failures"]["candidate"]["total"] == 0
