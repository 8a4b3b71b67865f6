"""What `shadowdiff demo` prints and writes, held against golden files: the terminal report
(tests/golden/demo-terminal.txt), the JSON report's shape (tests/golden/demo-report-shape.json),
the JUnit XML (tests/golden/demo-junit.xml) and the Markdown summary (tests/golden/demo-summary.md).

The demo runs as a user runs it, `python -m shadowdiff demo --json PATH` in a subprocess, at a
terminal width of 100 and without colour. What changes from run to run is masked, and only
that: the JSON fields in `MASKED_FIELDS`, the terminal text in `MASKED_TERMINAL_TEXT`, the
JUnit and Markdown text in `MASKED_FILE_TEXT`. The
terminal text is kept as tests/test_readme.py compares the README's report with the demo's:
one line per printed line, without table drawing and padding.

After a change that is meant to show, rewrite both files and read the diff before committing:

    SHADOWDIFF_UPDATE_GOLDEN=1 ./dev test tests/test_golden.py
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .conftest import DemoRun
from .test_readme import _comparable

GOLDEN: Final = Path(__file__).parent / "golden"
TERMINAL_GOLDEN: Final = GOLDEN / "demo-terminal.txt"
SHAPE_GOLDEN: Final = GOLDEN / "demo-report-shape.json"
JUNIT_GOLDEN: Final = GOLDEN / "demo-junit.xml"
MARKDOWN_GOLDEN: Final = GOLDEN / "demo-summary.md"
UPDATE_VARIABLE: Final = "SHADOWDIFF_UPDATE_GOLDEN"
MASK: Final = "<masked>"

# Inside a string: trustme names each certificate `OU=Testing cert #<16 random characters>`.
_TRUSTME_NAME: Final = r"#[A-Za-z0-9_-]{16}"
# Inside a TLS finding's value: `serial <hex>, until <ISO date and time>`, `<date> (in 10 days)`.
_CERTIFICATE_TEXT: Final = re.compile(
    rf"{_TRUSTME_NAME}|serial [0-9a-f]+|\d{{4}}-\d{{2}}-\d{{2}}(T[0-9:.]+[+-]\d{{2}}:\d{{2}})?"
)
_LATENCY: Final = "min|mean|std|p50|p90|p95|p99|p99.9|max"
_DIFFERENCE: Final = "p1|p10|p50|p90|p99"
_CERTIFICATE: Final = "serial|sha256|not_before|not_after"
_TRACE_ID: Final = r"^[0-9a-f]{32}$"
_SPAN_ID: Final = r"^[0-9a-f]{16}$"

# Every field of the JSON report masked, and nothing else. A path names keys from the top:
# `*` is any key or index, `a|b` either key. None masks the whole value; a pattern masks what
# it matches inside the string.
MASKED_FIELDS: Final[dict[str, re.Pattern[str] | None]] = {
    # Timings, durations and latency figures (counts of samples and errors stay).
    "duration_s": None,
    "load/elapsed_s|measured_s|achieved_rate": None,
    "load/sender/limited|late_by_sender|late_by_in_flight|loop_busy_share|loop_lag_max_ms|cpu_share": None,
    f"latency/baseline|candidate/*/{_LATENCY}": None,
    f"latency/difference/{_DIFFERENCE}": None,
    "latency/histograms/*/min|max|sum|sum_squares|buckets": None,
    f"requests/*/latency_ms/baseline|candidate/{_LATENCY}": None,
    f"requests/*/latency_ms/difference/{_DIFFERENCE}": None,
    "requests/*/latency_ms/histograms/*/min|max|sum|sum_squares|buckets": None,
    "pairs/*/baseline|candidate/total_ms": None,
    # When the demo ran, and whether its pairs ended within one second or across two.
    "timeline/start_s|pairs": None,
    "timeline/failures|server_errors/*": None,
    # The ports the embedded entry points were given.
    "targets/*/ports/*": None,
    # Dates and times of the run.
    "started_at": None,
    "tls/*/baseline|candidate/probed_at": None,
    # Certificates: the demo issues fresh ones on every run (random serials and names, so
    # fingerprints too; validity from the day of the run).
    f"tls/*/baseline|candidate/leaf/{_CERTIFICATE}": None,
    f"tls/*/baseline|candidate/chain/*/{_CERTIFICATE}": None,
    "tls/*/baseline|candidate/no_sni|unknown_sni/sha256": None,
    # The baseline's certificate runs to 3000-01-01: its days to expiry count down daily.
    "tls/*/baseline|candidate/days_to_expiry": None,
    "tls/*/baseline|candidate/leaf/subject|issuer": re.compile(_TRUSTME_NAME),
    "tls/*/baseline|candidate/chain/*/subject|issuer": re.compile(_TRUSTME_NAME),
    "tls/*/baseline|candidate/no_sni|unknown_sni/subject": re.compile(_TRUSTME_NAME),
    "tls/*/differences/*/baseline|candidate": _CERTIFICATE_TEXT,
    "signatures/*/examples/*/baseline|candidate": _CERTIFICATE_TEXT,
    # W3C trace and span ids: random for every pair (shadowdiff.trace); a null stays null.
    "signatures/*/examples/*/trace_id": re.compile(_TRACE_ID),
    "requests/*/differences/*/examples/*/trace_id": re.compile(_TRACE_ID),
    "pairs/*/trace_id": re.compile(_TRACE_ID),
    "pairs/*/baseline|candidate/span_id": re.compile(_SPAN_ID),
    # The redaction key is made afresh in each test run's configuration folder.
    "redaction/key_id": None,
    # An absolute path: where the checkout is.
    "scenario/file": None,
    # Peak RSS needs no mask: the demo measures no resources (`resources` is null).
}
# Not a mask: `pairs[]` is in completion order, and pairs sent at once may complete in either
# order on a busy machine, so the shape lists them by `index`.


@dataclass(frozen=True)
class TextMask:
    pattern: re.Pattern[str]
    replacement: str
    why: str


# The terminal text is compared as `test_readme._comparable` leaves it: table drawing and
# padding dropped (a wider figure widens its column), every decimal number (milliseconds and
# seconds, but also 127.0.0.1 and TLSv1.3) shown as `#` and every date as `DATE`. These
# mask the rest of what changes, one line of that text at a time (`^`, `$`: a line).
MASKED_TERMINAL_TEXT: Final = (
    TextMask(re.compile(r"(https?) \d+"), r"\1 PORT", "the entry points' ports"),
    TextMask(re.compile(_TRUSTME_NAME), "#NAME", "trustme's random certificate names"),
    TextMask(
        # A serial is wider than its column: its last digits fold onto a line of their own.
        re.compile(r"^serial [0-9a-f]+ [0-9a-f]+(\n[0-9a-f]+( [0-9a-f]+)?)?$", re.M),
        "serial SERIAL SERIAL",
        "fresh certificates' serials",
    ),
    TextMask(
        re.compile(r"^sha256 [0-9a-f]+ [0-9a-f]+$", re.M),
        "sha256 SHA256 SHA256",
        "fresh certificates' fingerprints",
    ),
    TextMask(re.compile(r"\([0-9a-f]{12}\)"), "(SHA256)", "the same, shortened"),
    TextMask(re.compile(r"\(in \d{5,} days\)"), "(in DAYS days)", "days to 3000-01-01"),
)

# The JUnit XML and the Markdown summary are compared whole, with these masked.
MASKED_FILE_TEXT: Final = (
    TextMask(re.compile(r'(time|timestamp)="[^"]*"'), r'\1="TIME"', "JUnit times and the start"),
    TextMask(re.compile(r"\btrace [0-9a-f]{32}\b"), "trace TRACE-ID", "each pair's trace id"),
    TextMask(re.compile(r" in [0-9.]+ s,"), " in SECONDS s,", "the demo's duration (Markdown)"),
    # Markdown shows an underscore as `\_`.
    TextMask(re.compile(r"#(?:\\_|[A-Za-z0-9_-]){16}"), "#NAME", "trustme's random names"),
    TextMask(_CERTIFICATE_TEXT, "CERTIFICATE", "fresh certificates' serials and dates"),
    TextMask(re.compile(r"expires in \d{5,} days"), "expires in DAYS days", "days to 3000-01-01"),
)


def _matches(pattern: str, path: tuple[str, ...]) -> bool:
    parts = pattern.split("/")
    return len(parts) == len(path) and all(
        part == "*" or key in part.split("|") for part, key in zip(parts, path, strict=True)
    )


def _masked(data: Any, path: tuple[str, ...] = ()) -> Any:
    for pattern, inside in MASKED_FIELDS.items():
        if _matches(pattern, path):
            if inside is None:
                return MASK
            return inside.sub(MASK, data) if isinstance(data, str) else data
    if isinstance(data, dict):
        return {key: _masked(value, (*path, key)) for key, value in data.items()}
    if isinstance(data, list):
        return [_masked(value, (*path, str(index))) for index, value in enumerate(data)]
    return data


def report_shape(report: dict[str, Any]) -> str:
    """The JSON report with `MASKED_FIELDS` masked and pairs in index order, as text."""
    shape = dict(report)
    # The mergeable state repeats the report's figures with this run's ports and timings;
    # tests/test_shard.py holds it to what it must do (merge exactly).
    if isinstance(shape.get("state"), dict):
        shape["state"] = {"schema": shape["state"]["schema"]}
    if isinstance(shape.get("pairs"), list):
        shape["pairs"] = sorted(shape["pairs"], key=lambda pair: pair["index"])
    return json.dumps(_masked(shape), indent=1, ensure_ascii=False) + "\n"


def terminal_text(printed: str) -> str:
    """The terminal report as `_comparable` leaves it, with `MASKED_TERMINAL_TEXT` masked."""
    text = "\n".join(_comparable(printed))
    for mask in MASKED_TERMINAL_TEXT:
        text = mask.pattern.sub(mask.replacement, text)
    return text + "\n"


def file_text(written: str) -> str:
    """A JUnit or Markdown file with `MASKED_FILE_TEXT` masked."""
    for mask in MASKED_FILE_TEXT:
        written = mask.pattern.sub(mask.replacement, written)
    return written


def _compare(golden: Path, current: str) -> None:
    if os.environ.get(UPDATE_VARIABLE) == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(current, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8")
    assert current == expected, (
        f"{golden.name} differs from this run; if the change is meant, rewrite it with "
        f"{UPDATE_VARIABLE}=1 and read the diff"
    )


def test_demo_exits_with_differences_and_says_nothing_on_stderr(demo: DemoRun) -> None:
    assert (demo.code, demo.stderr) == (1, "")


def test_demo_terminal_report_matches_golden_file(demo: DemoRun) -> None:
    _compare(TERMINAL_GOLDEN, terminal_text(demo.printed))


def test_demo_json_report_matches_golden_shape(demo: DemoRun) -> None:
    _compare(SHAPE_GOLDEN, report_shape(demo.report))


def test_demo_junit_matches_golden_file(demo: DemoRun) -> None:
    _compare(JUNIT_GOLDEN, file_text(demo.junit))


def test_demo_markdown_summary_matches_golden_file(demo: DemoRun) -> None:
    _compare(MARKDOWN_GOLDEN, file_text(demo.markdown))


def test_golden_masks_hide_what_they_name_and_nothing_else() -> None:
    report = {
        "duration_s": 0.5,
        "targets": {"baseline": {"address": "127.0.0.1", "ports": {"https": 41234}}},
        "tls": [
            {"differences": [{"baseline": "3000-01-01", "candidate": "2026-12-13 (in 10 days)"}]}
        ],
        "latency": {"histograms": {"baseline": {"count": 2, "buckets": [[4742, 2]]}}},
        "pairs": [{"index": 1}, {"index": 0}],
    }
    assert json.loads(report_shape(report)) == {
        "duration_s": MASK,
        "targets": {"baseline": {"address": "127.0.0.1", "ports": {"https": MASK}}},
        "tls": [{"differences": [{"baseline": MASK, "candidate": f"{MASK} (in 10 days)"}]}],
        "latency": {"histograms": {"baseline": {"count": 2, "buckets": MASK}}},
        "pairs": [{"index": 0}, {"index": 1}],
    }
    printed = "│serial  │ 0a1b2c3d4e5f │ 5f4e3d2c1b0a99 │\n│        │ 77ab         │                │\nok 42\n"
    assert terminal_text(printed) == "serial SERIAL SERIAL\nok 42\n"
    junit = '<testcase name="api v1" time="0.040">v1.2.1 → #6rAG5_KHYGoTdHtu (in 10 days)'
    assert file_text(junit) == '<testcase name="api v1" time="TIME">v1.2.1 → #NAME (in 10 days)'
    markdown = "| 3 pairs in 0.13 s, #6rAG5\\_KHYGoTdHtu, 2026-12-13, expires in 355410 days |"
    assert file_text(markdown) == (
        "| 3 pairs in SECONDS s, #NAME, CERTIFICATE, expires in DAYS days |"
    )
