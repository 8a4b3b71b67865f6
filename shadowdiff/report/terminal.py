"""Render a report (the JSON-ready data of `build_report`) for a terminal with rich.

Reads only the report data, so a saved report renders the same as a live run.
"""

from __future__ import annotations

from typing import Any, Final

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

_SEVERITY_STYLE: Final = {"error": "bold red", "warning": "yellow", "info": "dim"}
_VALUE_CHARS: Final = 40


def _outcomes(request: dict[str, Any], side: str) -> Text:
    parts = [f"{status} ×{count}" for status, count in sorted(request["status"][side].items())]
    parts += [f"{cls} ×{f['count']}" for cls, f in sorted(request["failures"][side].items())]
    style = "red" if request["failures"][side] else ""
    return Text(", ".join(parts) or "—", style=style)


def _latency(request: dict[str, Any]) -> str:
    values = []
    for side in ("baseline", "candidate"):
        stats = request["latency_ms"][side]
        values.append(f"{stats['p50']:.1f}" if stats else "—")
    return " / ".join(values)


def _shorten(value: str | None) -> Text:
    if value is None:
        return Text("(absent)", style="dim italic")
    if len(value) > _VALUE_CHARS:
        value = value[: _VALUE_CHARS - 1] + "…"
    return Text(value)


def _differences_cell(request: dict[str, Any]) -> Text:
    if not request["differences"]:
        return Text("—", style="green")
    counts: dict[str, int] = {}
    for difference in request["differences"]:
        counts[difference["severity"]] = counts.get(difference["severity"], 0) + 1
    text = Text()
    for severity in ("error", "warning", "info"):
        if severity in counts:
            if text:
                text.append(", ")
            text.append(f"{counts[severity]} {severity}", style=_SEVERITY_STYLE[severity])
    return text


def render_report(report: dict[str, Any]) -> Group:
    """The whole report: header, per-request table, differences, and the verdict."""
    totals = report["totals"]
    targets = report["targets"]
    header = Text.assemble(
        ("shadowdiff ", "bold"),
        (report["scenario"]["name"], "bold cyan"),
        f"  {totals['pairs']} pairs in {report['duration_s']:.2f} s   ",
        ("baseline ", "dim"),
        _address(targets["baseline"]),
        ("  candidate ", "dim"),
        _address(targets["candidate"]),
    )

    requests = Table(title="Requests", title_justify="left", expand=False, pad_edge=False)
    requests.add_column("request", overflow="fold", max_width=38)
    requests.add_column("pairs", justify="right")
    requests.add_column("baseline")
    requests.add_column("candidate")
    requests.add_column("p50 ms b / c", justify="right")
    requests.add_column("differences")
    for request in report["requests"]:
        requests.add_row(
            request["name"],
            str(request["pairs"]),
            _outcomes(request, "baseline"),
            _outcomes(request, "candidate"),
            _latency(request),
            _differences_cell(request),
        )

    parts: list[Any] = [header, Text(), requests]
    differences = _differences_table(report)
    if differences is not None:
        parts += [Text(), differences]
    parts += [Text(), _verdict(report)]
    return Group(*parts)


def _address(target: dict[str, Any]) -> str:
    ports = target["ports"]
    return f"{target['address']} (http {ports['http']}, https {ports['https']})"


def _differences_table(report: dict[str, Any]) -> Table | None:
    """One row per difference signature: what differs, then an example of both values."""
    rows = [
        (request, difference)
        for request in report["requests"]
        for difference in request["differences"]
    ]
    if not rows:
        return None
    table = Table(title="Differences", title_justify="left", pad_edge=False, show_lines=False)
    table.add_column("severity")
    table.add_column("request", overflow="fold", max_width=26)
    table.add_column("difference (example: baseline → candidate)", overflow="fold")
    table.add_column("pairs", justify="right")
    for request, difference in rows:
        example = difference["examples"][0] if difference["examples"] else {}
        detail = Text(_what(difference), style="bold")
        detail.append("\n")
        detail.append_text(_shorten(example.get("baseline")))
        detail.append(" → ", style="dim")
        detail.append_text(_shorten(example.get("candidate")))
        table.add_row(
            Text(difference["severity"], style=_SEVERITY_STYLE[difference["severity"]]),
            request["name"],
            detail,
            f"{difference['count']}/{request['pairs']}",
        )
    return table


def _what(difference: dict[str, Any]) -> str:
    kind = difference["kind"].replace("_", " ")
    return kind if difference["field"] == difference["kind"] else f"{kind}: {difference['field']}"


def _verdict(report: dict[str, Any]) -> Text:
    outcome = report["outcome"]
    style = {0: "bold green", 1: "bold red", 3: "bold red"}.get(outcome["exit_code"], "bold yellow")
    return Text(f"exit {outcome['exit_code']}: {outcome['reason']}", style=style)


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=None if _is_terminal() else 100)
    console.print(render_report(report))


def _is_terminal() -> bool:
    return Console().is_terminal
