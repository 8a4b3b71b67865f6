"""The versioned JSON report: built from a `RunCollector`, written by `run`, read by `report`.

The schema is documented in docs/report-format.md; bump `REPORT_SCHEMA` on any change that a
reader of the previous version would misread. Building is pure; only write/read touch files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from shadowdiff import __version__
from shadowdiff.difference import SEVERITY_ORDER
from shadowdiff.errors import UsageError
from shadowdiff.pair import LoadOutcome
from shadowdiff.redaction import KeySource, Redactor, sensitive_literals
from shadowdiff.report.collect import PHASES, RequestTally, RunCollector
from shadowdiff.report.latency_finding import LatencyRules, with_latency_finding
from shadowdiff.report.signatures import NoiseThresholds, fold_signatures
from shadowdiff.report.thresholds import evaluate_thresholds
from shadowdiff.report.verdict import FAILING_STATUSES, decide
from shadowdiff.scenario import Scenario
from shadowdiff.spec import SIDES
from shadowdiff.stats.histogram import DifferenceHistogram, LatencyHistogram
from shadowdiff.stats.latency import (
    compare_latency,
    paired_shift,
    summarize,
    summarize_differences,
)
from shadowdiff.tls import HostTls, TlsPosture

REPORT_SCHEMA: Final = "shadowdiff.report/1"


# A request's entry is a few kilobytes: a scenario of thousands of distinct requests would
# make a report of tens of megabytes. Past this many, the rest are counted together.
REQUEST_ENTRY_LIMIT: Final = 500

# Per-route latency comparisons cost a bootstrap each: only the busiest routes get one.
COMPARED_ROUTES: Final = 50
COMPARED_ROUTE_MIN_SAMPLES: Final = 100


def _request_latency(
    tally: RequestTally, compared: bool, regression_ratio: float
) -> dict[str, Any]:
    latency: dict[str, Any] = {
        side: summarize(tally.latency[side].histogram, sum(tally.failures[side].values()))
        for side in SIDES
    }
    latency["difference"] = summarize_differences(tally.difference.histogram)
    shift = paired_shift(tally.difference.histogram, resamples=200)
    if shift is not None:
        latency["difference"]["p50_interval"] = [shift["low_ms"], shift["high_ms"]]
    if compared:
        latency["comparison"] = compare_latency(
            tally.latency["baseline"].histogram,
            tally.latency["candidate"].histogram,
            regression_ratio=regression_ratio,
            resamples=200,
        )
    return latency


def _overall_latency(
    tallies: list[RequestTally], collector: RunCollector, regression_ratio: float
) -> dict[str, Any]:
    totals = {side: LatencyHistogram() for side in SIDES}
    uncorrected = {side: LatencyHistogram() for side in SIDES}
    difference = DifferenceHistogram()
    for tally in tallies:
        for side in SIDES:
            totals[side].merge(tally.latency[side].histogram)
            uncorrected[side].merge(tally.uncorrected[side].histogram)
        difference.merge(tally.difference.histogram)
    overall: dict[str, Any] = {"corrected": collector.open_model}
    for side in SIDES:
        errors = sum(sum(t.failures[side].values()) for t in tallies)
        phases = {phase: summarize(collector.phases[side][phase].histogram) for phase in PHASES}
        overall[side] = {"total": summarize(totals[side], errors), **phases}
        if collector.open_model:
            overall[side]["total_uncorrected"] = summarize(uncorrected[side], errors)
    overall["difference"] = summarize_differences(difference)
    overall["comparison"] = compare_latency(
        totals["baseline"], totals["candidate"], regression_ratio=regression_ratio
    )
    overall["histograms"] = {side: totals[side].to_dict() for side in SIDES}
    return overall


def _request_entry(
    tally: RequestTally,
    decided: Mapping[tuple[str, str], str],
    compared: bool = False,
    regression_ratio: float = 1.1,
) -> dict[str, Any]:
    signatures = sorted(
        tally.signatures.values(),
        key=lambda s: (SEVERITY_ORDER[s.difference.severity], -s.count, s.difference.field),
    )
    return {
        "name": tally.request.name,
        "method": tally.request.method,
        "url": tally.request.url,
        "pairs": tally.pairs,
        "pairs_with_differences": _differing_pairs(tally, decided),
        "noise_samples": tally.noise_samples,
        "status": {
            side: {str(status): count for status, count in sorted(tally.statuses[side].items())}
            for side in SIDES
        },
        "failures": {
            side: {
                error_class: {"count": count, "message": tally.failure_messages[side][error_class]}
                for error_class, count in tally.failures[side].items()
            }
            for side in SIDES
        },
        "latency_ms": _request_latency(tally, compared, regression_ratio),
        "differences": [
            {
                "kind": s.difference.kind,
                "field": s.difference.field,
                "severity": s.difference.severity,
                "status": decided[key],
                "count": s.count,
                "noise": s.noise,
                "examples": s.examples,
            }
            for s in signatures
            if s.count and (key := s.difference.signature) in decided
        ],
    }


def _shown_requests(tallies: list[RequestTally], differing_pairs: Mapping[str, int]) -> set[str]:
    """The requests that get an entry of their own: all of them up to REQUEST_ENTRY_LIMIT,
    else those with differences first, then those with failures, then the busiest."""
    if len(tallies) <= REQUEST_ENTRY_LIMIT:
        return {t.request.name for t in tallies}
    ranked = sorted(
        tallies,
        key=lambda t: (
            differing_pairs[t.request.name] == 0,
            not any(t.failures[side] for side in SIDES),
            -t.pairs,
        ),
    )
    return {t.request.name for t in ranked[:REQUEST_ENTRY_LIMIT]}


def _differing_pairs(tally: RequestTally, decided: Mapping[tuple[str, str], str]) -> int:
    """Pairs with at least one difference that is neither noise nor accepted."""
    return sum(
        count
        for keys, count in tally.combinations.items()
        if any(decided.get(key) in FAILING_STATUSES for key in keys)
    )


def build_report(
    scenario: Scenario,
    collector: RunCollector,
    *,
    started_at: str,
    duration_s: float,
    interrupted: bool = False,
    load: LoadOutcome | None = None,
    resources: dict[str, Any] | None = None,
    redaction_key: tuple[bytes, KeySource] | None = None,
) -> dict[str, Any]:
    """The report as JSON-ready data, with every secret of the scenario hidden (see
    `shadowdiff.redaction`). `redaction_key` is the fingerprint key and where it came from;
    without one, fingerprints compare within this report only."""
    noise = scenario.compare.noise
    collector.flush()
    rules = LatencyRules(
        scenario.compare.latency_regression_ratio,
        scenario.compare.latency_min_difference_ms,
        scenario.compare.latency_severity,
    )
    # Scenario order; recorded requests of one route template share a name and a tally.
    names = dict.fromkeys(spec.name for spec in scenario.requests)
    tallies = [
        with_latency_finding(collector.requests[name], rules, collector.accept, collector.today)
        for name in names
        if name in collector.requests
    ]
    signatures, decided = fold_signatures(
        [*tallies, *collector.tls.values()], NoiseThresholds(noise.relative, noise.absolute)
    )
    regression_ratio = scenario.compare.latency_regression_ratio
    busiest = sorted(
        (
            t
            for t in tallies
            if min(t.latency[s].histogram.count for s in SIDES) >= COMPARED_ROUTE_MIN_SAMPLES
        ),
        key=lambda t: -t.pairs,
    )[:COMPARED_ROUTES]
    compared_names = {t.request.name for t in busiest}
    differing_pairs = {
        t.request.name: _differing_pairs(t, decided[t.request.name]) for t in tallies
    }
    shown = _shown_requests(tallies, differing_pairs)
    # Scenario order, not completion order: the report reads like the file it came from.
    requests = [
        _request_entry(
            t, decided[t.request.name], t.request.name in compared_names, regression_ratio
        )
        for t in tallies
        if t.request.name in shown
    ]
    folded = [t for t in tallies if t.request.name not in shown]
    failures: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        by_class: Counter[str] = Counter()
        for tally in tallies:
            by_class.update(tally.failures[side])
        failures[side] = {"total": sum(by_class.values()), "by_class": dict(by_class)}
    by_status = Counter(line["status"] for line in signatures)
    by_severity = Counter(
        line["severity"] for line in signatures if line["status"] in FAILING_STATUSES
    )
    differing = sum(differing_pairs.values())
    totals = {
        "pairs": collector.pairs_done,
        "pairs_planned": scenario.pair_count,
        "pairs_with_differences": differing,
        "pairs_alike": collector.pairs_done - differing,
        "signatures": {
            status: by_status.get(status, 0)
            for status in ("reported", "expired", "accepted", "noise")
        },
        "signatures_by_severity": {s: by_severity.get(s, 0) for s in SEVERITY_ORDER},
        "failures": failures,
        "tls_hosts": len(collector.tls_hosts),
        # Requests that may change state on the backends, sent to each side (never calibrated).
        "unsafe_pairs_sent": sum(t.pairs for t in tallies if t.request.unsafe_reason is not None),
        # Safe requests sent again on a new connection after a reused one was closed under
        # them before any answer (an idle timeout on the server's side), per side.
        "retries": {side: sum(t.retries[side] for t in tallies) for side in SIDES},
    }
    thresholds = evaluate_thresholds(scenario.thresholds, tallies, differing_pairs)
    totals["thresholds_failed"] = sum(not result["passed"] for result in thresholds)
    load_entry = _load_entry(scenario, load)
    totals["load_valid"] = load_entry is None or load_entry["valid"]
    totals["load_reason"] = load_entry["reason"] if load_entry else None
    exit_code, reason = decide(totals, fail_on=scenario.compare.fail_on, interrupted=interrupted)
    report = {
        "schema": REPORT_SCHEMA,
        "tool": {"name": "shadowdiff", "version": __version__},
        "scenario": {"name": scenario.name, "file": scenario.source},
        "targets": {
            side: {
                "address": getattr(scenario.targets, side).address,
                "ports": getattr(scenario.targets, side).ports.model_dump(),
            }
            for side in SIDES
        },
        "started_at": started_at,
        "duration_s": round(duration_s, 3),
        "interrupted": interrupted,
        "fail_on": scenario.compare.fail_on,
        "outcome": {"exit_code": int(exit_code), "reason": reason},
        "totals": totals,
        "signatures": signatures,
        "tls": [_tls_entry(host_tls) for host_tls in collector.tls_hosts],
        "load": load_entry,
        "resources": resources,
        "thresholds": thresholds,
        "latency": _overall_latency(tallies, collector, regression_ratio),
        "requests": requests,
        # Requests left out of `requests` (past REQUEST_ENTRY_LIMIT), counted together; the
        # totals, signatures and latency above include them.
        "requests_folded": {
            "requests": len(folded),
            "pairs": sum(t.pairs for t in folded),
            "pairs_with_differences": sum(differing_pairs[t.request.name] for t in folded),
        },
        # Recorded traffic: lines read, requests replayed, skipped by reason, templates.
        "sources": list(scenario.sources) or None,
        # The first pairs, in order (at most PAIR_RECORD_LIMIT); null when not kept.
        "pairs": collector.pair_records if collector.keep_pairs else None,
    }
    key, key_source = redaction_key or (secrets.token_bytes(32), "ephemeral")
    redactor = redactor_for(scenario, key)
    report["redaction"] = {
        "key": key_source,
        "key_id": redactor.key_id,
        "headers": sorted(scenario.secrets.headers),
    }
    redacted: dict[str, Any] = redactor.walk(report)
    return redacted


def redactor_for(scenario: Scenario, key: bytes) -> Redactor:
    """What hides this scenario's secrets in its report, with the fingerprint `key`."""
    # Requests built through the library never went through the loader's collection.
    known = scenario.secrets
    literals = set(known.literals)
    for spec in scenario.requests:
        literals |= sensitive_literals(spec.headers, known.headers)
    return Redactor(dataclasses.replace(known, literals=frozenset(literals)), key)


