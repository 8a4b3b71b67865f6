"""A report as JUnit XML, for the test tab of a CI system (Jenkins, GitLab, GitHub actions
that read JUnit). Reads report data only; writes no file.

Ant/Jenkins names throughout. Three suites: one test case per request (and one for the
requests folded out of `requests[]`), one per TLS hostname, and the run itself (finished or
interrupted, load held, each threshold, the verdict), so that the tab tells the verdict:

- a `<failure>` per signature that fails the run (at or above `fail_on`, or an expired
  acceptance) on the case of each request or hostname it touches, with its example; a case
  can hold several, most severe first (Jenkins' schema allows any number; its page shows the
  first), and `failures` counts elements, as junitparser counts them;
- an `<error>` per side and failure class of a request (refused, reset, timeout...): the
  request could not be compared;
- findings below `fail_on`, accepted and noise lines in the case's `<system-out>`.

ElementTree escapes markup. What XML 1.0 cannot carry at all (control characters other than
tab, LF and CR; lone surrogates; U+FFFE and U+FFFF), which an answer's header or body may
hold, is shown as a `\\xNN` or `\\uNNNN` escape first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from shadowdiff.render.findings import (
    example_for,
    fails_run,
    is_tls,
    place,
    shown,
    verdict_line,
    what,
)
from shadowdiff.report.calibration import refused_calibration_note
from shadowdiff.report.schema import Report, RequestEntry, Signature, TlsHost
from shadowdiff.report.sender import sender_note
from shadowdiff.report.thresholds import measured_note
from shadowdiff.spec import SIDES

# XML 1.0 section 2.2 (Char): everything else a Python string can hold. And bidirectional
# marks, embeddings, overrides and isolates, which XML carries but which would make a name
# read backwards in a CI test tab (shown as the HTML page shows them).
_NOT_XML: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufffe\uffff]"
)
# A message attribute is one line in a CI page; the whole value is in the text body.
_MESSAGE_VALUE_CHARS: Final = 120
# Exit codes that judge the candidate (differences, thresholds); any other non-zero code
# means the run was not carried out as planned, an error rather than a failure.
_JUDGED: Final = frozenset({1, 4})


def xml_safe(text: str) -> str:
    """`text` with every character XML 1.0 cannot carry shown as an escape."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _NOT_XML.sub(escape, text)


@dataclass
class _Result:
    tag: str  # "failure" or "error"
    message: str
    type: str
    text: str


@dataclass
class _Case:
    name: str
    time_s: float = 0.0
    results: list[_Result] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # <system-out>, one line each


def render_junit(report: Report) -> str:
    """The whole report as a JUnit XML document (UTF-8 declared), as text."""
    scenario = report["scenario"]["name"]
    root = ET.Element("testsuites")
    suites = [
        ("requests", _request_cases(report)),
        ("tls", _tls_cases(report)),
        ("run", _run_cases(report)),
    ]
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for key, cases in suites:
        if not cases:
            continue
        counts = _add_suite(root, report, f"{scenario}: {key}", _classname(scenario, key), cases)
        for name in totals:
            totals[name] += counts[name]
    _set(root, name=f"shadowdiff: {scenario}", **totals, skipped=0, time=report["duration_s"])
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _classname(scenario: str, key: str) -> str:
    # Jenkins splits a class name at its dots into package and class: the scenario's name is
    # the package, the suite the class.
    return f"{scenario.replace('.', '_')}.{key}"


def _set(element: ET.Element, **attributes: Any) -> None:
    for name, value in attributes.items():
        if isinstance(value, float):
            value = f"{value:.3f}"
        element.set(name, xml_safe(str(value)))


def _add_suite(
    root: ET.Element, report: Report, name: str, classname: str, cases: list[_Case]
) -> dict[str, int]:
    suite = ET.SubElement(root, "testsuite")
    counts = {
        "tests": len(cases),
        "failures": sum(r.tag == "failure" for case in cases for r in case.results),
        "errors": sum(r.tag == "error" for case in cases for r in case.results),
    }
    _set(
        suite,
        name=name,
        **counts,
        skipped=0,
        time=round(sum(case.time_s for case in cases), 3),
        timestamp=report["started_at"],
    )
    for case in cases:
        element = ET.SubElement(suite, "testcase")
        _set(element, classname=classname, name=case.name, time=case.time_s)
        for result in case.results:
            child = ET.SubElement(element, result.tag)
            _set(child, message=result.message, type=result.type)
            child.text = xml_safe(result.text)
        if case.output:
            ET.SubElement(element, "system-out").text = xml_safe("\n".join(case.output) + "\n")
    return counts


