"""Render a report (the JSON-ready data of `build_report`) for a terminal with rich.

Reads only the report data, so a saved report renders the same as a live run.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from shadowdiff.render.findings import place, what
from shadowdiff.render.tls_table import tls_table
from shadowdiff.report.calibration import refused_calibration_note
from shadowdiff.report.schema import (
    Report,
    RequestEntry,
    Signature,
    SignatureExample,
    SplitLatency,
    Target,
)
from shadowdiff.report.sender import sender_note
from shadowdiff.report.thresholds import measured_note
from shadowdiff.spec import SIDES, Side
from shadowdiff.stats.latency import compares_from_send

_SEVERITY_STYLE: Final = {
    "error": "bold red",
    "warning": "yellow",
    "info": "dim",
    "accepted": "cyan",
    "noise": "dim",
}
_VALUE_CHARS: Final = 40
_BODY_SUMMARY_CHARS: Final = 240
_SCHEMES: Final[tuple[Literal["http", "https"], ...]] = ("http", "https")


def _outcomes(request: RequestEntry, side: Side) -> Text:
    # A gRPC call's outcome is its grpc-status (or health status): its HTTP status is 200.
    answers = request["grpc"][side] if "grpc" in request else request["status"][side]
    parts = [f"{outcome} ×{count}" for outcome, count in sorted(answers.items())]
    parts += [f"{cls} ×{f['count']}" for cls, f in sorted(request["failures"][side].items())]
    style = "red" if request["failures"][side] else ""
    return Text(", ".join(parts) or "—", style=style)


def _latency(request: RequestEntry) -> str:
    values = []
    for side in SIDES:
        stats = request["latency_ms"][side]
        values.append(f"{stats['p50']:.1f}" if stats.get("count") else "—")
    return " / ".join(values)


def _shorten(value: str | None, limit: int = _VALUE_CHARS) -> Text:
    if value is None:
        return Text("(absent)", style="dim italic")
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return Text(value)


def _differences_cell(request: RequestEntry) -> Text:
    counts: dict[str, int] = {}
    for difference in request["differences"]:
        key = (
            difference["severity"]
            if difference["status"] in ("reported", "expired")
            else difference["status"]
        )
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return Text("—", style="green")
    text = Text()
    for key in ("error", "warning", "info", "accepted", "noise"):
        if key in counts:
            if text:
                text.append(", ")
            text.append(f"{counts[key]} {key}", style=_SEVERITY_STYLE.get(key, "dim"))
    return text


# C0 and C1 control characters (tab and newline aside), DEL: a name, a path or an answer's
# header may hold escape sequences that would retitle, clear or write to the clipboard of the
# terminal the report is printed on. Bidirectional overrides and isolates too: they reorder
# what is shown, so a line can read other than it is. They are shown as escapes instead, and
# so are lone surrogates (a report file may hold `\ud800`), which no terminal encoding holds.
_CONTROL: Final = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def displayable(data: Any) -> Any:
    """`data` with every control character in its strings shown as a `\\xNN` escape. Any
    JSON-ready data: the whole report, or any part of it."""
    if isinstance(data, str):
        return _CONTROL.sub(_escaped, data)
    if isinstance(data, list):
        return [displayable(item) for item in data]
    if isinstance(data, dict):
        # Keys too: a failure class or a status code is a key, and a saved report may hold any.
        return {displayable(key): displayable(value) for key, value in data.items()}
    return data


def render_report(report: Report, *, all_tls_tables: bool = False) -> Group:
    """The whole report: header, per-request table, TLS tables, differences, and the verdict.

    A TLS table is shown for each hostname whose TLS differs, or for every one with
    `all_tls_tables` (as `--tls-only` does); alike hostnames are named in one line otherwise.
    Every string is shown as text, never as rich markup, and without control characters.
    """
    report = displayable(report)
    totals = report["totals"]
    targets = report["targets"]
    schemes = {entry["url"].partition(":")[0] for entry in report["requests"]}
    schemes |= {"https"} if report.get("tls") else set()
    header = Text.assemble(
        ("shadowdiff ", "bold"),
        (report["scenario"]["name"], "bold cyan"),
        f"  {totals['pairs']} pairs in {report['duration_s']:.2f} s   ",
        ("baseline ", "dim"),
        _address(targets["baseline"], schemes),
        ("  candidate ", "dim"),
        _address(targets["candidate"], schemes),
    )
    # A shard's figures are its share of the run only; a merged report says what it joins.
    if shard := report.get("shard"):
        header.append(f"   shard {shard} (its share of the run only)", "yellow")
    if merged := report.get("merged"):
        shards = f": shards {', '.join(merged['shards'])}" if merged["shards"] else ""
        reports = "1 report" if merged["reports"] == 1 else f"{merged['reports']} reports"
        header.append(f"   merged from {reports}{shards}", "dim")

    requests = Table(title="Requests", title_justify="left", expand=False, pad_edge=False)
    requests.add_column("request", overflow="fold", max_width=38)
    requests.add_column("pairs", justify="right")
    requests.add_column("baseline")
    requests.add_column("candidate")
    requests.add_column("p50 ms b / c", justify="right")
    requests.add_column("differences")
    for request in report["requests"]:
        requests.add_row(
            Text(request["name"]),
            str(request["pairs"]),
            _outcomes(request, "baseline"),
            _outcomes(request, "candidate"),
            _latency(request),
            _differences_cell(request),
        )

    parts: list[RenderableType] = [header]
    sources = _sources(report)
    if sources is not None:
        parts += [Text(), sources]
    if report["requests"]:
        parts += [Text(), requests]
    folded = report.get("requests_folded") or {}
    if folded.get("requests"):
        parts.append(
            Text(
                f"{folded['requests']} more requests folded: {folded['pairs']} pairs, "
                f"{folded['pairs_with_differences']} with differences",
                style="dim",
            )
        )
    edge = _edge_table(report)
    if edge is not None:
        parts += [Text(), edge]
    alike_hosts = []
    for entry in report.get("tls") or []:
        if all_tls_tables or entry["differences"]:
            parts += [Text(), tls_table(entry)]
        else:
            alike_hosts.append(entry["host"])
    if alike_hosts:
        parts += [Text(), Text(f"TLS alike on {', '.join(alike_hosts)}", style="green")]
    differences = _differences_table(report)
    if differences is not None:
        parts += [Text(), differences]
    fixes = _likely_fixes(report)
    if fixes is not None:
        parts += [Text(), fixes]
    reached = _coverage(report)
    if reached is not None:
        parts += [Text(), reached]
    set_aside = _set_aside(report)
    if set_aside is not None:
        parts += [Text(), set_aside]
    thresholds = _thresholds(report)
    if thresholds is not None:
        parts += [Text(), thresholds]
    load = _load(report)
    if load is not None:
        parts += [Text(), load]
    retries = _retries(report)
    if retries is not None:
        parts += [Text(), retries]
    parts += [Text(), _verdict(report)]
    return Group(*parts)


# Below this, a shift of edge or backend time per pair is not called either's.
_SHIFT_SHOWN_MS: Final = 1.0


def _p50_pair(split: SplitLatency) -> str:
    values = [f"{split[side]['p50']:.1f}" if split[side].get("count") else "—" for side in SIDES]
    return " / ".join(values)


def _shift(edge: SplitLatency, backend: SplitLatency) -> Text:
    """Where the candidate's extra time is: the larger of the two paired median shifts."""
    edge_ms, backend_ms = edge["difference"].get("p50"), backend["difference"].get("p50")
    if edge_ms is None or backend_ms is None:
        return Text("—", style="dim")
    if max(abs(edge_ms), abs(backend_ms)) < _SHIFT_SHOWN_MS:
        return Text("alike", style="green")
    if abs(edge_ms) >= abs(backend_ms):
        return Text(f"its entry point {edge_ms:+.1f} ms", style="yellow" if edge_ms > 0 else "")
    return Text(f"its backend {backend_ms:+.1f} ms", style="yellow" if backend_ms > 0 else "")


