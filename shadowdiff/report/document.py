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
from types import EllipsisType
from typing import Any, Final, cast

from shadowdiff import __version__
from shadowdiff.difference import SEVERITY_ORDER
from shadowdiff.errors import UsageError
from shadowdiff.pair import LoadOutcome
from shadowdiff.redaction import KeySource, Redactor, sensitive_literals
from shadowdiff.report.collect import EdgeTally, RequestTally, RunCollector
from shadowdiff.report.files import read_file_bounded, write_text_file
from shadowdiff.report.latency_finding import LatencyRules, with_latency_finding
from shadowdiff.report.schema import (
    CoverageEntry,
    DifferenceSummary,
    Histogram,
    Latency,
    LatencyComparison,
    LatencySummary,
    Load,
    Merged,
    Posture,
    Report,
    RequestEntry,
    RequestLatency,
    Resources,
    SideFailures,
    SideLatency,
    SignatureStatus,
    SourceEntry,
    SplitLatency,
    TimelineEntry,
    TlsHost,
    Totals,
)
from shadowdiff.report.sender import sender_health, sender_reason
from shadowdiff.report.signatures import NoiseThresholds, fold_signatures
from shadowdiff.report.split_finding import with_split_finding
from shadowdiff.report.state import run_state
from shadowdiff.report.thresholds import evaluate_thresholds
from shadowdiff.report.verdict import FAILING_STATUSES, decide
from shadowdiff.scenario import Scenario
from shadowdiff.spec import SIDES, Side
from shadowdiff.stats.histogram import DifferenceHistogram, LatencyHistogram
from shadowdiff.stats.latency import (
    BOOTSTRAP_RESAMPLES,
    compare_latency,
    compared_histograms,
    paired_shift,
    summarize,
    summarize_differences,
)
from shadowdiff.tls import HostTls, TlsPosture
from shadowdiff.trace import parse_traceparent

REPORT_SCHEMA: Final = "shadowdiff.report/1"


# A request's entry is a few kilobytes: a scenario of thousands of distinct requests would
# make a report of tens of megabytes. Past this many, the rest are counted together.
REQUEST_ENTRY_LIMIT: Final = 500

# Per-route latency comparisons cost a bootstrap each: only the busiest routes get one.
COMPARED_ROUTES: Final = 50
COMPARED_ROUTE_MIN_SAMPLES: Final = 100


# shadowdiff.stats.latency builds its summaries as plain dicts, with keys made from its
# quantiles; these three give them the report's types (tests/test_report_schema.py checks
# that the keys agree, so that the casts cannot drift from what is built).
def _summary(histogram: LatencyHistogram, errors: int = 0) -> LatencySummary:
    return cast(LatencySummary, summarize(histogram, errors))


def _difference_summary(histogram: DifferenceHistogram) -> DifferenceSummary:
    return cast(DifferenceSummary, summarize_differences(histogram))


