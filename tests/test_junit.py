"""The JUnit XML report (`--junit`), read back by junitparser as a CI test tab reads it: the
demo's counts, each case a run can add (interrupted, load, thresholds, transport failures,
folded requests), characters XML 1.0 cannot carry, and a run stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import copy
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from junitparser import Error, Failure, JUnitXml, TestCase

from shadowdiff.render.junit import render_junit, xml_safe

from .conftest import DemoRun
from .test_cli import shadowdiff


def read(report: Any) -> JUnitXml:
    return JUnitXml.fromstring(render_junit(report).encode("utf-8"))


def cases(xml: JUnitXml) -> dict[str, TestCase]:
    return {case.name: case for suite in xml for case in suite}


def results(case: TestCase, kind: type[Failure] | type[Error]) -> list[Any]:
    return [result for result in case.result if isinstance(result, kind)]


def test_demo_junit_counts_as_a_ci_reads_them(demo: DemoRun) -> None:
    xml = JUnitXml.fromstring(demo.junit.encode("utf-8"))
    written = (xml.tests, xml.failures, xml.errors, xml.skipped)
    # 12 requests, 2 TLS hosts, the run's completion and its verdict; 5 error-level signatures
    # over 4 requests (api v2 has two) and the verdict fail; the TLS warnings are below fail_on.
    assert written == (16, 6, 0, 0)
    # junitparser's own count from the cases agrees with what the file says.
    xml.update_statistics()  # type: ignore[no-untyped-call]  # junitparser ships no types for it
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == written
    by_suite = {suite.name: (suite.tests, suite.failures, suite.errors) for suite in xml}
    assert by_suite == {
        "demo: requests": (12, 5, 0),
        "demo: tls": (2, 0, 0),
        "demo: run": (2, 1, 0),
    }
    found = cases(xml)
    failed = {name: [r.type for r in results(c, Failure)] for name, c in found.items()}
    assert {name: kinds for name, kinds in failed.items() if kinds} == {
        "plain HTTP goes to HTTPS": ["status"],
        "api v1": ["header_missing"],
        "api v2": ["backend", "header_missing"],
        "docs without trailing slash": ["status"],
        "verdict": ["exit 1"],
    }
    (status,) = results(found["plain HTTP goes to HTTPS"], Failure)
    assert status.message == "error: status: 308 → 302"
    assert "baseline:  308\ncandidate: 302" in status.text
    # The warning that does not fail the run is on its host's case, as output.
    assert "warning: tls certificate: expiry" in (found["shop.demo.test"].system_out or "")
    assert found["verdict"].result[0].message == f"exit 1: {demo.report['outcome']['reason']}"


def _interrupted(report: dict[str, Any]) -> None:
    report["interrupted"] = True
    report["stop"] = {"cause": "SIGTERM", "before_first_pair": False, "worker_failures": []}
    report["outcome"] = {"exit_code": 143, "reason": "interrupted by SIGTERM after 14 pairs"}


def _load_invalid(report: dict[str, Any]) -> None:
    reason = "achieved 180.0 pairs/s, 10.0% short of 200.0 (tolerance 5.0%)"
    report["load"] |= {"model": "open", "target_rate": 200.0, "valid": False, "reason": reason}
    report["load"] |= {"elapsed_s": 1.0, "achieved_rate": 180.0}
    report["totals"] |= {"load_valid": False, "load_reason": reason}
    report["outcome"] = {"exit_code": 3, "reason": reason}


def _threshold_failed(report: dict[str, Any]) -> None:
    report["thresholds"] = [
        {
            "check": "candidate.p99 < 250ms",
            "request": None,
            "measured": 312.5,
            "limit": 250.0,
            "unit": "ms",
            "passed": False,
            "reason": None,
        },
        {
            "check": "difference_rate < 0.5%",
            "request": "api *",
            "measured": 0.001,
            "limit": 0.005,
            "unit": "",
            "passed": True,
            "reason": None,
        },
    ]


def _refused(report: dict[str, Any]) -> None:
    report["requests"][0]["failures"]["candidate"] = {
        "refused": {"count": 3, "message": "connect: connection refused"}
    }


def _folded(report: dict[str, Any]) -> None:
    report["requests_folded"] = {"requests": 600, "pairs": 600, "pairs_with_differences": 1}
    line = copy.deepcopy(report["signatures"][1])
    line["requests"] = ["recorded GET /orders/{n}"]
    line["examples"][0]["request"] = "recorded GET /orders/{n}"
    report["signatures"].append(line)


def _expired_warning(report: dict[str, Any]) -> None:
    line = next(
        s for s in report["signatures"] if s["host"] == "api.demo.test" and s["route"] == "(TLS)"
    )
    line["status"] = "expired"
    line["accepted"] = {"reason": "renewed next week", "until": "2026-11-30", "expired": True}


def _fail_on_warning(report: dict[str, Any]) -> None:
    report["fail_on"] = "warning"


# (what changes, the case it shows on, its result, the result's type)
VARIANTS: list[tuple[Callable[[dict[str, Any]], None], str, type[Failure] | type[Error], str]] = [
    (_interrupted, "run completed", Error, "SIGTERM"),
    (_interrupted, "verdict", Error, "exit 143"),
    (_load_invalid, "load held its rate (open model)", Error, "load_invalid"),
    (_load_invalid, "verdict", Error, "exit 3"),
    (_threshold_failed, "threshold candidate.p99 < 250ms", Failure, "threshold"),
    (_refused, "shop home", Error, "refused"),
    (_folded, "600 more requests (folded)", Failure, "status"),
    (_expired_warning, "api.demo.test", Failure, "tls_certificate"),
    (_fail_on_warning, "shop.demo.test", Failure, "tls_certificate"),
]


@pytest.mark.parametrize(
    ("change", "name", "kind", "type_"),
    VARIANTS,
    ids=[f"{change.__name__[1:]}-{name}" for change, name, _, _ in VARIANTS],
)
def test_junit_tells_what_failed_in_a_case_of_its_own(
    demo: DemoRun,
    change: Callable[[dict[str, Any]], None],
    name: str,
    kind: type[Failure] | type[Error],
    type_: str,
) -> None:
    report = copy.deepcopy(demo.report)
    change(report)
    xml = read(report)
    found = cases(xml)
    assert name in found, sorted(found)
    assert [r.type for r in results(found[name], kind)] == [type_]
    written = (xml.tests, xml.failures, xml.errors)
    xml.update_statistics()  # type: ignore[no-untyped-call]  # junitparser ships no types for it
    assert (xml.tests, xml.failures, xml.errors) == written


def test_a_passed_threshold_and_a_valid_load_are_passing_cases(demo: DemoRun) -> None:
    report = copy.deepcopy(demo.report)
    _threshold_failed(report)
    report["load"] |= {"model": "closed", "valid": True}
    found = cases(read(report))
    assert found["threshold difference_rate < 0.5% [api *]"].is_passed
    assert found["load held its rate (closed model)"].is_passed


def test_characters_xml_cannot_carry_are_shown_as_escapes(demo: DemoRun) -> None:
    """A server's header may hold NUL, ESC, a lone surrogate (from a lenient decoder) or
    U+FFFF: the document stays well-formed and says what was there."""
    report: Any = copy.deepcopy(demo.report)
    hostile = "a\x00b\x1b[2J\ud800\ufffe</failure><x>&amp;]]>\tend"
    name = report["requests"][2]["name"]  # api v1: it has a failure
    report["requests"][2]["name"] = name + "\x07"
    report["signatures"][3]["requests"] = [name + "\x07"]
    report["signatures"][3]["examples"][0]["request"] = name + "\x07"
    report["signatures"][3]["examples"][0]["candidate"] = hostile
    text = render_junit(report)
    text.encode("utf-8")  # no lone surrogate left to stop the writer
    ET.fromstring(text)  # well-formed
    found = cases(JUnitXml.fromstring(text.encode("utf-8")))
    (failure,) = results(found["api v1\\x07"], Failure)
    assert "candidate: a\\x00b\\x1b[2J\\ud800\\ufffe</failure><x>&amp;]]>\tend" in failure.text
    assert failure.message.endswith("→ a\\x00b\\x1b[2J\\ud800\\ufffe</failure><x>&amp;]]>\tend")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("tab\tLF\nCR\r", "tab\tLF\nCR\r"),
        ("\x00\x08\x0b\x0c\x1f", "\\x00\\x08\\x0b\\x0c\\x1f"),
        ("\udfff\ufffe\uffff", "\\udfff\\ufffe\\uffff"),
        ("é € 😀 \x7f\x85", "é € 😀 \x7f\x85"),
        ("gnp\u202e.exe \u200f", "gnp\\u202e.exe \\u200f"),
    ],
    ids=["allowed-whitespace", "c0-controls", "surrogate-and-nonchars", "allowed-others", "bidi"],
)
def test_xml_safe_escapes_exactly_what_xml_1_0_forbids(text: str, shown: str) -> None:
    assert xml_safe(text) == shown


async def test_an_interrupted_run_still_writes_junit_and_markdown(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C in the middle: both files, and the step summary, tell of the pairs completed."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    entry = await start_entry_point(handler=slow)
    scenario = write_scenario(
        entry,
        entry,
        "defaults: {concurrency: 2}\nrequests:\n  - {name: a, url: 'http://app.example.com/', repeat: 2000}\n",
    )
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit, markdown = tmp_path / "junit.xml", tmp_path / "summary.md"
    code, _, stderr = await shadowdiff(
        "run",
        str(scenario),
        "--quiet",
        "--junit",
        str(junit),
        "--markdown",
        str(markdown),
        interrupt_when=lambda: len(entry.requests) >= 20,
    )
    assert code == 130, stderr
    found = cases(JUnitXml.fromfile(str(junit)))
    (stopped,) = results(found["run completed"], Error)
    assert stopped.type == "SIGINT" and stopped.message.startswith("interrupted by SIGINT after")
    assert [r.type for r in results(found["verdict"], Error)] == ["exit 130"]
    assert "**Interrupted** (SIGINT)" in markdown.read_text(encoding="utf-8")
    assert summary.read_text(encoding="utf-8") == markdown.read_text(encoding="utf-8")
