"""Two saved reports of one scenario compared (`shadowdiff compare-runs`): whether they can be
compared at all, what to say about them, the verdict and its exit code, and the result as
versioned JSON. Pure but for `write_comparison`; the statistics are in
`shadowdiff.stats.run_comparison`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Final

from shadowdiff import __version__
from shadowdiff.errors import UsageError
from shadowdiff.report.files import write_text_file
from shadowdiff.report.run_figures import ReportFigures
from shadowdiff.report.verdict import ExitCode
from shadowdiff.stats.run_comparison import (
    Check,
    Estimate,
    RunComparison,
    RunThresholds,
    compare_runs,
)

COMPARISON_SCHEMA: Final = "shadowdiff.compare-runs/1"
_NAMED_IN_REASON: Final = 3
UNITS: Final = {
    "rate": "answers/s",
    "error_rate": "share",
    "server_error_rate": "share",
    "p50": "ms",
    "p90": "ms",
    "p99": "ms",
}
FIGURE_NAMES: Final = {
    "rate": "answered/s",
    "error_rate": "error rate",
    "server_error_rate": "5xx rate",
    "p50": "p50",
    "p90": "p90",
    "p99": "p99",
}


@dataclass(frozen=True)
class ComparedRuns:
    checkpoint: ReportFigures
    current: ReportFigures
    comparison: RunComparison
    notes: tuple[str, ...]
    exit_code: ExitCode
    reason: str


def check_comparable(checkpoint: ReportFigures, current: ReportFigures) -> None:
    """Refuse (UsageError, one line) two reports whose figures mean different things."""
    if checkpoint.scenario_name != current.scenario_name:
        raise UsageError(
            f"{checkpoint.path} and {current.path} are runs of different scenarios "
            f"({checkpoint.scenario_name!r} and {current.scenario_name!r}): compare two runs "
            "of one scenario"
        )
    if checkpoint.corrected != current.corrected:
        measured = {True: "each pair's intended start (open model)", False: "its send"}
        raise UsageError(
            f"{checkpoint.path} measures latency from {measured[checkpoint.corrected]} and "
            f"{current.path} from {measured[current.corrected]}: compare runs of one load model"
        )


def _notes(checkpoint: ReportFigures, current: ReportFigures) -> list[str]:
    notes = []
    if checkpoint.tool_version != current.tool_version:
        notes.append(
            f"the runs come from shadowdiff {checkpoint.tool_version} and "
            f"{current.tool_version} (same report schema)"
        )
    loads = [(r.load_model, r.target_rate) for r in (checkpoint, current)]
    if loads[0] != loads[1]:
        shown = [
            f"{model or 'no load'}" + (f" at {rate:g}/s" if rate else "") for model, rate in loads
        ]
        notes.append(
            f"the load differs ({shown[0]}, then {shown[1]}): rates and latency under load "
            "are not like for like"
        )
    only_before = len(checkpoint.request_names - current.request_names)
    only_after = len(current.request_names - checkpoint.request_names)
    if only_before or only_after:
        notes.append(
            f"the requests differ ({only_before} only in the checkpoint, {only_after} only in "
            "the current run): the figures mix different requests"
        )
    for label, run in (("checkpoint", checkpoint), ("current run", current)):
        if run.interrupted:
            notes.append(f"the {label} was interrupted: its figures cover the pairs completed")
        if run.requests_folded:
            notes.append(
                f"the {label} folded {run.requests_folded} requests out of its report: their "
                "5xx answers are not counted"
            )
    return notes


def compare_reports(
    checkpoint: ReportFigures, current: ReportFigures, thresholds: RunThresholds | None = None
) -> ComparedRuns:
    """The comparison of two reports of one scenario, with its verdict: exit 4 when the
    current run is worse beyond a threshold, 3 when nothing could be judged, else 0."""
    check_comparable(checkpoint, current)
    comparison = compare_runs(checkpoint.figures, current.figures, thresholds)
    worse = comparison.worse
    if worse:
        named = "; ".join(describe(check) for check in worse[:_NAMED_IN_REASON])
        more = (
            f" (and {len(worse) - _NAMED_IN_REASON} more)" if len(worse) > _NAMED_IN_REASON else ""
        )
        code, reason = ExitCode.THRESHOLDS, f"worse than the checkpoint: {named}{more}"
    elif not comparison.judged:
        code = ExitCode.RUN_FAILED
        reason = "nothing could be compared: no answers or requests in one of the runs"
    else:
        code = ExitCode.IDENTICAL
        reason = (
            f"nothing worse than the checkpoint beyond the thresholds "
            f"({len(comparison.judged)} checks)"
        )
    return ComparedRuns(
        checkpoint, current, comparison, tuple(_notes(checkpoint, current)), code, reason
    )


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "?"
    if unit == "share":
        return f"{value:.2%}"
    if unit == "ms":
        return f"{value:.3g}" if value < 10 else f"{value:.1f}"
    return f"{value:.1f}"


def describe(check: Check) -> str:
    """One line: the figure, both values and the change, with the bound that decided."""
    unit = UNITS[check.figure]
    before, after = _number(check.checkpoint.value, unit), _number(check.current.value, unit)
    suffix = " ms" if unit == "ms" else "/s" if unit == "answers/s" else ""
    head = f"{check.subject} {FIGURE_NAMES[check.figure]} {before} → {after}{suffix}"
    change = check.change
    if unit == "share":
        if change.value is None:
            return head
        bound = change.low if check.status == "worse" else change.high
        which = "at least" if check.status == "worse" else "at most"
        return f"{head} ({change.value * 100:+.2f} points, {which} {(bound or 0) * 100:+.2f})"
    if change.value is None:
        return head
    if check.figure == "rate":
        bound, which = change.high, "at most"
    else:
        bound, which = change.low, "at least"
    shown = f", {which} ×{bound:.2f}" if bound is not None else ""
    return f"{head} (×{change.value:.2f}{shown})"


def _estimate(estimate: Estimate) -> dict[str, float | None]:
    return {key: None if v is None else round(v, 6) for key, v in asdict(estimate).items()}


def comparison_document(result: ComparedRuns) -> dict[str, Any]:
    """The result as JSON-ready data (`--json`), schema `shadowdiff.compare-runs/1`."""
    thresholds = result.comparison.thresholds

    def run(figures: ReportFigures) -> dict[str, Any]:
        return {
            "file": figures.path,
            "scenario": figures.scenario_name,
            "started_at": figures.started_at,
            "tool_version": figures.tool_version,
            "interrupted": figures.interrupted,
            "load_model": figures.load_model,
            "target_rate": figures.target_rate,
        }

    return {
        "schema": COMPARISON_SCHEMA,
        "tool": {"name": "shadowdiff", "version": __version__},
        "checkpoint": run(result.checkpoint),
        "current": run(result.current),
        "thresholds": {
            "latency_ratio": dict(thresholds.latency_ratio),
            "latency_min_difference_ms": thresholds.latency_min_difference_ms,
            "error_rate_increase": thresholds.error_rate_increase,
            "rate_drop": thresholds.rate_drop,
            "confidence": thresholds.confidence,
            "check_confidence": round(result.comparison.check_confidence, 6),
        },
        "checks": [
            {
                "subject": check.subject,
                "figure": check.figure,
                "unit": UNITS[check.figure],
                "checkpoint": _estimate(check.checkpoint),
                "current": _estimate(check.current),
                "change": _estimate(check.change),
                "change_kind": "difference" if UNITS[check.figure] == "share" else "ratio",
                "limit": check.limit,
                "status": check.status,
                "reason": check.reason,
            }
            for check in result.comparison.checks
        ],
        "notes": list(result.notes),
        "outcome": {"exit_code": int(result.exit_code), "reason": result.reason},
    }


def write_comparison(path: str | os.PathLike[str], document: dict[str, Any]) -> None:
    """Write atomically, as `write_report` does."""
    write_text_file(path, json.dumps(document, indent=1, ensure_ascii=False) + "\n")
