"""The report's mergeable state: the run's `RunCollector` and the scenario settings its report
is built from, as versioned JSON (`shadowdiff.state/1`). Pure.

A report's figures are not all mergeable (percentiles, requests folded past a limit,
differing pairs that depend on which signatures are noise once every pair is counted), but
the collector they are built from merges exactly, as `--workers` already does. So every
report carries its collector, and `merge` rebuilds the report from the merged collectors
with the code `run` uses (thresholds and the verdict included).

Reading it back is `state_read.py`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from shadowdiff.pair import LoadOutcome
from shadowdiff.report.collect import PHASES, EdgeTally, RequestTally, RunCollector
from shadowdiff.scenario import Scenario
from shadowdiff.spec import SIDES
from shadowdiff.stats.histogram import SIGNIFICANT_DIGITS, DifferenceHistogram, LatencyHistogram

STATE_SCHEMA: Final = "shadowdiff.state/1"


class StateError(ValueError):
    """A report's state that cannot be read: the message names where."""


def _histogram(histogram: LatencyHistogram) -> dict[str, Any] | None:
    # Null when empty: most are (the uncorrected figures outside the open model, a side
    # that only failed), and a state holds six per request.
    # Unit and precision are said once for the whole state (`histograms`).
    if not histogram.count:
        return None
    exact = histogram.to_dict()
    del exact["unit"], exact["significant_digits"]
    return exact


def _tally_state(tally: RequestTally, order: int = 0) -> dict[str, Any]:
    tally.flush()
    spec = tally.request
    state: dict[str, Any] = {
        # Its place in the scenario: a merge lists requests in file order even when the
        # first report never sent some of them.
        "order": order,
        "request": {
            "name": spec.name,
            "method": spec.method,
            "url": spec.url,
            "origin": spec.origin,
            # Headers and body are not kept (they may hold secrets): what the report needs
            # of them is whether the request may change state on the backends.
            "unsafe": spec.unsafe_reason is not None,
            "backend_split": spec.backend_split,
        },
        "pairs": tally.pairs,
        "tls_probe": tally.tls_probe,
        "noise_samples": tally.noise_samples,
        "noise_refused": tally.noise_refused,
        "statuses": {side: sorted(tally.statuses[side].items()) for side in SIDES},
        "failures": {side: dict(tally.failures[side]) for side in SIDES},
        "failure_messages": {side: dict(tally.failure_messages[side]) for side in SIDES},
        "retries": {side: tally.retries[side] for side in SIDES},
        "latency": {side: _histogram(tally.latency[side].histogram) for side in SIDES},
        "uncorrected": {side: _histogram(tally.uncorrected[side].histogram) for side in SIDES},
        "difference": _difference_state(tally.difference.histogram),
        "signatures": [
            {
                # The difference's own fields beside its examples, in one object: the report's
                # redactor fingerprints the values and the examples of a sensitive field there.
                **dataclasses.asdict(signature.difference),
                "count": signature.count,
                "accepted": signature.accepted,
                "expired": signature.expired,
                "acceptance": None
                if signature.acceptance is None
                else {
                    "rule": signature.acceptance.rule,
                    "reason": signature.acceptance.reason,
                    "until": None
                    if signature.acceptance.until is None
                    else signature.acceptance.until.isoformat(),
                    "expired": signature.acceptance.expired,
                },
                "noise": signature.noise,
                "examples": signature.examples,
            }
            for signature in tally.signatures.values()
        ],
        "combinations": [
            [sorted([kind, field] for kind, field in keys), count]
            for keys, count in tally.combinations.items()
        ],
    }
    # Only where there is something: a report of thousands of requests stays small.
    if any(tally.backends[side] for side in SIDES):
        state["backends"] = {side: dict(tally.backends[side]) for side in SIDES}
    if any(tally.grpc[side] for side in SIDES):
        state["grpc"] = {side: dict(tally.grpc[side]) for side in SIDES}
    if tally.split is not None:
        state["edge"] = _edge_state(tally.split)
    return state


def _difference_state(histogram: DifferenceHistogram) -> dict[str, Any]:
    return {
        "faster": _histogram(histogram.faster),
        "slower": _histogram(histogram.slower),
        "zero": histogram.zero,
    }


def _edge_state(split: EdgeTally) -> dict[str, Any]:
    split.flush()
    return {
        "edge": {side: _histogram(split.edge[side].histogram) for side in SIDES},
        "backend": {side: _histogram(split.backend[side].histogram) for side in SIDES},
        "edge_difference": _difference_state(split.edge_difference.histogram),
        "backend_difference": _difference_state(split.backend_difference.histogram),
    }


def run_state(
    scenario: Scenario,
    collector: RunCollector,
    *,
    load: LoadOutcome | None,
    pairs_planned: int | None,
    shard: tuple[int, int] | None,
) -> dict[str, Any]:
    """What `merge` needs to build this report again from several: JSON-ready, and redacted
    with the rest of the report by `build_report`."""
    collector.flush()
    names = {name: i for i, name in enumerate(dict.fromkeys(s.name for s in scenario.requests))}
    for name in collector.requests:
        names.setdefault(name, len(names))  # a followed log's requests are in no file
    return {
        "schema": STATE_SCHEMA,
        # Buckets of another precision would add up to nonsense: a reader checks these.
        "histograms": {"unit": "us", "significant_digits": SIGNIFICANT_DIGITS},
        "shard": None if shard is None else {"index": shard[0], "count": shard[1]},
        "pairs_planned": pairs_planned,
        "today": collector.today.isoformat(),
        "scenario": {
            "name": scenario.name,
            "source": scenario.source,
            "targets": {
                side: {
                    "address": getattr(scenario.targets, side).address,
                    "ports": getattr(scenario.targets, side).ports.model_dump(),
                }
                for side in SIDES
            },
            "compare": scenario.compare.model_dump(mode="json", by_alias=True),
            # As written: the settings' validation refuses some defaults spelled out (speed
            # without pace: recorded), and merge validates them again.
            "load": None
            if scenario.load is None
            else scenario.load.model_dump(mode="json", exclude_unset=True),
            "thresholds": [t.model_dump(mode="json") for t in scenario.thresholds],
            "accept": [a.model_dump(mode="json") for a in scenario.accept],
            "redact_headers": sorted(scenario.secrets.headers),
            "sources": list(scenario.sources),
        },
        "load": None if load is None else dataclasses.asdict(load),
        "collector": {
            "pairs_done": collector.pairs_done,
            "pairs_with_differences": collector.pairs_with_differences,
            "failures": dict(collector.failures),
            "open_model": collector.open_model,
            "backend_time_from": {side: dict(collector.backend_time_from[side]) for side in SIDES},
            "timeline": collector.timeline.to_dict(),
            "phases": {
                side: {
                    phase: _histogram(collector.phases[side][phase].histogram) for phase in PHASES
                }
                for side in SIDES
            },
            # Scenario order, as the report lists them.
            "requests": [
                _tally_state(collector.requests[name], order)
                for name, order in names.items()
                if name in collector.requests
            ],
            "tls": [_tally_state(tally) for tally in collector.tls.values()],
        },
    }
