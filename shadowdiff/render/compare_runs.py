"""Render `compare-runs` for a terminal with rich: both runs named, one row per figure of each
entry point and overall (checkpoint, current, change, each with its interval; the threshold;
the verdict), the notes, and the verdict line. Reads the result data only.
"""

from __future__ import annotations

import math
from typing import Final

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from shadowdiff.render.terminal import displayable
from shadowdiff.report.compare_runs import FIGURE_NAMES, UNITS, ComparedRuns
from shadowdiff.report.run_figures import ReportFigures
from shadowdiff.stats.intervals import answers_needed
from shadowdiff.stats.run_comparison import FEW_ANSWERS, Check, Estimate

_STATUS_STYLE: Final = {
    "worse": "bold red",
    "better": "green",
    "alike": "dim",
    "not judged": "yellow",
}


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "…"
    if unit == "share":
        return f"{value * 100:.2f}%"
    if unit == "ms":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return f"{value:.1f}"


def _estimate(estimate: Estimate, unit: str) -> str:
    if estimate.value is None:
        return "—"
    low, high = (_value(bound, unit).rstrip("%") for bound in (estimate.low, estimate.high))
    return f"{_value(estimate.value, unit)} [{low}, {high}]"


def _points(value: float | None) -> str:
    return "…" if value is None else f"{value * 100:+.2f}"


def _change(check: Check) -> str:
    change = check.change
    if change.value is None:
        return "—"
    if UNITS[check.figure] == "share":
        return f"{_points(change.value)} [{_points(change.low)}, {_points(change.high)}]"
    low = "…" if change.low is None else f"{change.low:.2f}"
    high = "…" if change.high is None else f"{change.high:.2f}"
    return f"×{change.value:.2f} [{low}, {high}]"


def _limit(check: Check) -> str:
    if check.limit is None:
        return "—"
    if UNITS[check.figure] == "share":
        return f"≤ {check.limit * 100:+.2f} pts"
    if check.figure == "rate":
        return f"≥ ×{check.limit:.2f}"
    return f"≤ ×{check.limit:g}"


def _status(check: Check) -> Text:
    if check.limit is None:
        return Text("—", style="dim")  # shown, with no threshold to judge it by
    text = Text(check.status, style=_STATUS_STYLE[check.status])
    if check.status == "not judged":
        text.append("*" if (check.reason or "").startswith(FEW_ANSWERS) else f": {check.reason}")
    return text


def _few_answers(result: ComparedRuns) -> Text | None:
    """One footnote for the percentiles the checkpoint had too few answers to bound."""
    labels = sorted(
        {
            check.figure
            for check in result.comparison.checks
            if check.status == "not judged" and (check.reason or "").startswith(FEW_ANSWERS)
        }
    )
    if not labels:
        return None
    confidence = math.sqrt(result.comparison.check_confidence)
    needs = ", ".join(
        f"a {label} needs {answers_needed(float(label[1:]) / 100, confidence)}" for label in labels
    )
    return Text(
        f"* {FEW_ANSWERS} to bound the percentile from above ({needs} per entry point): "
        "a slowdown there cannot be told from chance",
        style="yellow",
    )


def _run_line(label: str, run: ReportFigures) -> Text:
    text = Text(f"{label:<11}", style="bold")
    text.append(displayable(run.path))
    text.append(f"  started {displayable(run.started_at)}", style="dim")
    return text


def render_comparison(result: ComparedRuns) -> Group:
    """The whole comparison: header, the table, notes and the verdict line."""
    thresholds = result.comparison.thresholds
    parts: list[RenderableType] = [
        Text(f"compare-runs: {displayable(result.checkpoint.scenario_name)}", style="bold"),
        _run_line("checkpoint", result.checkpoint),
        _run_line("current", result.current),
        Text(""),
    ]
    table = Table(
        title=(
            f"intervals at {result.comparison.check_confidence:.2%} each, so that all hold "
            f"together at {thresholds.confidence:.0%}; a slower percentile must also be "
            f"{thresholds.latency_min_difference_ms:g} ms slower; error rates change in "
            "percentage points"
        ),
        title_justify="left",
        title_style="dim",
    )
    for column in ("", "checkpoint", "current", "change", "threshold", "verdict"):
        table.add_column(column, no_wrap=True)
    subject = None
    for check in result.comparison.checks:
        if check.subject != subject:
            subject = check.subject
            table.add_row(Text(subject, style="bold"), end_section=False)
        unit = UNITS[check.figure]
        label = FIGURE_NAMES[check.figure] + (" ms" if unit == "ms" else "")
        table.add_row(
            f"  {label}",
            _estimate(check.checkpoint, unit),
            _estimate(check.current, unit),
            _change(check),
            _limit(check),
            _status(check),
        )
    parts.append(table)
    if (footnote := _few_answers(result)) is not None:
        parts.append(footnote)
    for note in result.notes:
        parts.append(Text(f"note: {displayable(note)}", style="yellow"))
    style = {0: "bold green", 4: "bold red"}.get(int(result.exit_code), "bold yellow")
    parts.append(Text(f"exit {int(result.exit_code)}: {displayable(result.reason)}", style=style))
    return Group(*parts)


def print_comparison(result: ComparedRuns, console: Console | None = None) -> None:
    console = console or Console(width=None if Console().is_terminal else 130)
    console.print(render_comparison(result))