def _comparison(
    baseline: LatencyHistogram,
    candidate: LatencyHistogram,
    regression_ratio: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> LatencyComparison:
    compared = compare_latency(
        baseline, candidate, regression_ratio=regression_ratio, resamples=resamples
    )
    return cast(LatencyComparison, compared)


def _request_latency(
    tally: RequestTally, compared: bool, regression_ratio: float
) -> RequestLatency:
    summaries = {
        side: _summary(tally.latency[side].histogram, sum(tally.failures[side].values()))
        for side in SIDES
    }
    latency: RequestLatency = {
        "baseline": summaries["baseline"],
        "candidate": summaries["candidate"],
        "difference": _difference_summary(tally.difference.histogram),
        "histograms": {
            side: cast(Histogram, tally.latency[side].histogram.to_dict()) for side in SIDES
        },
    }
    shift = paired_shift(tally.difference.histogram, resamples=200)
    if shift is not None:
        latency["difference"]["p50_interval"] = [shift["low_ms"], shift["high_ms"]]
    if tally.split is not None:
        latency["edge"], latency["backend"] = _split_latency([tally.split])
    if compared:
        # From the actual send where the open model kept it, as the latency finding reads it:
        # the wait for a slot both sides share would make a stalling candidate look alike.
        baseline, candidate = compared_histograms(
            (tally.latency["baseline"].histogram, tally.latency["candidate"].histogram),
            (tally.uncorrected["baseline"].histogram, tally.uncorrected["candidate"].histogram),
        )
        latency["comparison"] = _comparison(baseline, candidate, regression_ratio, resamples=200)
    return latency


def _split_latency(splits: list[EdgeTally]) -> tuple[SplitLatency, SplitLatency]:
    """Edge and backend time over `splits` (one request's, or every request's)."""
    merged = EdgeTally()
    for split in splits:
        merged.merge(split)
    return (
        {
            "baseline": _summary(merged.edge["baseline"].histogram),
            "candidate": _summary(merged.edge["candidate"].histogram),
            "difference": _difference_summary(merged.edge_difference.histogram),
        },
        {
            "baseline": _summary(merged.backend["baseline"].histogram),
            "candidate": _summary(merged.backend["candidate"].histogram),
            "difference": _difference_summary(merged.backend_difference.histogram),
        },
    )


def _overall_latency(
    tallies: list[RequestTally], collector: RunCollector, regression_ratio: float
) -> Latency:
    totals = {side: LatencyHistogram() for side in SIDES}
    uncorrected = {side: LatencyHistogram() for side in SIDES}
    difference = DifferenceHistogram()
    for tally in tallies:
        for side in SIDES:
            totals[side].merge(tally.latency[side].histogram)
            uncorrected[side].merge(tally.uncorrected[side].histogram)
        difference.merge(tally.difference.histogram)
    sides: dict[Side, SideLatency] = {}
    for side in SIDES:
        errors = sum(sum(t.failures[side].values()) for t in tallies)
        phases = collector.phases[side]
        sides[side] = {
            "total": _summary(totals[side], errors),
            "connect": _summary(phases["connect"].histogram),
            "tls": _summary(phases["tls"].histogram),
            "first_byte": _summary(phases["first_byte"].histogram),
        }
        if collector.open_model:
            sides[side]["total_uncorrected"] = _summary(uncorrected[side], errors)
    latency: Latency = {
        "corrected": collector.open_model,
        "baseline": sides["baseline"],
        "candidate": sides["candidate"],
        "difference": _difference_summary(difference),
        "comparison": _comparison(
            *compared_histograms(
                (totals["baseline"], totals["candidate"]),
                (uncorrected["baseline"], uncorrected["candidate"]),
            ),
            regression_ratio,
        ),
        # LatencyHistogram.to_dict() is the Histogram shape (tests/test_report_schema.py).
        "histograms": {side: cast(Histogram, totals[side].to_dict()) for side in SIDES},
        "backend_time_from": {
            side: dict(sorted(collector.backend_time_from[side].items())) for side in SIDES
        },
    }
    splits = [tally.split for tally in tallies if tally.split is not None]
    if splits:
        latency["edge"], latency["backend"] = _split_latency(splits)
    return latency


def _request_entry(
    tally: RequestTally,
    decided: Mapping[tuple[str, str], SignatureStatus],
    compared: bool = False,
    regression_ratio: float = 1.1,
) -> RequestEntry:
    signatures = sorted(
        tally.signatures.values(),
        key=lambda s: (SEVERITY_ORDER[s.difference.severity], -s.count, s.difference.field),
    )
    entry: RequestEntry = {
        "name": tally.request.name,
        "method": tally.request.method,
        "url": tally.request.url,
        "origin": tally.request.origin,
        "pairs": tally.pairs,
        "pairs_with_differences": _differing_pairs(tally, decided),
        "noise_samples": tally.noise_samples,
        "noise_refused": tally.noise_refused,
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
    # Where some answer to a gRPC call came: what a merge reads back from the state.
    if any(tally.grpc[side] for side in SIDES):
        entry["grpc"] = {side: dict(sorted(tally.grpc[side].items())) for side in SIDES}
    if tally.request.backend_split:
        entry["backends"] = {
            side: dict(sorted(tally.backends[side].items(), key=lambda item: -item[1]))
            for side in SIDES
        }
    return entry


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


def _differing_pairs(
    tally: RequestTally, decided: Mapping[tuple[str, str], SignatureStatus]
) -> int:
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
    resources: Resources | None = None,
    redaction_key: tuple[bytes, KeySource] | None = None,
    coverage: CoverageEntry | None = None,
    pairs_planned: int | EllipsisType | None = ...,
    shard: tuple[int, int] | None = None,
    merged: Merged | None = None,
) -> Report:
    """The report as JSON-ready data, with every secret of the scenario hidden (see
    `shadowdiff.redaction`). `redaction_key` is the fingerprint key and where it came from;
    without one, fingerprints compare within this report only. `coverage`, when the scenario
    asks for it, is checked against its `min` as a threshold. `pairs_planned` replaces the
    scenario's count (a shard plans its share); `shard` (index, count) says the run was one
    shard of the scenario, `merged` what `merge` built the report from."""
    planned = scenario.pair_count if isinstance(pairs_planned, EllipsisType) else pairs_planned
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
        with_split_finding(
            with_latency_finding(
                collector.requests[name], rules, collector.accept, collector.today
            ),
            collector.accept,
            collector.today,
        )
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
    failures: dict[Side, SideFailures] = {}
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
    thresholds = evaluate_thresholds(scenario.thresholds, tallies, differing_pairs)
    if coverage is not None and coverage["min"] is not None:
        share, minimum = coverage["share"], coverage["min"]
        thresholds.append(
            {
                "check": f"coverage >= {minimum:.0%}",
                "request": None,
                "measured": share,
                "limit": minimum,
                "unit": "",
                "passed": share is not None and share >= minimum,
                "reason": None if share is not None else "no rules in the coverage files",
                "interval": None,
            }
        )
    load_entry = _load_entry(scenario, load)
    totals: Totals = {
        "pairs": collector.pairs_done,
        "pairs_planned": planned,
        "pairs_with_differences": differing,
        "pairs_alike": collector.pairs_done - differing,
        "signatures": {
            "reported": by_status["reported"],
            "expired": by_status["expired"],
            "accepted": by_status["accepted"],
            "noise": by_status["noise"],
        },
        "signatures_by_severity": {
            "error": by_severity["error"],
            "warning": by_severity["warning"],
            "info": by_severity["info"],
        },
        "failures": failures,
        "tls_hosts": len(collector.tls_hosts),
        "tls_handshakes_failed": {
            side: sum(getattr(h, side).failure is not None for h in collector.tls_hosts)
            for side in SIDES
        },
        # Requests that may change state on the backends, sent to each side (never calibrated).
        "unsafe_pairs_sent": sum(t.pairs for t in tallies if t.request.unsafe_reason is not None),
        # Safe requests sent again on a new connection after a reused one was closed under
        # them before any answer (an idle timeout on the server's side), per side.
        "retries": {side: sum(t.retries[side] for t in tallies) for side in SIDES},
        "thresholds_failed": sum(not result["passed"] for result in thresholds),
        "load_valid": load_entry is None or load_entry["valid"],
        "load_reason": load_entry["reason"] if load_entry else None,
    }
    exit_code, reason = decide(totals, fail_on=scenario.compare.fail_on, interrupted=interrupted)
    key, key_source = redaction_key or (secrets.token_bytes(32), "ephemeral")
    redactor = redactor_for(scenario, key)
    report: Report = {
        "schema": REPORT_SCHEMA,
        "tool": {"name": "shadowdiff", "version": __version__},
        "scenario": {"name": scenario.name, "file": scenario.source},
        "targets": {
            side: {
                "address": getattr(scenario.targets, side).address,
                "ports": {
                    "http": getattr(scenario.targets, side).ports.http,
                    "https": getattr(scenario.targets, side).ports.https,
                },
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
        # Timeline.to_dict() is the TimelineEntry shape (tests/test_report_schema.py).
        "timeline": cast(TimelineEntry, collector.timeline.to_dict()),
        "requests": requests,
        # Requests left out of `requests` (past REQUEST_ENTRY_LIMIT), counted together; the
        # totals, signatures and latency above include them.
        "requests_folded": {
            "requests": len(folded),
            "pairs": sum(t.pairs for t in folded),
            "pairs_with_differences": sum(differing_pairs[t.request.name] for t in folded),
        },
        # Recorded traffic: lines read, requests replayed, skipped by reason, templates. The
        # scenario holds `SourceSummary.as_report()` dicts, typed loosely there.
        "sources": cast(list[SourceEntry], list(scenario.sources)) or None,
        "coverage": coverage,
        # The first pairs, in order (at most PAIR_RECORD_LIMIT); null when not kept.
        "pairs": collector.pair_records if collector.keep_pairs else None,
        "redaction": {
            "key": key_source,
            "key_id": redactor.key_id,
            "headers": sorted(scenario.secrets.headers),
        },
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "merged": merged,
        "state": run_state(scenario, collector, load=load, pairs_planned=planned, shard=shard),
    }
    redacted: Report = redactor.walk(report)
    return redacted


def redactor_for(scenario: Scenario, key: bytes) -> Redactor:
    """What hides this scenario's secrets in its report, with the fingerprint `key`."""
    # Requests built through the library never went through the loader's collection.
    known = scenario.secrets
    literals = set(known.literals)
    for spec in scenario.requests:
        literals |= sensitive_literals(spec.headers, known.headers)
    # A traceparent from the environment: the report records its trace id for the pair (and
    # its span id), parts of the secret that would otherwise show on their own.
    environment = dict(known.environment)
    for value, name in known.environment.items():
        if (parsed := parse_traceparent(value)) is not None:
            environment.setdefault(parsed.trace_id, name)
            environment.setdefault(parsed.span_id, name)
    return Redactor(
        dataclasses.replace(known, literals=frozenset(literals), environment=environment), key
    )


def _load_entry(scenario: Scenario, load: LoadOutcome | None) -> Load | None:
    if load is None:
        return None
    settings = scenario.load
    entry: Load = {
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
        "dropped": load.dropped,
        "sender": sender_health(load),
    }
    if load.target_rate and settings is not None:
        shortfall = 1 - load.achieved_rate / load.target_rate
        entry["shortfall"] = round(shortfall, 4)
        if shortfall > settings.rate_tolerance:
            entry["valid"] = False
            why = sender_reason(entry["sender"], scheduled=load.model in ("open", "recorded"))
            dropped = (
                f"; {load.dropped} pairs dropped, never started: no slot in flight came free "
                "before the schedule's window ended"
                if load.dropped
                else ""
            )
            entry["reason"] = (
                f"target rate not held: {load.achieved_rate:.1f} of {load.target_rate:.1f} pairs/s "
                f"({shortfall:.1%} short, more than {settings.rate_tolerance:.0%})"
                + dropped
                + (f"; {why}" if why else "")
            )
    return entry


def _posture(posture: TlsPosture) -> Posture:
    # The dataclass's fields, recursively, are Posture's keys but `days_to_expiry`, a property
    # (tests/test_report_schema.py checks that they agree).
    entry = cast(Posture, dataclasses.asdict(posture))
    entry["days_to_expiry"] = posture.days_to_expiry
    return entry


def _tls_entry(host_tls: HostTls) -> TlsHost:
    return {
        "host": host_tls.host,
        "baseline": _posture(host_tls.baseline),
        "candidate": _posture(host_tls.candidate),
        "differences": [
            {
                "kind": d.kind,
                "field": d.field,
                "baseline": d.baseline,
                "candidate": d.candidate,
                "severity": d.severity,
                "detail": d.detail,
            }
            for d in host_tls.differences
        ],
    }


# Stands for the pair records while the rest is indented; a JSON string cannot hold a raw
# line break, so `\n "pairs": "<this>"` can only be the top-level key.
_PAIRS_LATER: Final = "shadowdiff: pair records written one per line"


def report_json(report: Report) -> str:
    """The report as `--json` writes it: indented for people, but its pair records one per
    line and its `state` (for `merge`, not for reading) on one line. Python's JSON encoder
    runs in C only without indentation: 10,000 pair records indented field by field took
    seconds of CPU, nine tenths of the writing."""
    rest: dict[str, Any] = {key: value for key, value in report.items() if key != "state"}
    records = rest.get("pairs")
    if isinstance(records, list) and records:
        rest["pairs"] = _PAIRS_LATER
    text = json.dumps(rest, indent=1, ensure_ascii=False)
    if isinstance(records, list) and records:
        lines = ",\n  ".join(
            json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) for record in records
        )
        placeholder = f'\n "pairs": {json.dumps(_PAIRS_LATER)}'
        text = text.replace(placeholder, f'\n "pairs": [\n  {lines}\n ]', 1)
    if "state" not in report:
        return text + "\n"
    state = json.dumps(report["state"], ensure_ascii=False, separators=(",", ":"))
    return f'{text[:-2]},\n "state": {state}\n}}\n'


# A report of a very large run is tens of MiB; past this a file is no report to read whole.
REPORT_FILE_LIMIT_BYTES: Final = 256 * 2**20


def write_report(path: str | os.PathLike[str], report: Report) -> None:
    """Write atomically where the path allows it (see `report/files.py`)."""
    write_text_file(path, report_json(report))


def read_report(path: str | os.PathLike[str]) -> Report:
    """Read a report written by `write_report`, refusing other schemas by name."""
    raw = read_file_bounded(path, REPORT_FILE_LIMIT_BYTES, "a shadowdiff report")
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise UsageError(f"{path}: not a shadowdiff report: JSON nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise UsageError(f"{path}: not a shadowdiff report: {exc}") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != REPORT_SCHEMA:
        raise UsageError(f"{path}: schema {schema!r} is not {REPORT_SCHEMA!r}")
    # Trusted as a Report once its schema is ours: a reader checks fields no further.
    report: Report = data
    return report
