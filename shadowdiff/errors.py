"""The exceptions shadowdiff raises, grouped by what the caller can do about them.

    ShadowdiffError
    ├── UsageError            the input is unusable: fix the scenario or the command line (exit 2)
    │   ├── ScenarioError     one or more located problems in a scenario file
    │   └── RequestRefused    a request built by the caller cannot be sent as it stands
    │                         (unsafe without allow_unsafe, or not writable on the wire);
    │                         raised before anything is sent
    └── PreflightFailed       the scenario's `preflight` found Gateway API objects that cannot
                              serve; nothing was sent (exit 1)

A run that cannot be carried out (a target failed every request, a rate not held) is not an
exception either: the report's verdict says so and the CLI exits 3.

A request that fails on the wire is *not* an exception: it is recorded on its observation
(see `shadowdiff.observation.TransportFailure`) and compared like any other answer.
"""

from __future__ import annotations

from dataclasses import dataclass


class ShadowdiffError(Exception):
    """Base class of every error shadowdiff raises on purpose."""


class PreflightFailed(ShadowdiffError):
    """The scenario's `preflight` found Gateway API objects that cannot serve: nothing was
    sent. `findings` holds one line per problem."""

    def __init__(self, findings: list[str]) -> None:
        count = len(findings)
        super().__init__(f"preflight: {count} problem{'' if count == 1 else 's'}")
        self.findings = findings


class UsageError(ShadowdiffError):
    """The input cannot be used; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file, located as precisely as the file allows."""

    file: str
    line: int  # 1-based; 0 when the problem has no position (the file itself)
    column: int  # 1-based
    field: str  # dotted path such as requests[3].method; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ScenarioError(UsageError):
    """A scenario file has one or more problems; `problems` lists each one, located."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RequestRefused(UsageError):
    """Requests that shadowdiff will not send; `reasons` has one line per request."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("\n".join(reasons))


def describe_exception(exc: BaseException) -> str:
    """An unexpected exception as one line: its type and message. A task group that failed
    for one reason is that reason (what went wrong, not where it was gathered)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
