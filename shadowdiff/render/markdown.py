"""A report as a compact Markdown summary (GitHub-flavoured: tables), for a CI step summary or
a pull-request comment. Reads report data only; writes no file.

Every string that comes from outside (an answer's header or body, a request's name or URL)
is escaped for where it lands: it can neither end a table cell or row (`|`, a line break),
open a code span, link or emphasis, nor become HTML (`<script>`), and control characters show
as escapes. Nothing is wrapped in a code span, since escapes do not work inside one.
"""

from __future__ import annotations

import re
from typing import Final

from shadowdiff.render.findings import fails_run, is_tls, place, shown, verdict_line, what
from shadowdiff.report.calibration import refused_calibration_note
from shadowdiff.report.schema import Report, Signature, TlsHost
from shadowdiff.report.sender import sender_note
from shadowdiff.report.thresholds import measured_note
from shadowdiff.spec import SIDES

# GitHub refuses a step summary over 1 MiB ("$GITHUB_STEP_SUMMARY upload aborted, supports
# content up to a size of 1024k"); the file is one per step, shared with earlier commands.
STEP_SUMMARY_LIMIT_BYTES: Final = 1024 * 1024
TRUNCATED_LINE: Final = (
    "\n_shadowdiff: the summary was cut here to keep the step summary under GitHub's 1 MiB; "
    "the whole report is in `--json` or `--markdown`._\n"
)
# A summary to read at a glance: the first rows, the rest counted (the JSON has them all).
_TABLE_ROWS: Final = 100
_VALUE_CHARS: Final = 80
_REQUEST_NAMES: Final = 3

# The punctuation that opens or closes an inline construct anywhere in a line: code, emphasis,
# strikethrough, links and images (`![` needs `[`), math on GitHub (`$`), a table cell (`|`),
# and the escape itself (CommonMark 2.4: any ASCII punctuation may be backslash-escaped).
# What acts only at the start of a line (`#`, `-`, `>`) cannot: a value never starts one.
# `<`, `>` and `&` become entities, so no tag or entity of the value's own survives.
_MARKDOWN_PUNCTUATION: Final = re.compile(r"([\\`*_\[\]|~$])")
_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_VISIBLE: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 and C1 controls, DEL, line and paragraph separators, and what XML and HTML forbid.
# Controls, line separators and bidirectional marks, embeddings, overrides and isolates (a
# name with U+202E would read backwards on the CI page), as the HTML page shows them.
_CONTROL: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufffe\uffff]"
)


def markdown_text(value: str) -> str:
    """`value` as literal text on one line of Markdown, safe inside a table cell."""

    def visible(match: re.Match[str]) -> str:
        char = match.group()
        if char in _VISIBLE:
            return _VISIBLE[char]
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    value = _CONTROL.sub(visible, value)
    value = _MARKDOWN_PUNCTUATION.sub(r"\\\1", value)
    return re.sub("[&<>]", lambda match: _ENTITIES[match.group()], value)


def render_markdown(report: Report) -> str:
    """The verdict, totals, reported signatures, TLS findings, thresholds and load validity."""
    code = report["outcome"]["exit_code"]
    mark = "✅" if code == 0 else "❌" if code in (1, 4) else "⚠️"
    lines = [
        f"### {mark} shadowdiff {markdown_text(report['scenario']['name'])}: "
        f"{markdown_text(verdict_line(report))}",
        "",
        *_scope(report),
        *_totals(report),
    ]
    sections = (_signatures, _likely_fixes, _tls, _thresholds, _load)
    for section in (render(report) for render in sections):
        if section:
            lines += ["", *section]
    return "\n".join(lines) + "\n"


def _scope(report: Report) -> list[str]:
    """A shard's summary is of its share only; a merged one says what it joins."""
    if shard := report.get("shard"):
        return [
            f"Shard **{markdown_text(shard)}**: this summary covers its share of the run only.",
            "",
        ]
    if merged := report.get("merged"):
        shards = ", ".join(markdown_text(s) for s in merged["shards"])
        joined = f" (shards {shards})" if shards else ""
        return [f"Merged from {merged['reports']} report(s){joined}.", ""]
    return []


