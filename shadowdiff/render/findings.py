"""What the file formats (JUnit, Markdown) say about a signature, from report data only:
whether it fails the run, what it is and where. No I/O, no rich."""

from __future__ import annotations

from typing import Final

from shadowdiff.report.schema import Report, RequestDifference, Signature, SignatureExample
from shadowdiff.report.verdict import FAILING_STATUSES, SEVERITIES

# A signature about a whole hostname's TLS has this route (report.signatures); the others
# name the requests that showed them.
TLS_ROUTE: Final = "(TLS)"


def fails_run(line: Signature, fail_on: str) -> bool:
    """Whether this signature counts against the run, as `verdict.decide` counts it: an expired
    acceptance always, a reported difference at or above `fail_on`."""
    if line["status"] == "expired":
        return True
    failing = SEVERITIES[: SEVERITIES.index(fail_on) + 1] if fail_on in SEVERITIES else SEVERITIES
    return line["status"] in FAILING_STATUSES and line["severity"] in failing


def is_tls(line: Signature) -> bool:
    return line["route"] == TLS_ROUTE


def what(line: Signature | RequestDifference) -> str:
    """`status`, `header missing: strict-transport-security`, `backend: service`: the kind,
    and the field when it adds something (as the terminal report writes it)."""
    kind = line["kind"].replace("_", " ")
    field = line["field"]
    return kind if field == line["kind"] or kind.endswith(f" {field}") else f"{kind}: {field}"


def place(line: Signature) -> str:
    """`api.demo.test/v2/items`, or `shop.demo.test (TLS)`."""
    route = line["route"]
    return f"{line['host']} {route}" if route.startswith("(") else f"{line['host']}{route}"


def example_for(line: Signature, request: str | None = None) -> SignatureExample | None:
    """The example seen on `request` when there is one, else the first."""
    for example in line["examples"]:
        if example["request"] == request:
            return example
    return line["examples"][0] if line["examples"] else None


def shown(value: str | None, limit_chars: int) -> str:
    """An example value as the reports show it: `(absent)` for none, cut at `limit_chars`."""
    if value is None:
        return "(absent)"
    return value if len(value) <= limit_chars else value[: limit_chars - 1] + "…"


def verdict_line(report: Report) -> str:
    outcome = report["outcome"]
    return f"exit {outcome['exit_code']}: {outcome['reason']}"