def _edge_table(report: Report) -> Table | None:
    """Edge time (total minus what the backend says it took) and backend time, per request
    whose answers said their backend time: the candidate's extra time, placed."""
    rows = [r for r in report["requests"] if "edge" in r["latency_ms"]]
    if not rows:
        return None
    table = Table(
        title="Edge and backend time (answers that said their backend time)",
        title_justify="left",
        pad_edge=False,
    )
    table.add_column("request", overflow="fold", max_width=30)
    table.add_column("answers b / c", justify="right")
    table.add_column("edge p50 ms b / c", justify="right")
    table.add_column("backend p50 ms b / c", justify="right")
    table.add_column("candidate per pair (p50)")
    for request in rows:
        edge, backend = request["latency_ms"]["edge"], request["latency_ms"]["backend"]
        table.add_row(
            Text(request["name"]),
            " / ".join(str(edge[side]["count"]) for side in SIDES),
            _p50_pair(edge),
            _p50_pair(backend),
            _shift(edge, backend),
        )
    return table


def _sources(report: Report) -> Text | None:
    """One line per recorded source: what it held and why any of it was not replayed."""
    sources = report.get("sources") or []
    if not sources:
        return None
    text = Text("Sources\n", style="bold")
    for source in sources:
        skipped = ", ".join(
            f"{count} {reason.replace('_', ' ')}" for reason, count in source["skipped"].items()
        )
        text.append(f"{source['name']}: {source['lines']} read, {source['replayed']} replayed")
        text.append(f" ({source['templates_total']} route templates)")
        if skipped:
            text.append(f"; skipped {skipped}", style="dim")
        text.append("\n")
        for problem in source["problems"]:
            text.append(f"  {problem}\n", style="yellow")
    text.rstrip()
    return text


