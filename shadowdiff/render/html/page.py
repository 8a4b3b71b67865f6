"""What the HTML page shows, from report data, and the template that shows it.

Every value reaches the page through a `{{ }}` of `report.html.j2`, which Jinja2 escapes
(autoescape: `<`, `>`, `&`, both quotes) after `visible` has shown what a reader could not
see or what would reorder the text: control characters (CR, LF, NUL...), bidirectional
overrides and isolates, line separators, and lone surrogates (which no UTF-8 file can hold)
become `\\xNN` or `\\uNNNN`. A multi-line value (a body diff) is split into lines first.
No value lands in a URL, a script or a style: the page has none.

Plots cost a figure each: the busiest `ROUTE_PLOTS` requests get one, and the page says so.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import jinja2
from markupsafe import Markup

from shadowdiff.render.findings import fails_run, is_tls, place, shown, what
from shadowdiff.render.html import plots
from shadowdiff.render.tls_table import ROWS as TLS_ROWS
from shadowdiff.report.calibration import refused_calibration_note
from shadowdiff.report.schema import Report, RequestEntry, Signature, TlsHost
from shadowdiff.report.sender import sender_note
from shadowdiff.report.thresholds import measured_note
from shadowdiff.spec import SIDES, Side
from shadowdiff.stats.timeline import MAX_INTERVALS

# Per-request CDFs drawn (each one a figure); the rest are in the table only.
ROUTE_PLOTS: Final = 12
# Rows of the paired-difference plot besides the whole run's.
DIFFERENCE_ROWS: Final = 30
# A run without a load model (each request its repeat count) gets a timeline plot from this
# many intervals on: over a second or two, a line through two points says nothing.
TIMELINE_MIN_INTERVALS: Final = 10
# Rows of the signature and request tables; the JSON report has them all.
TABLE_ROWS: Final = 500
_VALUE_CHARS: Final = 300
_REQUEST_NAMES: Final = 3
_UNCOVERED: Final = 50

# C0 and C1 controls and DEL; bidirectional marks, embeddings, overrides and isolates; line
# and paragraph separators; lone surrogates; the two non-characters XML and HTML refuse.
_INVISIBLE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\u2028\u2029\ud800-\udfff\ufffe\uffff]"
)

# As the Markdown summary shows them.
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(value: Any) -> Any:
    """Jinja2's `finalize`: a string with every invisible or reordering character shown as
    an escape; markup made here (the plots' SVG) and anything not a string as they are."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in _NAMED:
            return _NAMED[char]
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _INVISIBLE.sub(escape, value)


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=visible,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html.j2")


def render_page(report: Report) -> str:
    return _template().render(page=_page(report))


def _page(report: Report) -> dict[str, Any]:
    requests = report["requests"]
    numbered = {entry["name"]: number for number, entry in enumerate(requests, 1)}
    return {
        "title": report["scenario"]["name"],
        "header": _header(report),
        "verdict": {
            "exit_code": report["outcome"]["exit_code"],
            "reason": report["outcome"]["reason"],
            "passed": report["outcome"]["exit_code"] == 0,
        },
        "totals": _totals(report),
        "signatures": [
            _signature(line, report["fail_on"]) for line in report["signatures"][:TABLE_ROWS]
        ],
        "signatures_total": len(report["signatures"]),
        "fixes": _likely_fixes(report),
        "requests": [
            _request(number, entry) for number, entry in enumerate(requests[:TABLE_ROWS], 1)
        ],
        "requests_total": len(requests),
        "folded": report["requests_folded"],
        "latency": _drawn(lambda: _latency_plots(report, numbered)),
        "difference": _drawn(lambda: _difference_plot(report, numbered)),
        "timeline": _drawn(lambda: _timeline(report)),
        "tls": [_tls_host(entry, report["signatures"]) for entry in report["tls"]],
        "thresholds": _thresholds(report),
        "load": report["load"],
        "sender_note": None if report["load"] is None else sender_note(report["load"]),
        "calibration_notes": [
            note for entry in requests if (note := refused_calibration_note(entry)) is not None
        ],
        "coverage": _coverage(report),
        "sources": report.get("sources") or [],
        "colours": plots.SIDE_COLOURS,
        "footer": {
            "tool": f"{report['tool']['name']} {report['tool']['version']}",
            "schema": report["schema"],
            "redaction": report["redaction"],
        },
    }


def _header(report: Report) -> dict[str, Any]:
    stop = report.get("stop")
    return {
        "file": report["scenario"]["file"],
        "started_at": report["started_at"],
        "duration_s": f"{report['duration_s']:.2f}",
        "fail_on": report["fail_on"],
        "targets": [
            (side, target["address"], target["ports"]["http"], target["ports"]["https"])
            for side, target in report["targets"].items()
        ],
        "interrupted": report["interrupted"],
        "stop": stop,
    }


def _totals(report: Report) -> list[tuple[str, str]]:
    totals = report["totals"]
    planned = totals["pairs_planned"]
    rows = [
        ("pairs", f"{totals['pairs']}" + (f" of {planned} planned" if planned else "")),
        ("with differences", str(totals["pairs_with_differences"])),
        ("alike", str(totals["pairs_alike"])),
        (
            "signatures",
            ", ".join(f"{n} {s}" for s, n in totals["signatures_by_severity"].items())
            + f" (failing at {report['fail_on']})",
        ),
    ]
    for side in SIDES:
        failures = totals["failures"][side]
        by_class = ", ".join(f"{cls} {n}" for cls, n in sorted(failures["by_class"].items()))
        rows.append(
            (f"{side} failures", f"{failures['total']}" + (f" ({by_class})" if by_class else ""))
        )
    rows.append(("TLS hosts probed", str(totals["tls_hosts"])))
    if totals["unsafe_pairs_sent"]:
        rows.append(("unsafe pairs sent", str(totals["unsafe_pairs_sent"])))
    if any(totals["retries"].values()):
        rows.append(("retries", ", ".join(f"{s} {n}" for s, n in totals["retries"].items())))
    if totals["thresholds_failed"]:
        rows.append(("thresholds failed", str(totals["thresholds_failed"])))
    return rows


def _signature(line: Signature, fail_on: str) -> dict[str, Any]:
    names = line["requests"]
    return {
        "severity": line["severity"],
        "status": line["status"],
        "fails": fails_run(line, fail_on),
        "place": place(line),
        "what": what(line),
        "requests": names[:_REQUEST_NAMES],
        "more_requests": max(len(names) - _REQUEST_NAMES, 0),
        "count": line["count"],
        "pairs": line["pairs"],
        "examples": [
            {
                "request": example["request"],
                "baseline": shown(example["baseline"], _VALUE_CHARS),
                "candidate": shown(example["candidate"], _VALUE_CHARS),
                "diff": example["diff"].splitlines() if example.get("diff") else [],
            }
            for example in line["examples"]
        ],
        "accepted": line["accepted"],
        "hint": line.get("hint"),  # none in a report saved before hints existed
    }


def _likely_fixes(report: Report) -> list[dict[str, Any]]:
    """Each hint of a failing or warning difference once, with the places it applies to."""
    places: dict[tuple[str, str, str], list[str]] = {}
    for line in report["signatures"]:
        hint = line.get("hint")
        listed = line["status"] == "expired" or (
            line["status"] == "reported" and line["severity"] != "info"
        )
        if hint is not None and listed:
            key = (hint["cause"], hint["fix"], hint["source"])
            places.setdefault(key, []).append(place(line))
    return [
        {"cause": cause, "fix": fix, "source": source, "places": list(dict.fromkeys(where))}
        for (cause, fix, source), where in places.items()
    ]


def _outcomes(entry: RequestEntry, side: Side) -> list[str]:
    # A gRPC call's outcome is its grpc-status (or health status): its HTTP status is 200.
    answers = entry["grpc"].get(side, {}) if "grpc" in entry else entry["status"].get(side, {})
    failures = entry["failures"].get(side, {})
    return [f"{outcome} ×{count}" for outcome, count in sorted(answers.items())] + [
        f"{cls} ×{seen['count']}" for cls, seen in sorted(failures.items())
    ]


def _ms(summary: Mapping[str, Any], key: str) -> str:
    value = summary.get(key)
    return f"{value:.1f}" if isinstance(value, int | float) else "—"


def _request(number: int, entry: RequestEntry) -> dict[str, Any]:
    latency = entry["latency_ms"]
    difference: Mapping[str, Any] = latency["difference"]
    interval = difference.get("p50_interval")
    counts: dict[str, int] = {}
    for found in entry["differences"]:
        key = found["severity"] if found["status"] in ("reported", "expired") else found["status"]
        counts[key] = counts.get(key, 0) + 1
    return {
        "number": number,
        "name": entry["name"],
        "method": entry["method"],
        "url": entry["url"],
        "origin": entry["origin"],
        "pairs": entry["pairs"],
        "differing": entry["pairs_with_differences"],
        "outcomes": {side: _outcomes(entry, side) for side in SIDES},
        "failed": {side: bool(entry["failures"].get(side)) for side in SIDES},
        "p50": " / ".join(_ms(latency[side], "p50") for side in SIDES),
        "p99": " / ".join(_ms(latency[side], "p99") for side in SIDES),
        "difference": _ms(difference, "p50")
        + (f" [{interval[0]:.1f}, {interval[1]:.1f}]" if interval else ""),
        "differences": [
            (key, counts[key])
            for key in ("error", "warning", "info", "accepted", "noise")
            if key in counts
        ],
    }


def _drawn(section: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """A plot section, or what kept it from being drawn: a report is trusted once its schema
    is ours, but a file edited by hand may hold a histogram or a timeline that is not one,
    and that should cost the plot, not the page."""
    try:
        drawn = section()
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, OSError) as exc:
        return {"problem": f"not drawn: the report's figures for it do not read ({exc!r})"}
    return None if drawn is None else {"problem": None, **drawn}


def _plot(svg: str | None) -> Markup | None:
    """matplotlib's SVG, made from numbers only (see `plots`), as markup for the page."""
    return Markup(svg) if svg is not None else None


def _latency_plots(report: Report, numbered: Mapping[str, int]) -> dict[str, Any]:
    histograms = report["latency"].get("histograms")
    busiest = sorted(
        (entry for entry in report["requests"] if entry["latency_ms"].get("histograms")),
        key=lambda entry: (
            -sum(int(entry["latency_ms"]["histograms"][side]["count"]) for side in SIDES)
        ),
    )
    routes = []
    for entry in busiest[:ROUTE_PLOTS]:
        number = numbered[entry["name"]]
        routes.append(
            {
                "number": number,
                "name": entry["name"],
                "method": entry["method"],
                "url": entry["url"],
                "svg": _plot(
                    plots.latency_cdf_svg(entry["latency_ms"]["histograms"], f"cdf-{number}")
                ),
            }
        )
    return {
        "overall": _plot(plots.latency_cdf_svg(histograms, "cdf-all")) if histograms else None,
        "routes": routes,
        "routes_total": len(busiest),
        "limit": ROUTE_PLOTS,
    }


def _difference_plot(report: Report, numbered: Mapping[str, int]) -> dict[str, Any]:
    busiest = sorted(
        (e for e in report["requests"] if e["latency_ms"]["difference"].get("count", 0) > 0),
        key=lambda entry: -entry["latency_ms"]["difference"]["count"],
    )
    shown_rows = busiest[:DIFFERENCE_ROWS]
    rows = [("all", report["latency"]["difference"])]
    rows += [(f"#{numbered[e['name']]}", e["latency_ms"]["difference"]) for e in shown_rows]
    return {
        "svg": _plot(plots.difference_svg(rows, "difference")),
        "rows": [
            {"label": f"#{numbered[e['name']]}", "name": e["name"], "pairs": e["pairs"]}
            for e in shown_rows
        ],
        "total": len(busiest),
        "limit": DIFFERENCE_ROWS,
    }


def _timeline(report: Report) -> dict[str, Any] | None:
    timeline = report.get("timeline")  # none in a report saved before it existed
    if timeline is None:
        return None
    if len(timeline["pairs"]) > MAX_INTERVALS:
        raise ValueError(f"more than the {MAX_INTERVALS} intervals shadowdiff writes")
    start_s = timeline["start_s"]
    started = (
        datetime.datetime.fromtimestamp(start_s, datetime.UTC).isoformat(timespec="seconds")
        if start_s is not None
        else None
    )
    load = report["load"]
    paced = load is not None and load["model"] != "requests"
    drawn = paced or len(timeline["pairs"]) >= TIMELINE_MIN_INTERVALS
    return {
        "svg": _plot(plots.timeline_svg(timeline, "timeline")) if drawn else None,
        "interval_s": timeline["interval_s"],
        "intervals": len(timeline["pairs"]),
        "started": started,
    }


def _tls_host(entry: TlsHost, signatures: list[Signature]) -> dict[str, Any]:
    rows = []
    for label, value in TLS_ROWS:
        baseline, candidate = value(entry["baseline"]), value(entry["candidate"])
        rows.append((label, baseline, candidate, baseline != candidate))
    findings = [
        {"severity": line["severity"], "status": line["status"], "what": what(line)}
        for line in signatures
        if is_tls(line) and line["host"] == entry["host"]
    ]
    return {"host": entry["host"], "rows": rows, "findings": findings}


def _thresholds(report: Report) -> list[dict[str, Any]]:
    out = []
    for threshold in report["thresholds"]:
        unit = f" {threshold['unit']}" if threshold["unit"] else ""
        measured = threshold["measured"]
        out.append(
            {
                "check": threshold["check"],
                "request": threshold["request"] or "",
                "measured": f"{measured:g}{unit}" if measured is not None else "—",
                "limit": f"{threshold['limit']:g}{unit}",
                "passed": threshold["passed"],
                "reason": (threshold["reason"] if measured is None else measured_note(threshold))
                or "",
            }
        )
    return out


def _coverage(report: Report) -> list[dict[str, Any]]:
    coverage = report.get("coverage")
    if not coverage:
        return []
    out = []
    for kind, counted in (("ingress", coverage["ingress"]), ("routes", coverage["routes"])):
        if counted is not None:
            uncovered = counted["uncovered"]
            out.append(
                {
                    "kind": kind,
                    "rules": counted["rules"],
                    "covered": counted["covered"],
                    "uncovered": uncovered[:_UNCOVERED],
                    "more": max(len(uncovered) - _UNCOVERED, 0),
                }
            )
    return out
