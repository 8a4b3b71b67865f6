"""What a finished run means for a pipeline: one verdict and its exit code. Pure."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    IDENTICAL = 0  # no differences
    DIFFERENCES = 1  # at least one difference found
    USAGE = 2  # bad command line or scenario
    RUN_FAILED = 3  # the run could not be carried out (a target failed every request)
    INTERRUPTED = 130  # stopped by Ctrl-C; the report covers what completed


def decide(totals: dict[str, Any], *, interrupted: bool) -> tuple[ExitCode, str]:
    """The exit code and a one-line reason, from a report's `totals`."""
    if interrupted:
        return ExitCode.INTERRUPTED, f"interrupted after {totals['pairs']} pairs"
    pairs = totals["pairs"]
    for side in ("baseline", "candidate"):
        failures = totals["failures"][side]
        if pairs and failures["total"] == pairs:
            common = max(failures["by_class"].items(), key=lambda item: item[1])[0]
            return ExitCode.RUN_FAILED, f"the {side} failed every request ({common})"
    if totals["pairs_with_differences"]:
        return (
            ExitCode.DIFFERENCES,
            f"{totals['pairs_with_differences']} of {pairs} pairs differ",
        )
    return ExitCode.IDENTICAL, f"all {pairs} pairs alike"