def _address(target: Target, schemes: set[str]) -> str:
    """The target's address with the ports of the schemes the run used."""
    ports = ", ".join(
        f"{scheme} {target['ports'][scheme]}" for scheme in _SCHEMES if scheme in schemes
    )
    return f"{target['address']} ({ports})" if ports else target["address"]


def _where(line: Signature) -> str:
    requests = line["requests"]
    shown = place(line)
    if len(requests) > 1:
        shown += f" ({len(requests)} requests)"
    elif requests and requests[0] != shown:
        shown = f"{requests[0]}\n{shown}"
    return shown


def _differences_table(report: Report) -> Table | None:
    """One row per reported signature: where, what differs with an example, how often."""
    # Info-level findings are listed below the table, one line each: they inform, not alarm.
    lines = [
        line
        for line in report["signatures"]
        if line["status"] == "expired"
        or (line["status"] == "reported" and line["severity"] != "info")
    ]
    if not lines:
        return None
    table = Table(title="Differences", title_justify="left", pad_edge=False)
    table.add_column("severity")
    table.add_column("where", overflow="fold", max_width=30)
    table.add_column("difference (example: baseline → candidate)", overflow="fold")
    table.add_column("pairs", justify="right")
    for line in lines:
        example: SignatureExample | None = line["examples"][0] if line["examples"] else None
        detail = Text(what(line), style="bold")
        detail.append("\n")
        # A body's value is its size and digest with what the comparison could not do (JSON
        # past body_capture, a coding it could not decode): cut at 40, that note was lost.
        limit = _BODY_SUMMARY_CHARS if line["kind"] == "body" else _VALUE_CHARS
        detail.append_text(_shorten(example["baseline"] if example else None, limit))
        detail.append(" → ", style="dim")
        detail.append_text(_shorten(example["candidate"] if example else None, limit))
        if example and (trace_id := example.get("trace_id")):
            # The example pair's W3C trace id: both sides' requests carried it, so the APM
            # shows what each data plane did with this very request.
            detail.append(f"\ntrace {trace_id}", style="dim")
        if example and (diff := example.get("diff")):
            for diff_line in diff.splitlines():
                style = (
                    "red"
                    if diff_line.startswith("-")
                    else "green"
                    if diff_line.startswith("+")
                    else "dim"
                )
                detail.append("\n" + diff_line, style=style)
        accepted = line["accepted"]
        # An expired line always carries the rule that expired (signatures._line).
        if line["status"] == "expired" and accepted is not None:
            detail.append(
                f"\nacceptance expired {accepted['until']}: {accepted['reason']}", style="red"
            )
        severity = Text(line["severity"], style=_SEVERITY_STYLE[line["severity"]])
        table.add_row(severity, Text(_where(line)), detail, f"{line['count']}/{line['pairs']}")
    return table


