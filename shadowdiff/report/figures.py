"""A run's figures, the same from a report or from its `--pairs` lines: pairs per request,
what each side answered (statuses, failure classes), the difference signatures counted, and
each side's exact latency histogram. Pure.

Two ways to the same numbers make a report checkable: a report built by `merge` must have
exactly the figures of the union of its shards' pair lines. What the figures leave out is
what a pair line cannot say (noise decisions, acceptance, examples, timestamps), and the
latency findings the report derives from histograms rather than from pairs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from shadowdiff.report.schema import Report
from shadowdiff.spec import SIDES
from shadowdiff.stats.histogram import LatencyHistogram

Figures = dict[str, Any]
# Derived from the histograms by the report, not seen in any one pair.
_DERIVED_KINDS = frozenset({"latency"})


def _histogram(histogram: LatencyHistogram) -> dict[str, Any]:
    exact = histogram.to_dict()
    del exact["sum_squares"]  # a float sum: its last bits depend on the order of addition
    return exact


def figures_from_report(report: Report) -> Figures:
    """The figures of a report (every request listed: none folded past the entry limit)."""
    if report["requests_folded"]["requests"]:
        raise ValueError("the report folded requests: their figures are not listed")
    requests: dict[str, Any] = {}
    for entry in report["requests"]:
        requests[entry["name"]] = {
            "pairs": entry["pairs"],
            "status": {side: dict(entry["status"][side]) for side in SIDES},
            "failures": {
                side: {name: seen["count"] for name, seen in entry["failures"][side].items()}
                for side in SIDES
            },
            "differences": {
                f"{d['kind']} {d['field']}": d["count"]
                for d in entry["differences"]
                if d["kind"] not in _DERIVED_KINDS
            },
            "latency": {
                side: _histogram(
                    LatencyHistogram.from_dict(dict(entry["latency_ms"]["histograms"][side]))
                )
                for side in SIDES
            },
        }
    return {"pairs": report["totals"]["pairs"], "requests": requests}


def figures_from_pairs(lines: Iterable[dict[str, Any]]) -> Figures:
    """The figures of `pair` lines (`pair_stream.read_pair_lines`), counted as the report's
    collector counts pairs."""
    requests: dict[str, Any] = {}
    latencies: dict[str, dict[str, list[int]]] = {}
    pairs = 0
    for line in lines:
        pairs += 1
        name = line["request"]
        entry = requests.get(name)
        if entry is None:
            entry = requests[name] = {
                "pairs": 0,
                "status": {side: Counter() for side in SIDES},
                "failures": {side: Counter() for side in SIDES},
                "differences": Counter(),
            }
            latencies[name] = {side: [] for side in SIDES}
        entry["pairs"] += 1
        for side in SIDES:
            answer = line[side]
            if answer["error"] is not None:
                entry["failures"][side][answer["error"]] += 1
                continue
            entry["status"][side][str(answer["status"] or 0)] += 1
            if line["measured"]:
                latencies[name][side].append(round(answer["latency_ms"] * 1000))
        for difference in line["differences"]:
            entry["differences"][f"{difference['kind']} {difference['field']}"] += 1
    for name, entry in requests.items():
        for side in SIDES:
            entry["status"][side] = dict(sorted(entry["status"][side].items()))
            entry["failures"][side] = dict(entry["failures"][side])
        entry["differences"] = dict(entry["differences"])
        histograms = {}
        for side in SIDES:
            histogram = LatencyHistogram()
            histogram.record(latencies[name][side])
            histograms[side] = _histogram(histogram)
        entry["latency"] = histograms
    return {"pairs": pairs, "requests": requests}