def _request_cases(report: Report) -> list[_Case]:
    listed = {entry["name"] for entry in report["requests"]}
    request_lines = [line for line in report["signatures"] if not is_tls(line)]
    cases = []
    for entry in report["requests"]:
        case = _Case(entry["name"], _busy_s(entry))
        case.results += _transport_errors(entry)
        if (note := refused_calibration_note(entry)) is not None:
            case.output.append(note)
        _add_lines(
            case,
            report,
            (line for line in request_lines if entry["name"] in line["requests"]),
            entry["name"],
        )
        cases.append(case)
    folded = report["requests_folded"]
    # A signature naming a request not in `requests[]` is about the folded ones.
    unlisted = [line for line in request_lines if any(r not in listed for r in line["requests"])]
    if folded["requests"] or unlisted:
        case = _Case(f"{folded['requests']} more requests (folded)")
        case.output.append(
            f"{folded['requests']} requests not listed in the report, {folded['pairs']} pairs, "
            f"{folded['pairs_with_differences']} with differences"
        )
        _add_lines(case, report, unlisted, None)
        cases.append(case)
    return cases


def _busy_s(entry: RequestEntry) -> float:
    """How long the request's answers took on the slower side, in total: the closest a
    request comes to a test's duration (pairs overlap, so no wall time is its own)."""
    latency = entry["latency_ms"]
    totals_ms = [latency[side].get("mean", 0.0) * latency[side]["count"] for side in SIDES]
    return round(max(totals_ms) / 1000, 3)


def _transport_errors(entry: RequestEntry) -> list[_Result]:
    errors = []
    for side in SIDES:
        for failure_class, seen in sorted(entry["failures"][side].items()):
            message = f"{side}: {failure_class} ×{seen['count']} of {entry['pairs']} pairs"
            text = f"{entry['method']} {entry['url']}\n{message}\nfirst seen: {seen['message']}"
            errors.append(_Result("error", message, failure_class, text))
    return errors


def _add_lines(
    case: _Case, report: Report, lines: Iterable[Signature], request: str | None
) -> None:
    for line in lines:
        if fails_run(line, report["fail_on"]):
            case.results.append(_failure(line, request))
        else:
            case.output.append(_aside(line, request))


def _failure(line: Signature, request: str | None) -> _Result:
    example = example_for(line, request)
    values = ""
    text = [
        f"{what(line)} on {place(line)} ({line['severity']}, {line['status']}; "
        f"{line['count']} of {line['pairs']} pairs)",
        f"requests: {', '.join(line['requests'])}",
    ]
    if example is not None:
        values = (
            f": {shown(example['baseline'], _MESSAGE_VALUE_CHARS)} → "
            f"{shown(example['candidate'], _MESSAGE_VALUE_CHARS)}"
        )
        # The body has room for the whole value (the report already caps it).
        for side in SIDES:
            value = example[side]
            text.append(f"{side + ':':<10} {'(absent)' if value is None else value}")
        if example["pair"] >= 0:
            # The pair's W3C trace id, to find both sides' spans in an APM (a report saved
            # before trace ids has none).
            trace = f", trace {trace_id}" if (trace_id := example.get("trace_id")) else ""
            text.append(f"example: pair {example['pair']} ({example['request']}){trace}")
        if diff := example.get("diff"):
            text.append(diff)
    accepted = line["accepted"]
    if line["status"] == "expired" and accepted is not None:
        text.append(f"acceptance expired {accepted['until']}: {accepted['reason']}")
    # A report saved before hints existed has none.
    if (hint := line.get("hint")) is not None:
        text += [f"likely cause: {hint['cause']}", f"fix: {hint['fix']} ({hint['source']})"]
    message = f"{line['severity']}: {what(line)}{values}"
    return _Result("failure", message, line["kind"], "\n".join(text))