_UNCOVERED_SHOWN = 10


def _coverage(report: Report) -> Text | None:
    """Manifest rules the requests reached, and the first of those they did not."""
    entry = report.get("coverage")
    if entry is None:
        return None
    text = Text("Coverage: ", style="bold")
    counts = [
        (label, count)
        for label, count in (
            ("Ingress rules", entry["ingress"]),
            ("route rules", entry["routes"]),  # HTTPRoute and GRPCRoute
        )
        if count is not None
    ]
    text.append(", ".join(f"{label} {c['covered']}/{c['rules']}" for label, c in counts))
    uncovered = [name for _, count in counts for name in count["uncovered"]]
    for name in uncovered[:_UNCOVERED_SHOWN]:
        text.append("\n  not reached: ", style="yellow")
        text.append(name)
    if len(uncovered) > _UNCOVERED_SHOWN:
        text.append(f"\n  and {len(uncovered) - _UNCOVERED_SHOWN} more (see the JSON report)")
    return text


def _likely_fixes(report: Report) -> Text | None:
    """The hints of the differences in the table, each once with the places it applies to: a
    to-do list. Likely causes, said as such."""
    places: dict[tuple[str, str], list[str]] = {}
    for line in report["signatures"]:
        hint = line.get("hint")
        failing = line["status"] == "expired" or (
            line["status"] == "reported" and line["severity"] != "info"
        )
        if hint is not None and failing:
            places.setdefault((hint["cause"], hint["fix"]), []).append(place(line))
    if not places:
        return None
    text = Text("Likely causes and fixes\n", style="bold")
    for (cause, fix), where in places.items():
        text.append("• ", style="dim")
        text.append(f"{cause} ({', '.join(dict.fromkeys(where))})\n")
        text.append("  fix: ", style="cyan")
        text.append(f"{fix}\n")
    text.rstrip()
    return text


def _set_aside(report: Report) -> Text | None:
    """Info findings, accepted and noisy signatures: one line each, so nothing is hidden."""
    text = Text()
    for line in report["signatures"]:
        if line["status"] == "reported" and line["severity"] == "info":
            # Values are in the TLS tables and the JSON report; here only what and where.
            text.append("info     ", style="dim")
            text.append(f"{what(line)} on {place(line)} ({line['count']}/{line['pairs']})\n")
        elif line["status"] == "accepted" and (accepted := line["accepted"]) is not None:
            # Every accepted line carries its rule (signatures._line).
            until = f" until {accepted['until']}" if accepted["until"] else ""
            text.append("accepted ", style="cyan")
            text.append(f"{what(line)} on {place(line)} ({line['count']}/{line['pairs']}): ")
            text.append(f"{accepted['reason']}{until}\n", style="dim")
        elif line["status"] == "noise":
            text.append("noise    ", style="dim")
            text.append(
                f"{what(line)} on {place(line)}: baseline differs from itself "
                f"in {line['noise_rate']:.0%}, candidate in {line['share']:.0%}\n",
                style="dim",
            )
    for entry in report["requests"]:
        if (note := refused_calibration_note(entry)) is not None:
            text.append("noise    ", style="dim")
            text.append(note + "\n", style="yellow")
    text.rstrip()
    return text if text else None


