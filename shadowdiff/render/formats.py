"""The report's file formats beside the JSON, by flag name, and how they reach their files.

A format is a function from the report to text, in a module of its own; adding one is that
module and a line in `FORMATS` (the CLI's `--junit`, `--markdown`, `--html` come from here).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from shadowdiff.render.hgrm import render_hgrm
from shadowdiff.render.html import render_html
from shadowdiff.render.junit import render_junit
from shadowdiff.render.markdown import STEP_SUMMARY_LIMIT_BYTES, fit_step_summary, render_markdown
from shadowdiff.report.files import write_text_file
from shadowdiff.report.schema import Report
from shadowdiff.spec import SIDES, Side
from shadowdiff.stats.histogram import LatencyHistogram


@dataclass(frozen=True)
class FileFormat:
    render: Callable[[Report], str]
    help: str


FORMATS: Final[dict[str, FileFormat]] = {
    "junit": FileFormat(render_junit, "write the report as JUnit XML here (CI test tabs)"),
    "markdown": FileFormat(
        render_markdown, "write a Markdown summary here (a step summary, a PR comment)"
    ),
    "html": FileFormat(
        render_html, "write a self-contained HTML page with plots here (opens from disk)"
    ),
}


def write_format(name: str, path: str | os.PathLike[str], report: Report) -> None:
    """Render `report` as format `name` and write it atomically, as `write_report` does."""
    write_text_file(path, FORMATS[name].render(report))


def append_step_summary(path: str | os.PathLike[str], report: Report) -> bool:
    """Append the Markdown summary to a GitHub step summary file, keeping the file within
    GitHub's 1 MiB (cut, with a line saying so, when it would not fit). False when the
    summary had to be cut or left out."""
    target = Path(path)
    try:
        used_bytes = target.stat().st_size
    except FileNotFoundError:
        used_bytes = 0
    markdown = render_markdown(report)
    # The summary starts on a line of its own, after a blank line, whatever came before it.
    separator = "\n\n" if used_bytes else ""
    room_bytes = STEP_SUMMARY_LIMIT_BYTES - used_bytes - len(separator)
    fitted = fit_step_summary(markdown, room_bytes)
    if fitted:
        with target.open("a", encoding="utf-8") as summary:
            summary.write(separator + fitted)
    return fitted == markdown


def hgrm_paths(prefix: str) -> dict[Side, Path]:
    """Where `--hgrm PREFIX` writes each side's percentile distribution."""
    return {side: Path(f"{prefix}.{side}.hgrm") for side in SIDES}


def write_hgrm(prefix: str, histograms: Mapping[Side, LatencyHistogram]) -> list[Path]:
    """Each side's latency histogram as HdrHistogram percentile distribution text
    (`render/hgrm.py`), written atomically to PREFIX.baseline.hgrm and PREFIX.candidate.hgrm."""
    written = []
    for side, target in hgrm_paths(prefix).items():
        write_text_file(target, render_hgrm(histograms[side]))
        written.append(target)
    return written