def _totals(report: Report) -> list[str]:
    totals = report["totals"]
    planned = totals["pairs_planned"]
    pairs = f"**{totals['pairs']}** pairs" + (
        f" of {planned} planned" if planned is not None and planned != totals["pairs"] else ""
    )
    by_severity = totals["signatures_by_severity"]
    counted = ", ".join(f"{by_severity[s]} {s}" for s in ("error", "warning", "info"))
    lines = [
        f"{pairs} in {report['duration_s']:.2f} s, **{totals['pairs_with_differences']}** "
        f"with differences; signatures: {counted} (failing at {report['fail_on']})  ",
    ]
    failures = "; ".join(
        f"{side} {totals['failures'][side]['total']}"
        + (
            " ("
            + ", ".join(
                f"{markdown_text(cls)} {n}"
                for cls, n in sorted(totals["failures"][side]["by_class"].items())
            )
            + ")"
            if totals["failures"][side]["by_class"]
            else ""
        )
        for side in SIDES
    )
    lines.append(f"transport failures: {failures}; TLS hosts probed: {totals['tls_hosts']}")
    if totals["unsafe_pairs_sent"]:
        lines[-1] += f"; unsafe pairs sent: {totals['unsafe_pairs_sent']}"
    folded = report["requests_folded"]
    if folded["requests"]:
        lines[-1] += "  "
        lines.append(
            f"{folded['requests']} more requests folded out of the report's list: "
            f"{folded['pairs']} pairs, {folded['pairs_with_differences']} with differences"
        )
    if report["interrupted"]:
        stop = report.get("stop")
        cause = f" ({markdown_text(stop['cause'])})" if stop else ""
        lines += ["", f"**Interrupted**{cause}: the report covers the pairs completed."]
    return lines


def _cell(value: str | None) -> str:
    return markdown_text(shown(value, _VALUE_CHARS))


def _signatures(report: Report) -> list[str]:
    """Reported and expired signatures, most severe first (as the report orders them)."""
    lines = [line for line in report["signatures"] if line["status"] in ("reported", "expired")]
    aside = [line for line in report["signatures"] if line["status"] in ("accepted", "noise")]
    refusals = [n for e in report["requests"] if (n := refused_calibration_note(e)) is not None]
    if not lines and not aside and not refusals:
        return []
    out = ["#### Differences", ""]
    if lines:
        out += [
            "| severity | where | difference | requests | pairs | example: baseline → candidate |",
            "|---|---|---|---|---:|---|",
        ]
        for line in lines[:_TABLE_ROWS]:
            out.append(_signature_row(line, report["fail_on"]))
        if len(lines) > _TABLE_ROWS:
            out += ["", f"{len(lines) - _TABLE_ROWS} more signatures in the JSON report."]
    if lines and aside:
        out.append("")  # the list is a block of its own, not a row of the table
    for line in aside:
        where = f"{markdown_text(what(line))} on {markdown_text(place(line))}"
        if line["status"] == "accepted" and (accepted := line["accepted"]) is not None:
            out.append(f"- accepted: {where}: {markdown_text(accepted['reason'])}")
        else:
            out.append(f"- noise: {where}: the baseline differs from itself here")
    if refusals and lines and not aside:
        out.append("")
    out += [f"- {markdown_text(note)}" for note in refusals]
    return out


def _likely_fixes(report: Report) -> list[str]:
    """Each hint of a difference in the table once, with the places it applies to, as the
    terminal report lists them (likely causes, said as such)."""
    places: dict[tuple[str, str], list[str]] = {}
    for line in report["signatures"]:
        hint = line.get("hint")  # none in a report saved before hints existed
        shown_in_table = line["status"] == "expired" or (
            line["status"] == "reported" and line["severity"] != "info"
        )
        if hint is not None and shown_in_table:
            places.setdefault((hint["cause"], hint["fix"]), []).append(place(line))
    out = ["#### Likely causes and fixes", ""] if places else []
    for (cause, fix), where in places.items():
        where_text = ", ".join(markdown_text(p) for p in dict.fromkeys(where))
        out.append(f"- {markdown_text(cause)} ({where_text}); fix: {markdown_text(fix)}")
    return out


