"""The whole path from manifests to proof, on the proxy lab: `shadowdiff plan` writes the
scenario from the Ingresses the baseline serves, the run sends it to both entry points, and
every mistake planted in the translation shows with the hint that fixes it, while every rule of
both manifests is reached (coverage 100%).

No Gateway data plane runs here: tests/lab/translation/baseline.conf is nginx written after
ingress-nginx's template for ingress.yaml, and candidate.conf is nginx behaving as a data plane
configured from httproutes.yaml would, mistakes included. The hints are checked against those
imitations, not against Envoy, Istio or any other implementation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .lab import Lab, lab_for_tests
from .test_cli import shadowdiff

pytestmark = pytest.mark.nginx

HERE = Path(__file__).parent / "lab" / "translation"
INGRESS = HERE / "ingress.yaml"
ROUTES = HERE / "httproutes.yaml"

REDIRECT = ({("status", "status")}, "statusCode: 308")
REWRITE = ({("backend_path", "path")}, "URLRewrite")
HSTS = ("header_missing", "strict-transport-security")
HSTS_FIX = "Strict-Transport-Security"
# Each request the plan writes that a planted mistake reaches: what must be reported, and words
# of the fix its hint must give (shadowdiff/report/hints.py). Every other request: nothing.
PLANTED: dict[str, tuple[set[tuple[str, str]], str]] = {
    "GET http://shop.lab.test/": REDIRECT,
    "GET http://shop.lab.test/docs": REDIRECT,
    "GET http://shop.lab.test/app": REDIRECT,
    "GET http://shop.lab.test/reports/": REDIRECT,
    "GET https://shop.lab.test/app": REWRITE,
    "GET https://shop.lab.test/app/shadowdiff/probe": REWRITE,
    # The case variant of a rewritten regex path: the match now falls through to `/`, and the
    # backend sees the path unrewritten.
    "GET https://shop.lab.test/APP": REWRITE,
    "GET https://shop.lab.test/REPORTS/": ({("backend", "service")}, "longest PathPrefix"),
    "GET https://api.lab.test/v1": ({HSTS}, HSTS_FIX),
    "GET https://api.lab.test/v1/": ({HSTS}, HSTS_FIX),
    "GET https://api.lab.test/v2": ({HSTS, ("backend", "service")}, "longest PathPrefix"),
    "GET https://api.lab.test/v2/": ({HSTS, ("backend", "service")}, "longest PathPrefix"),
    "CORS preflight https://api.lab.test/v1": (
        {HSTS, ("header_changed", "access-control-max-age")},
        "CORS",
    ),
    "CORS preflight https://api.lab.test/v2": (
        {HSTS, ("header_changed", "access-control-max-age")},
        "CORS",
    ),
    "GET https://legacy.lab.test/": ({("backend", "split")}, "weight: 100 - W"),
    "unknown host": ({("status", "status")}, "catch-all"),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_for_tests(tmp_path_factory.mktemp("translation-lab"), HERE) as running:
        yield running


@pytest.fixture(scope="module")
def report(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return asyncio.run(_plan_and_run(lab, tmp_path_factory.mktemp("translation-run")))


async def _plan_and_run(lab: Lab, folder: Path) -> dict[str, Any]:
    code, planned, stderr = await shadowdiff("plan", str(INGRESS))
    assert code == 0, stderr
    scenario = yaml.safe_load(planned)
    # What the user does next: point the targets at the two entry points (here, the lab's own
    # ports and CA) and ask for coverage against both manifests.
    for side, entry in (("baseline", lab.baseline), ("candidate", lab.candidate)):
        scenario["targets"][side] = {
            "address": entry.address,
            "ports": {"http": entry.http_port, "https": entry.https_port},
            "tls": {"ca": str(lab.ca_file)},
        }
    scenario["coverage"] = {"ingress": [str(INGRESS)], "routes": [str(ROUTES)], "min": "100%"}
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    out = folder / "report.json"
    code, printed, stderr = await shadowdiff("run", str(path), "--json", str(out))
    assert code == 1, (printed, stderr)
    document: dict[str, Any] = json.loads(out.read_text())
    document["printed"] = printed
    return document


def test_the_plan_reaches_every_rule_of_both_manifests(report: dict[str, Any]) -> None:
    coverage = report["coverage"]
    assert coverage["ingress"]["uncovered"] == [] and coverage["routes"]["uncovered"] == []
    assert coverage["ingress"]["rules"] == 8 and coverage["routes"]["rules"] == 10
    assert coverage["share"] == 1.0
    assert all(t["passed"] for t in report["thresholds"])


def test_every_planted_mistake_is_reported_with_the_hint_that_fixes_it(
    report: dict[str, Any],
) -> None:
    reported = {
        entry["name"]: {
            (d["kind"], d["field"]) for d in entry["differences"] if d["status"] == "reported"
        }
        for entry in report["requests"]
    }
    assert set(PLANTED) <= set(reported), sorted(reported)
    for name, (expected, fix) in PLANTED.items():
        assert reported[name] == expected, (name, reported[name])
        hints = [s["hint"] for s in report["signatures"] if name in s["requests"]]
        assert hints and all(hint is not None for hint in hints), (name, hints)
        assert any(fix in hint["fix"] for hint in hints), (name, hints)


def test_rules_translated_faithfully_report_nothing(report: dict[str, Any]) -> None:
    clean = {
        entry["name"]: entry["differences"]
        for entry in report["requests"]
        if entry["name"] not in PLANTED
    }
    assert "GET https://shop.lab.test/docs/" in clean and "GET https://shop.lab.test/" in clean
    assert {name: found for name, found in clean.items() if found} == {}
    assert report["totals"]["failures"]["baseline"]["total"] == 0
    assert report["totals"]["failures"]["candidate"]["total"] == 0


def test_the_terminal_report_lists_the_fixes(report: dict[str, Any]) -> None:
    printed = report["printed"]
    assert "Likely causes and fixes" in printed
    assert "backendRefs" in printed and "URLRewrite" in printed
