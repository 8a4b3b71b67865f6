"""What a finished run means for a pipeline: one verdict and its exit code. Pure."""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final

SEVERITIES: Final = ("error", "warning", "info")


class ExitCode(IntEnum):
    IDENTICAL = 0  # no differences
    DIFFERENCES = 1  # at least one difference found
    USAGE = 2  # bad command line or scenario
    RUN_FAILED = 3  # the run could not be carried out (a target failed every request)
    THRESHOLDS = 4  # the answers were alike, but a threshold (latency, errors...) failed
    INTERRUPTED = 130  # stopped by Ctrl-C; the report covers what completed


# Signature statuses that count against the run: a real difference, or an expired acceptance.
FAILING_STATUSES: Final = frozenset({"reported", "expired"})


def _hosts(count: int) -> str:
    return f"{count} host" if count == 1 else f"{count} hosts"


def decide(
    totals: dict[str, Any], *, fail_on: str = "error", interrupted: bool = False
) -> tuple[ExitCode, str]:
    """The exit code and a one-line reason, from a report's `totals`."""
    pairs = totals["pairs"]
    if interrupted:
        return ExitCode.INTERRUPTED, f"interrupted after {pairs} pairs"
    if not totals.get("load_valid", True):
        return ExitCode.RUN_FAILED, totals["load_reason"]
    for side in ("baseline", "candidate"):
        failures = totals["failures"][side]
        if pairs and failures["total"] == pairs:
            common = max(failures["by_class"].items(), key=lambda item: item[1])[0]
            return ExitCode.RUN_FAILED, f"the {side} failed every request ({common})"
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