def _thresholds(report: Report) -> Text | None:
    results = report.get("thresholds") or []
    if not results:
        return None
    text = Text("Thresholds\n", style="bold")
    for result in results:
        mark, style = ("pass", "green") if result["passed"] else ("FAIL", "bold red")
        text.append(f"{mark:<5}", style=style)
        where = f" [{result['request']}]" if result["request"] else ""
        measured = result["measured"]
        if measured is None:
            shown = result["reason"]
        elif result["unit"] == "ms":
            shown = f"{measured:.3f} ms"
        elif "rate" in result["check"]:
            shown = f"{measured:.4%}"
        else:
            shown = f"{measured:.3f}"
        note = measured_note(result)
        text.append(f"{result['check']}{where}: measured {shown}")
        text.append(f" ({note})\n" if note else "\n")
    return text


def _load(report: Report) -> Text | None:
    load = report.get("load")
    if not load or load["model"] == "requests":
        return None
    latency = report["latency"]
    text = Text(f"Load ({load['model']} model", style="bold")
    text.append(f", {load['measured_s']:.1f} s measured after {load['warmup_s']:g} s warm-up)\n")
    rate = f"achieved {load['achieved_rate']:.1f} pairs/s"
    if load["target_rate"]:
        rate += f" of {load['target_rate']:.1f} targeted"
    text.append(rate + "\n", style="" if load["valid"] else "bold red")
    note = sender_note(load)
    if note is not None:
        text.append(note + "\n", style="bold yellow")
    for side in SIDES:
        total = latency[side]["total"]
        if not total.get("count"):
            continue
        line = (
            f"{side:<9} p50 {total['p50']:.2f} ms  p99 {total['p99']:.2f} ms  "
            f"max {total['max']:.2f} ms"
        )
        if latency["corrected"]:
            raw = latency[side]["total_uncorrected"]
            line += f"   (from the actual send: p99 {raw['p99']:.2f} ms)"
        text.append(line + "\n")
    # The ratios are from the actual send when the open model kept enough answers so (a wait
    # for a slot is the same on both sides): said, since the lines above are not.
    served = tuple(latency[side].get("total_uncorrected", {}).get("count", 0) for side in SIDES)
    basis = (
        " from the actual send"
        if latency["corrected"] and compares_from_send((served[0], served[1]))
        else ""
    )
    for q, result in latency["comparison"].items():
        if isinstance(result, dict):
            text.append(
                f"candidate/baseline {q}{basis}: {result['ratio']:.3f} "
                f"(95% {result['low']:.3f}-{result['high']:.3f}, {result['verdict']})\n"
            )
    return text


def _retries(report: Report) -> Text | None:
    """How often a safe request was sent again because an idle connection had been closed."""
    retries = report["totals"].get("retries") or {}
    if not any(retries.values()):
        return None
    counts = ", ".join(f"{side} {retries.get(side, 0)}" for side in SIDES)
    return Text(
        f"retried on a new connection after the server closed an idle one: {counts} "
        "(safe requests only, before any answer)",
        style="dim",
    )


def _verdict(report: Report) -> Text:
    outcome = report["outcome"]
    style = {0: "bold green", 1: "bold red", 3: "bold red", 4: "bold red"}.get(
        outcome["exit_code"], "bold yellow"
    )
    return Text(f"exit {outcome['exit_code']}: {outcome['reason']}", style=style)


def print_report(
    report: Report, console: Console | None = None, *, all_tls_tables: bool = False
) -> None:
    console = console or Console(width=None if _is_terminal() else 100)
    console.print(render_report(report, all_tls_tables=all_tls_tables))


def _is_terminal() -> bool:
    return Console().is_terminal
