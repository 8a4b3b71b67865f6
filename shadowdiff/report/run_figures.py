"""A saved report read as figures to compare (`compare-runs`) or histograms to export
(`--hgrm`), from a file that may be anything: every field used is checked for its type and
range, and a file that is not a report ends as one located line (`UsageError`), never a
traceback. Reads files; computes nothing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import numpy as np

from shadowdiff.errors import UsageError
from shadowdiff.report.document import REPORT_SCHEMA
from shadowdiff.report.files import read_file_bounded
from shadowdiff.spec import SIDES, Side
from shadowdiff.stats.histogram import SIGNIFICANT_DIGITS, LatencyHistogram, bucket_index
from shadowdiff.stats.run_comparison import RunFigures, SideFigures

# A report keeps at most 500 request entries and 10,000 pair records: a few megabytes. A file
# many times that is not one of ours, and is refused before it is parsed.
REPORT_LIMIT_BYTES: Final = 64 * 1024 * 1024
# Counts beyond 2**53 lose precision as JSON numbers elsewhere; no run comes near.
_COUNT_LIMIT: Final = 2**53
# The bucket of 2**53 µs (285 years): no latency lies past it, and values stay exact in floats.
_INDEX_LIMIT: Final = int(bucket_index(np.array([2**53], dtype=np.int64))[0])
_SHOWN_CHARS: Final = 40


@dataclass(frozen=True)
class ReportFigures:
    """What `compare-runs` needs of one report."""

    path: str
    tool_version: str
    scenario_name: str
    started_at: str
    interrupted: bool
    corrected: bool  # latency measured from each pair's intended start (open model)
    load_model: str | None
    target_rate: float | None
    request_names: frozenset[str]
    requests_folded: int
    figures: RunFigures


class _Fields:
    """Typed access to a parsed JSON document, each failure naming the file and the field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, expected: str, value: Any) -> NoReturn:
        shown = repr(value)
        if len(shown) > _SHOWN_CHARS:
            shown = shown[: _SHOWN_CHARS - 1] + "…"
        kind = (
            type(value).__name__
            if not isinstance(value, dict | list)
            else "JSON " + ("object" if isinstance(value, dict) else "array")
        )
        raise UsageError(
            f"{self.path}: {where}: expected {expected}; got {kind} {shown}"
            if value is not _MISSING
            else f"{self.path}: {where}: missing; expected {expected}"
        )

    def get(self, data: Any, where: str, key: str) -> Any:
        if not isinstance(data, dict):
            self.fail(where or "(top)", "a JSON object", data)
        return data.get(key, _MISSING)

    def object(self, data: Any, where: str, key: str) -> dict[str, Any]:
        value = self.get(data, where, key)
        if not isinstance(value, dict):
            self.fail(_join(where, key), "a JSON object", value)
        return value

    def text(self, data: Any, where: str, key: str) -> str:
        value = self.get(data, where, key)
        if not isinstance(value, str):
            self.fail(_join(where, key), "a string", value)
        return value

    def flag(self, data: Any, where: str, key: str) -> bool:
        value = self.get(data, where, key)
        if not isinstance(value, bool):
            self.fail(_join(where, key), "true or false", value)
        return value

    def whole(self, value: Any, where: str, limit: int = _COUNT_LIMIT) -> int:
        # bool is an int to Python, not to JSON.
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
            self.fail(where, f"a whole number from 0 to {limit}", value)
        return value

    def count(self, data: Any, where: str, key: str) -> int:
        return self.whole(self.get(data, where, key), _join(where, key))

    def number(self, data: Any, where: str, key: str, *, optional: bool = False) -> float | None:
        value = self.get(data, where, key)
        if optional and value is None:
            return None
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value < 0
        ):
            self.fail(
                _join(where, key), "a number from 0" + (" or null" if optional else ""), value
            )
        return float(value)