def _load_entry(scenario: Scenario, load: LoadOutcome | None) -> dict[str, Any] | None:
    if load is None:
        return None
    settings = scenario.load
    entry: dict[str, Any] = {
        "model": load.model,
        "pairs": load.pairs,
        "elapsed_s": round(load.elapsed_s, 3),
        "measured_s": round(load.measured_s, 3),
        "warmup_s": settings.warmup_s if settings else 0.0,
        "target_rate": None if load.target_rate is None else round(load.target_rate, 2),
        "achieved_rate": round(load.achieved_rate, 2),
        "valid": True,
        "reason": None,
        "interrupted": load.interrupted,
    }
    if load.target_rate and settings is not None:
        shortfall = 1 - load.achieved_rate / load.target_rate
        entry["shortfall"] = round(shortfall, 4)
        if shortfall > settings.rate_tolerance:
            entry["valid"] = False
            entry["reason"] = (
                f"target rate not held: {load.achieved_rate:.1f} of {load.target_rate:.1f} pairs/s "
                f"({shortfall:.1%} short, more than {settings.rate_tolerance:.0%})"
            )
    return entry


def _posture(posture: TlsPosture) -> dict[str, Any]:
    entry = dataclasses.asdict(posture)
    entry["days_to_expiry"] = posture.days_to_expiry
    return entry


def _tls_entry(host_tls: HostTls) -> dict[str, Any]:
    return {
        "host": host_tls.host,
        "baseline": _posture(host_tls.baseline),
        "candidate": _posture(host_tls.candidate),
        "differences": [dataclasses.asdict(d) for d in host_tls.differences],
    }


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write atomically, so an interrupted write never leaves half a report behind."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.partial")
    temporary.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(target)


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a report written by `write_report`, refusing other schemas by name."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a shadowdiff report: {exc}") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != REPORT_SCHEMA:
        raise UsageError(f"{path}: schema {schema!r} is not {REPORT_SCHEMA!r}")
    report: dict[str, Any] = data
    return report