def _aside(line: Signature, request: str | None) -> str:
    """A finding that does not fail the run, in one line."""
    where = f"{what(line)} on {place(line)} ({line['count']}/{line['pairs']})"
    if line["status"] == "accepted" and (accepted := line["accepted"]) is not None:
        return f"accepted: {where}: {accepted['reason']}"
    if line["status"] == "noise":
        return f"noise: {where}: the baseline differs from itself here"
    example = example_for(line, request)
    if example is None:
        return f"{line['severity']}: {where}"
    return (
        f"{line['severity']}: {where}: {shown(example['baseline'], _MESSAGE_VALUE_CHARS)} → "
        f"{shown(example['candidate'], _MESSAGE_VALUE_CHARS)}"
    )


def _tls_cases(report: Report) -> list[_Case]:
    tls_lines = [line for line in report["signatures"] if is_tls(line)]
    cases = []
    for entry in report["tls"]:
        case = _Case(entry["host"])
        case.output += _posture_lines(entry)
        _add_lines(
            case, report, (line for line in tls_lines if line["host"] == entry["host"]), None
        )
        cases.append(case)
    return cases


def _posture_lines(entry: TlsHost) -> list[str]:
    lines = []
    for side in SIDES:
        posture = entry[side]
        if posture["failure"]:
            lines.append(f"{side}: handshake failed: {posture['failure']}")
            continue
        expiry = posture["days_to_expiry"]
        lines.append(
            f"{side}: {posture['version'] or '?'}, "
            + ("verified" if posture["verified"] else f"not verified ({posture['verify_error']})")
            + (f", certificate expires in {expiry} days" if expiry is not None else "")
        )
    return lines


def _run_cases(report: Report) -> list[_Case]:
    cases = [_completion(report)]
    load = report["load"]
    if load is not None and load["model"] != "requests":
        case = _Case(f"load held its rate ({load['model']} model)", round(load["elapsed_s"], 3))
        rate = f"achieved {load['achieved_rate']:.1f} pairs/s"
        if load["target_rate"]:
            rate += f" of {load['target_rate']:.1f} targeted"
        if load["valid"]:
            case.output.append(rate)
            note = sender_note(load)
            if note is not None:
                case.output.append(note)
        else:
            reason = load["reason"] or report["totals"]["load_reason"] or "target rate not held"
            case.results.append(_Result("error", reason, "load_invalid", f"{reason}\n{rate}"))
        cases.append(case)
    for threshold in report["thresholds"]:
        where = f" [{threshold['request']}]" if threshold["request"] else ""
        case = _Case(f"threshold {threshold['check']}{where}")
        measured = threshold["measured"]
        if measured is None:
            said = f"not measured: {threshold['reason']}"
        else:
            unit = f" {threshold['unit']}" if threshold["unit"] else ""
            said = f"measured {measured:g}{unit}, limit {threshold['limit']:g}{unit}"
            if (note := measured_note(threshold)) is not None:
                said += f" ({note})"
        if threshold["passed"]:
            case.output.append(said)
        else:
            case.results.append(_Result("failure", said, "threshold", said))
        cases.append(case)
    verdict = _Case("verdict")
    code = report["outcome"]["exit_code"]
    if code:
        tag = "failure" if code in _JUDGED else "error"
        verdict.results.append(
            _Result(tag, verdict_line(report), f"exit {code}", verdict_line(report))
        )
    else:
        verdict.output.append(verdict_line(report))
    cases.append(verdict)
    return cases


def _completion(report: Report) -> _Case:
    """Whether the run ended by itself; an interrupted one covers only the pairs completed."""
    case = _Case("run completed", round(report["duration_s"], 3))
    totals = report["totals"]
    planned = totals["pairs_planned"]
    pairs = f"{totals['pairs']} pairs" + (f" of {planned} planned" if planned is not None else "")
    stop = report.get("stop")
    if not report["interrupted"]:
        case.output.append(pairs)
        return case
    cause = stop["cause"] if stop else "interrupted"
    text = [report["outcome"]["reason"], f"the report covers {pairs}"]
    if stop and stop["before_first_pair"]:
        text.append("stopped before the first pair")
    if stop:
        text += stop["worker_failures"]
    case.results.append(_Result("error", report["outcome"]["reason"], cause, "\n".join(text)))
    return case
