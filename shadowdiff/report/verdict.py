"""What a finished run means for a pipeline: one verdict and its exit code. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Final

from shadowdiff.difference import Severity
from shadowdiff.spec import SIDES

if TYPE_CHECKING:
    from shadowdiff.report.schema import Totals

SEVERITIES: Final[tuple[Severity, ...]] = ("error", "warning", "info")


class ExitCode(IntEnum):
    """Every exit code of every command: later features add a member here, never a code of
    their own. `EXIT_CODE_MEANINGS` says what each means (README and `--help` print it)."""

    IDENTICAL = 0
    DIFFERENCES = 1
    USAGE = 2
    RUN_FAILED = 3
    THRESHOLDS = 4
    # `watch`: a rollback rule was crossed while DNS points at the candidate.
    ROLLBACK = 5
    # EX_SOFTWARE from BSD's sysexits.h: a bug, never a verdict on the entry points.
    INTERNAL_ERROR = 70
    # 128 + the signal's number, as shells report a process ended by that signal.
    INTERRUPTED = 130
    TERMINATED = 143


EXIT_CODE_MEANINGS: Final[Mapping[ExitCode, str]] = {
    ExitCode.IDENTICAL: "every pair alike; for `compare-runs`, nothing worse than the "
    "checkpoint beyond the thresholds",
    ExitCode.DIFFERENCES: "differences found at or above `compare.fail_on` (default: error), "
    "or an expired acceptance; for `preflight`, a Gateway API object that cannot serve",
    ExitCode.USAGE: "usage or scenario error (one line per problem, nothing sent); for "
    "`compare-runs` and `report`, a file that is not a shadowdiff report, or two reports of "
    "different scenarios",
    ExitCode.RUN_FAILED: "the run could not be carried out: a target failed every request, "
    "a request could not be sent as written (`not_sent`), an open-model run fell short of its "
    "rate, or a worker process died (the report says how); "
    "for `compare-runs`, nothing could be compared (no answers or requests in a run)",
    ExitCode.THRESHOLDS: "answers alike, but a threshold failed "
    "(latency, error rate, difference rate); for `compare-runs`, the current run is worse "
    "than the checkpoint beyond a threshold",
    ExitCode.ROLLBACK: "`watch`: a rollback rule (`rollback_when`) was crossed while DNS points "
    "at the candidate; the report (`--json`) says which, when, and the interval's figures",
    ExitCode.INTERNAL_ERROR: "internal error (a bug): one line on stderr (the traceback with "
    "`--debug`); the report covers the pairs completed",
    ExitCode.INTERRUPTED: "interrupted by Ctrl-C (SIGINT); the report (and `--json`) covers "
    "the pairs completed",
    ExitCode.TERMINATED: "terminated by SIGTERM (a CI timeout, `kill`); the report covers "
    "the pairs completed",
}


def exit_code_table() -> list[tuple[int, str]]:
    """(code, meaning) of every exit code, in order."""
    return [(int(code), EXIT_CODE_MEANINGS[code]) for code in ExitCode]


@dataclass(frozen=True, slots=True)
class StopVerdict:
    """Why a run did not end by itself, and what that means for the exit code."""

    cause: str  # "internal_error", a signal's name ("SIGINT", "SIGTERM") or "worker_died"
    exit_code: ExitCode
    reason: str


def stop_verdict(
    pairs: int,
    *,
    signal_name: str | None = None,
    internal_error: str | None = None,
    worker_failures: Sequence[str] = (),
) -> StopVerdict | None:
    """The verdict of a run that did not end by itself, or None when it did. A bug comes
    first, then a signal (a worker that died of the same Ctrl-C is part of it), then a worker
    that died on its own."""
    after = f"after {pairs} pairs" if pairs else "before the first pair"
    if internal_error is not None:
        return StopVerdict(
            "internal_error", ExitCode.INTERNAL_ERROR, f"internal error {after}: {internal_error}"
        )
    if signal_name == "cancelled":  # by the caller of the library, not by a signal
        return StopVerdict("cancelled", ExitCode.INTERRUPTED, f"cancelled {after}")
    if signal_name is not None:
        code = ExitCode.TERMINATED if signal_name == "SIGTERM" else ExitCode.INTERRUPTED
        return StopVerdict(signal_name, code, f"interrupted by {signal_name} {after}")
    if worker_failures:
        reason = f"{worker_failures[0]}; the report covers the pairs completed"
        return StopVerdict("worker_died", ExitCode.RUN_FAILED, reason)
    return None


# Signature statuses that count against the run: a real difference, or an expired acceptance.
FAILING_STATUSES: Final = frozenset({"reported", "expired"})


def _hosts(count: int) -> str:
    return f"{count} host" if count == 1 else f"{count} hosts"


def decide(
    totals: Totals, *, fail_on: str = "error", interrupted: bool = False
) -> tuple[ExitCode, str]:
    """The exit code and a one-line reason, from a report's `totals`."""
    pairs = totals["pairs"]
    if interrupted:
        return ExitCode.INTERRUPTED, f"interrupted after {pairs} pairs"
    if not totals.get("load_valid", True):
        # An invalid load always carries its reason (document._load_entry).
        return ExitCode.RUN_FAILED, totals["load_reason"] or "target rate not held"
    for side in SIDES:
        failures = totals["failures"][side]
        if pairs and failures["total"] == pairs:
            common = max(failures["by_class"].items(), key=lambda item: item[1])[0]
            return ExitCode.RUN_FAILED, f"the {side} failed every request ({common})"
    # `not_sent` is shadowdiff refusing a request as written, never an entry point's doing:
    # a pair refused on both sides compared nothing, and "alike" would pass a CI stage.
    refused = {side: totals["failures"][side]["by_class"].get("not_sent", 0) for side in SIDES}
    if any(refused.values()):
        counts = ", ".join(f"{count} to the {side}" for side, count in refused.items() if count)
        return (
            ExitCode.RUN_FAILED,
            f"requests not sent as written ({counts}); the report's failures say why",
        )
    tls_probed = totals.get("tls_hosts", 0)
    for side in SIDES:
        # Like a side that failed every request: a TLS check that reached nothing checked
        # nothing (a wrong port, a closed firewall), and "alike" would pass a CI stage.
        failed = totals.get("tls_handshakes_failed", {}).get(side, 0)
        if not pairs and tls_probed and failed == tls_probed:
            return (
                ExitCode.RUN_FAILED,
                f"the {side} completed no TLS handshake ({_hosts(tls_probed)} probed)",
            )
    by_severity = totals["signatures_by_severity"]
    failing_severities = [s for s in SEVERITIES[: SEVERITIES.index(fail_on) + 1] if by_severity[s]]
    expired = totals["signatures"]["expired"]
    counted = ", ".join(f"{by_severity[s]} {s}" for s in SEVERITIES if by_severity[s])
    probed = totals.get("tls_hosts", 0)
    scope = f"{pairs} pairs" + (f" and TLS of {_hosts(probed)}" if probed else "")
    if not pairs and probed:
        scope = f"TLS of {_hosts(probed)}"
    if failing_severities or expired:
        detail = counted + (f"; {expired} expired acceptance" if expired else "")
        if totals.get("thresholds_failed"):
            detail += f"; {totals['thresholds_failed']} threshold(s) failed too"
        if not pairs and probed:
            return ExitCode.DIFFERENCES, f"{scope} differs ({detail})"
        return (
            ExitCode.DIFFERENCES,
            f"{totals['pairs_with_differences']} of {pairs} pairs differ ({detail})",
        )
    failed_thresholds = totals.get("thresholds_failed", 0)
    if failed_thresholds:
        below = f"; {counted} below {fail_on} level" if counted else ""
        return ExitCode.THRESHOLDS, f"{failed_thresholds} threshold(s) failed{below}"
    if counted:
        return (
            ExitCode.IDENTICAL,
            f"no difference at {fail_on} level in {scope} ({counted} below it)",
        )
    if not pairs and probed:
        return ExitCode.IDENTICAL, f"TLS alike on {_hosts(probed)}"
    tls = f"; TLS alike on {_hosts(probed)}" if probed else ""
    return ExitCode.IDENTICAL, f"all {pairs} pairs alike{tls}"