def _signature_row(line: Signature, fail_on: str) -> str:
    severity: str = line["severity"]
    if line["status"] == "expired":
        severity += " (acceptance expired)"
    if fails_run(line, fail_on):
        severity = f"**{severity}**"
    names = line["requests"]
    requests = ", ".join(markdown_text(name) for name in names[:_REQUEST_NAMES])
    if len(names) > _REQUEST_NAMES:
        requests += f" and {len(names) - _REQUEST_NAMES} more"
    example = line["examples"][0] if line["examples"] else None
    shown_example = (
        f"{_cell(example['baseline'])} → {_cell(example['candidate'])}" if example else ""
    )
    if example and (trace_id := example.get("trace_id")):
        # The pair's W3C trace id, to find both sides' spans in an APM.
        shown_example += f" (trace {markdown_text(trace_id)})"
    cells = [
        severity,
        markdown_text(place(line)),
        markdown_text(what(line)),
        requests,
        f"{line['count']}/{line['pairs']}",
        shown_example,
    ]
    return "| " + " | ".join(cells) + " |"


def _tls(report: Report) -> list[str]:
    if not report["tls"]:
        return []
    out = [
        "#### TLS",
        "",
        "| host | baseline | candidate | findings |",
        "|---|---|---|---|",
    ]
    lines = [line for line in report["signatures"] if is_tls(line)]
    for entry in report["tls"]:
        found = [line for line in lines if line["host"] == entry["host"]]
        counts: dict[str, int] = {}
        for line in found:
            key = line["severity"] if line["status"] in ("reported", "expired") else line["status"]
            counts[key] = counts.get(key, 0) + 1
        findings = ", ".join(f"{n} {key}" for key, n in counts.items()) or "alike"
        out.append(
            f"| {markdown_text(entry['host'])} | {_posture(entry, 'baseline')} | "
            f"{_posture(entry, 'candidate')} | {findings} |"
        )
    return out


def _posture(entry: TlsHost, side: str) -> str:
    posture = entry["baseline"] if side == "baseline" else entry["candidate"]
    if posture["failure"]:
        return "handshake failed: " + _cell(posture["failure"])
    parts = [markdown_text(posture["version"] or "?")]
    parts.append("verified" if posture["verified"] else "**not verified**")
    if posture["days_to_expiry"] is not None:
        parts.append(f"expires in {posture['days_to_expiry']} days")
    return ", ".join(parts)


def _thresholds(report: Report) -> list[str]:
    if not report["thresholds"]:
        return []
    out = ["#### Thresholds", "", "| check | request | measured | limit | result |"]
    out.append("|---|---|---:|---:|---|")
    for threshold in report["thresholds"]:
        unit = f" {threshold['unit']}" if threshold["unit"] else ""
        measured = threshold["measured"]
        said = f"{measured:g}{unit}" if measured is not None else _cell(threshold["reason"])
        result = "pass" if threshold["passed"] else "**FAIL**"
        if (note := measured_note(threshold)) is not None:
            result += f" ({_cell(note)})"
        request = markdown_text(threshold["request"] or "")
        out.append(
            f"| {markdown_text(threshold['check'])} | {request} | {said} | "
            f"{threshold['limit']:g}{unit} | {result} |"
        )
    return out


def _load(report: Report) -> list[str]:
    load = report["load"]
    if load is None or load["model"] == "requests":
        return []
    rate = f"achieved {load['achieved_rate']:.1f} pairs/s"
    if load["target_rate"]:
        rate += f" of {load['target_rate']:.1f} targeted"
    if load["valid"]:
        said = f"#### Load\n\n{load['model']} model, {rate}: valid"
        note = sender_note(load)
        # A held rate with a limited sender: its latencies include the sender's own delay.
        return [said + (f"\n\n**{markdown_text(note)}**" if note else "")]
    reason = markdown_text(load["reason"] or "target rate not held")
    return [f"#### Load\n\n{load['model']} model, {rate}: **not valid**: {reason}"]


def fit_step_summary(markdown: str, room_bytes: int) -> str:
    """`markdown` as it fits in `room_bytes` of UTF-8: whole, or cut at the end of a line with
    `TRUNCATED_LINE` after it; empty when not even that fits."""
    encoded = markdown.encode("utf-8")
    if len(encoded) <= room_bytes:
        return markdown
    room_bytes -= len(TRUNCATED_LINE.encode("utf-8"))
    if room_bytes <= 0:
        return ""
    # Cutting after a newline keeps table rows whole and UTF-8 valid (a newline is one byte,
    # never inside a multi-byte character).
    cut = encoded.rfind(b"\n", 0, room_bytes) + 1
    return encoded[:cut].decode("utf-8") + TRUNCATED_LINE
