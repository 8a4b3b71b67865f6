"""The watch report (`--json`, schema `shadowdiff.watch/1`): the settings, the checkpoint's
reference figures, the last rows, and why the watch ended (a rollback rule, with the
interval's figures, or a stop). Every string goes through the scenario's redactor, as in a
run's report: an address or a header from the environment shows as `${NAME}`."""

from __future__ import annotations

import json
import os

from shadowdiff import __version__
from shadowdiff.redaction import Redactor, load_key
from shadowdiff.report.document import redactor_for
from shadowdiff.report.files import write_text_file
from shadowdiff.report.verdict import ExitCode
from shadowdiff.scenario import Scenario
from shadowdiff.spec import Side
from shadowdiff.watch.compare import Figures
from shadowdiff.watch.loop import WatchOptions, WatchResult
from shadowdiff.watch.schema import (
    WATCH_SCHEMA,
    CheckpointSide,
    RollbackEntry,
    WatchReport,
)

_RULE_TEXT = {
    "error_rate_points": "the candidate's error rate above the checkpoint's by more than "
    "{limit:g} points",
    "p99_ratio": "the candidate's p99 above {limit:g} times the checkpoint's",
}


def checkpoint_side(figures: Figures) -> CheckpointSide:
    histogram = figures.latency
    p50, p99 = histogram.percentiles((50, 99)) if histogram.count else (None, None)
    return {
        "requests": figures.requests,
        "errors": figures.errors,
        "error_rate": None if figures.error_rate is None else round(figures.error_rate, 4),
        "p50_ms": None if p50 is None else round(p50 / 1000, 3),
        "p99_ms": None if p99 is None else round(p99 / 1000, 3),
    }


def rollback_entry(result: WatchResult, options: WatchOptions) -> RollbackEntry | None:
    row, decision = result.rollback, result.decision
    if row is None or decision is None or decision.fired is None:
        return None
    limit = getattr(options.rules, decision.fired)
    return {
        "rule": decision.fired,
        "limit": limit,
        "interval": row["interval"],
        "at": row["at"],
        "reason": _RULE_TEXT[decision.fired].format(limit=limit)
        + f", {options.rules.intervals} intervals in a row, while DNS points at it",
        "figures": row,
    }


def outcome(result: WatchResult, stop_cause: str | None) -> tuple[int, str]:
    """The exit code and its reason: a rollback first, then a bug, then a stop."""
    if result.rollback is not None:
        return int(ExitCode.ROLLBACK), "rollback: a rollback rule was crossed"
    if result.internal_error is not None:
        return int(ExitCode.INTERNAL_ERROR), "internal error while watching"
    if result.intervals == 0:
        # Nothing was watched: as for any run stopped before its first pair.
        code = ExitCode.TERMINATED if stop_cause == "SIGTERM" else ExitCode.INTERRUPTED
        return int(code), f"stopped ({stop_cause or 'cancelled'}) before the first interval ended"
    return int(ExitCode.IDENTICAL), (
        f"stopped ({stop_cause or 'cancelled'}) after {result.intervals} intervals; "
        "no rollback rule crossed"
    )


def build_watch_report(
    scenario: Scenario,
    checkpoint_file: str,
    checkpoint: dict[Side, Figures],
    options: WatchOptions,
    result: WatchResult,
    stop_cause: str | None,
) -> WatchReport:
    code, reason = outcome(result, stop_cause)
    rules = options.rules
    report: WatchReport = {
        "schema": WATCH_SCHEMA,
        "tool": {"name": "shadowdiff", "version": __version__},
        "scenario": {"name": scenario.name, "file": scenario.source},
        "started_at": result.started_at.isoformat(timespec="seconds"),
        "duration_s": result.duration_s,
        "nameserver": f"{options.nameserver.host}:{options.nameserver.port}",
        "rate_per_s": options.rate_per_s,
        "interval_s": options.interval_s,
        "requests": result.requests,
        "skipped_unsafe": result.skipped_unsafe,
        "rules": {
            "error_rate_points": rules.error_rate_points,
            "p99_ratio": rules.p99_ratio,
            "intervals": rules.intervals,
        },
        "checkpoint": {
            "file": checkpoint_file,
            "baseline": checkpoint_side(checkpoint["baseline"]),
            "candidate": checkpoint_side(checkpoint["candidate"]),
        },
        "intervals_total": result.intervals,
        "intervals": list(result.rows),
        "rollback": rollback_entry(result, options),
        "stop_cause": None if result.rollback is not None else stop_cause,
        "outcome": {"exit_code": code, "reason": reason},
    }
    redacted: WatchReport = watch_redactor(scenario).walk(report)
    return redacted


def watch_redactor(scenario: Scenario) -> Redactor:
    """What hides the scenario's secrets in every row shown and in the report."""
    return redactor_for(scenario, load_key(os.environ)[0])


def write_watch_report(path: str, report: WatchReport) -> None:
    write_text_file(path, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
