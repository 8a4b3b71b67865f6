"""Run results as data: collecting pairs, the versioned JSON report, and its renderers."""

from shadowdiff.report.collect import RunCollector
from shadowdiff.report.document import REPORT_SCHEMA, build_report, read_report, write_report
from shadowdiff.report.verdict import ExitCode

__all__ = [
    "REPORT_SCHEMA",
    "ExitCode",
    "RunCollector",
    "build_report",
    "read_report",
    "write_report",
]
