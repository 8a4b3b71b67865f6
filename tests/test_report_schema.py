"""docs/report-format.md and shadowdiff/report/schema.py name the same fields, and the plain
dicts that the report module casts to those types have exactly their keys."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Final

import pytest

from shadowdiff.report.schema import (
    Certificate,
    DifferenceSummary,
    Histogram,
    Latency,
    LatencySummary,
    Outcome,
    Posture,
    QuantileComparison,
    QuantileComparisons,
    Report,
    RequestEntry,
    Signature,
    SniOutcome,
    SourceEntry,
    TimelineEntry,
    TooFewSamples,
    Totals,
)
from shadowdiff.sources import SourceSummary
from shadowdiff.stats.histogram import DifferenceHistogram, LatencyHistogram
from shadowdiff.stats.latency import compare_latency, summarize, summarize_differences
from shadowdiff.stats.timeline import Timeline
from shadowdiff.tls.certificate import CertificateInfo
from shadowdiff.tls.probe import DefaultCertificate, TlsPosture

DOC: Final = Path(__file__).parents[1] / "docs" / "report-format.md"
SIDES: Final = ("baseline", "candidate")


def _keys(typed_dict: Any) -> set[str]:
    return set(typed_dict.__required_keys__ | typed_dict.__optional_keys__)


def _section(heading: str | None) -> str:
    """The text under `## heading`, up to the next heading; None: before the first one."""
    text = DOC.read_text(encoding="utf-8")
    if heading is None:
        return text.split("\n## ", 1)[0]
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _documented(section: str) -> list[str]:
    """Every name in backticks in the first column of the section's table."""
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([^`]+)`", line.split("|")[1])
    return names


def _fields(names: list[str], prefix: str = "") -> set[str]:
    """The first part of each name under `prefix` (`totals.failures.<side>` -> `failures`),
    with `<side>` read as both sides; names continuing the one before (`.tls`) are parts."""
    fields: set[str] = set()
    for name in names:
        if not name.startswith(prefix) or name.startswith("."):
            continue
        first = re.split(r"[.\[]", name[len(prefix) :], maxsplit=1)[0]
        fields |= set(SIDES) if first == "<side>" else {first}
    return fields


def test_doc_says_the_typed_dicts_are_its_machine_readable_form() -> None:
    assert "shadowdiff/report/schema.py" in _section(None)


def test_report_fields_in_doc_and_typed_dict_match() -> None:
    assert _fields(_documented(_section(None))) == _keys(Report)


def test_totals_fields_in_doc_and_typed_dict_match() -> None:
    assert _fields(_documented(_section(None)), "totals.") == _keys(Totals)


def test_outcome_fields_in_doc_and_typed_dict_match() -> None:
    assert _fields(_documented(_section(None)), "outcome.") == _keys(Outcome)


@pytest.mark.parametrize(
    ("heading", "typed_dict"),
    [
        ("`signatures[]`", Signature),
        ("`requests[]`", RequestEntry),
        ("`tls[]`", Posture),
        ("`latency`", Latency),
        ("`timeline`", TimelineEntry),
    ],
    ids=["signatures", "requests", "tls", "latency", "timeline"],
)
def test_section_fields_in_doc_and_typed_dict_match(heading: str, typed_dict: Any) -> None:
    assert _fields(_documented(_section(heading))) == _keys(typed_dict)


def _histogram(values_us: range) -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.record(list(values_us))
    return histogram


def test_latency_summary_has_the_typed_keys() -> None:
    assert set(summarize(_histogram(range(1000, 5000, 10)), errors=2)) == _keys(LatencySummary)
    assert set(summarize(LatencyHistogram())) == LatencySummary.__required_keys__


def test_difference_summary_has_the_typed_keys() -> None:
    difference = DifferenceHistogram()
    difference.record([-300, 200, 1000])
    # `p50_interval` is added by the report, from 20 pairs on.
    assert set(summarize_differences(difference)) | {"p50_interval"} == _keys(DifferenceSummary)
    assert set(summarize_differences(DifferenceHistogram())) == {"count"}


def test_latency_comparison_has_the_typed_keys() -> None:
    baseline, candidate = _histogram(range(1000, 5000, 10)), _histogram(range(1100, 5100, 10))
    compared = compare_latency(baseline, candidate, resamples=20)
    assert set(compared) == _keys(QuantileComparisons)
    assert all(set(result) == _keys(QuantileComparison) for result in compared.values())
    too_few = compare_latency(_histogram(range(1000, 1005)), candidate)
    assert set(too_few) == _keys(TooFewSamples)


def test_histogram_to_dict_has_the_typed_keys() -> None:
    assert set(_histogram(range(1000, 2000)).to_dict()) == _keys(Histogram)


@pytest.mark.parametrize(
    ("dataclass", "typed_dict", "added"),
    [
        (TlsPosture, Posture, {"days_to_expiry"}),
        (CertificateInfo, Certificate, set()),
        (DefaultCertificate, SniOutcome, set()),
    ],
    ids=["posture", "certificate", "sni"],
)
def test_tls_dataclass_fields_are_the_typed_keys(
    dataclass: Any, typed_dict: Any, added: set[str]
) -> None:
    """The report writes these dataclasses with `dataclasses.asdict` (and `days_to_expiry`)."""
    fields = {field.name for field in dataclasses.fields(dataclass)}
    assert fields | added == _keys(typed_dict)


def test_timeline_to_dict_has_the_typed_keys() -> None:
    timeline = Timeline()
    timeline.add(1_700_000_000 * 10**9, (True, False), (False, True))
    assert set(timeline.to_dict()) == _keys(TimelineEntry)
    assert set(Timeline().to_dict()) == _keys(TimelineEntry)


def test_source_summary_has_the_typed_keys() -> None:
    assert set(SourceSummary("access.log").as_report()) == _keys(SourceEntry)