_MISSING: Final = object()


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def load_report_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed JSON of a shadowdiff report file: bounded in size, any parse failure (nesting
    too deep included) one line, and its schema ours."""
    name = os.fspath(path)
    data = read_file_bounded(name, REPORT_LIMIT_BYTES, "a shadowdiff report")
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise UsageError(f"{name}: not a shadowdiff report: JSON nested too deeply") from None
    except ValueError as exc:
        raise UsageError(f"{name}: not a shadowdiff report: {exc}") from None
    fields = _Fields(name)
    schema = fields.get(document, "", "schema")
    if schema != REPORT_SCHEMA:
        fields.fail("schema", repr(REPORT_SCHEMA) + " (a shadowdiff report)", schema)
    if not isinstance(document, dict):  # for the type checker: `get` checked it
        raise UsageError(f"{name}: not a JSON object")
    return document


def checked_histogram(data: Any, where: str, path: str) -> LatencyHistogram:
    """A report's `latency.histograms.<side>` (`LatencyHistogram.to_dict()`), checked."""
    fields = _Fields(path)
    if not isinstance(data, dict):
        fields.fail(where, "a JSON object (a histogram)", data)
    if data.get("unit", _MISSING) != "us":
        fields.fail(_join(where, "unit"), "'us'", data.get("unit", _MISSING))
    digits = data.get("significant_digits", _MISSING)
    if digits != SIGNIFICANT_DIGITS or isinstance(digits, bool):
        fields.fail(_join(where, "significant_digits"), str(SIGNIFICANT_DIGITS), digits)
    count = fields.count(data, where, "count")
    buckets = fields.get(data, where, "buckets")
    if not isinstance(buckets, list):
        fields.fail(_join(where, "buckets"), "a JSON array", buckets)
    pairs: dict[int, int] = {}
    for position, bucket in enumerate(buckets):
        here = f"{where}.buckets[{position}]"
        if not isinstance(bucket, list) or len(bucket) != 2:
            fields.fail(here, "[index, count]", bucket)
        index = fields.whole(bucket[0], here + "[0]", _INDEX_LIMIT)
        if index in pairs:
            fields.fail(here + "[0]", "each bucket once", index)
        pairs[index] = fields.whole(bucket[1], here + "[1]")
    if sum(pairs.values()) != count:
        fields.fail(_join(where, "count"), f"the buckets' total, {sum(pairs.values())}", count)
    extremes: list[int | None] = []
    for key in ("min", "max"):
        value = fields.get(data, where, key)
        if count == 0 and value is None:
            extremes.append(None)
            continue
        extremes.append(fields.whole(value, _join(where, key)))
    low, high = extremes
    if low is not None and high is not None and low > high:
        fields.fail(_join(where, "min"), f"at most max ({high})", low)
    total = fields.whole(fields.get(data, where, "sum"), _join(where, "sum"), 2**63 - 1)
    squares = fields.number(data, where, "sum_squares")
    return LatencyHistogram.from_dict(
        {
            "count": count,
            "min": low,
            "max": high,
            "sum": total,
            "sum_squares": squares,
            "buckets": sorted(pairs.items()),
        }
    )


def report_histograms(report: Mapping[str, Any], path: str) -> dict[Side, LatencyHistogram]:
    """Each side's histogram of total latency, checked (for `--hgrm`)."""
    fields = _Fields(path)
    histograms = fields.object(fields.object(report, "", "latency"), "latency", "histograms")
    return {
        side: checked_histogram(histograms.get(side, _MISSING), f"latency.histograms.{side}", path)
        for side in SIDES
    }


def read_report_figures(path: str | os.PathLike[str]) -> ReportFigures:
    """Read a report file as figures to compare; UsageError (one located line) for anything
    that is not a shadowdiff report."""
    name = os.fspath(path)
    document = load_report_document(path)
    fields = _Fields(name)
    totals = fields.object(document, "", "totals")
    pairs = fields.count(totals, "totals", "pairs")
    failures = fields.object(totals, "totals", "failures")
    latency = fields.object(document, "", "latency")
    histograms = report_histograms(document, name)
    load = fields.get(document, "", "load")
    if load is not None:
        load = fields.object(document, "", "load")
        measured_s = fields.number(load, "load", "measured_s")
        load_model: str | None = fields.text(load, "load", "model")
        target_rate = fields.number(load, "load", "target_rate", optional=True)
    else:
        measured_s = fields.number(document, "", "duration_s")
        load_model, target_rate = None, None
    requests = fields.get(document, "", "requests")
    if not isinstance(requests, list):
        fields.fail("requests", "a JSON array", requests)
    names: set[str] = set()
    server_errors = dict.fromkeys(SIDES, 0)
    for position, entry in enumerate(requests):
        where = f"requests[{position}]"
        names.add(fields.text(entry, where, "name"))
        statuses = fields.object(entry, where, "status")
        for side in SIDES:
            by_status = fields.object(statuses, f"{where}.status", side)
            for status, number in by_status.items():
                seen = fields.whole(number, f"{where}.status.{side}.{status}")
                if status.startswith("5"):
                    server_errors[side] += seen
    folded = fields.object(document, "", "requests_folded")
    sides: dict[str, SideFigures] = {}
    for side in SIDES:
        failed = fields.count(
            fields.object(failures, "totals.failures", side), f"totals.failures.{side}", "total"
        )
        if failed > pairs:
            fields.fail(f"totals.failures.{side}.total", f"at most totals.pairs ({pairs})", failed)
        sides[side] = SideFigures(
            latency=histograms[side],
            requests=pairs,
            failures=failed,
            server_errors=server_errors[side],
            measured_s=measured_s or 0.0,
        )
    scenario = fields.object(document, "", "scenario")
    return ReportFigures(
        path=name,
        tool_version=fields.text(fields.object(document, "", "tool"), "tool", "version"),
        scenario_name=fields.text(scenario, "scenario", "name"),
        started_at=fields.text(document, "", "started_at"),
        interrupted=fields.flag(document, "", "interrupted"),
        corrected=fields.flag(latency, "latency", "corrected"),
        load_model=load_model,
        target_rate=target_rate,
        request_names=frozenset(names),
        requests_folded=fields.count(folded, "requests_folded", "requests"),
        figures=RunFigures(sides),
    )
