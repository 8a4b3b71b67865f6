"""Accumulate completed pairs into per-request tallies, without keeping the answers themselves.

A `RunCollector` is the engine's sink. It is pure bookkeeping: no I/O, no clock.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from shadowdiff.compare import Difference
from shadowdiff.engine import Pair
from shadowdiff.observation import Observation
from shadowdiff.spec import SIDES, RequestSpec, Side

# Distinct value pairs kept per difference signature, so a million pairs stay small.
EXAMPLES_PER_SIGNATURE: Final = 3


@dataclass
class SignatureTally:
    """Every occurrence of one (kind, field) difference on one request."""

    difference: Difference  # the first one seen
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, difference: Difference, pair_index: int) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES_PER_SIGNATURE and not any(
            example["baseline"] == difference.baseline
            and example["candidate"] == difference.candidate
            for example in self.examples
        ):
            self.examples.append(
                {
                    "pair": pair_index,
                    "baseline": difference.baseline,
                    "candidate": difference.candidate,
                }
            )


@dataclass
class RequestTally:
    request: RequestSpec
    pairs: int = 0
    pairs_with_differences: int = 0
    statuses: dict[Side, Counter[str]] = field(
        default_factory=lambda: {side: Counter() for side in SIDES}
    )
    failures: dict[Side, Counter[str]] = field(
        default_factory=lambda: {side: Counter() for side in SIDES}
    )
    latency_ns: dict[Side, array[int]] = field(
        default_factory=lambda: {side: array("q") for side in SIDES}
    )
    # The first message seen for each failure class, per side: what a person reads to fix it.
    failure_messages: dict[Side, dict[str, str]] = field(
        default_factory=lambda: {side: {} for side in SIDES}
    )
    signatures: dict[tuple[str, str], SignatureTally] = field(default_factory=dict)


def outcome_label(observation: Observation) -> str:
    """`200` or the failure class, as tallied and shown."""
    if observation.failure:
        return observation.failure.error_class
    return str(observation.status)


class RunCollector:
    """Tallies per request name, plus the run-wide counters a progress display reads."""

    def __init__(self, *, keep_pairs: bool = True) -> None:
        self.requests: dict[str, RequestTally] = {}
        self.pairs_done = 0
        self.pairs_with_differences = 0
        self.failures: dict[Side, int] = dict.fromkeys(SIDES, 0)
        self.keep_pairs = keep_pairs
        self.pair_records: list[dict[str, Any]] = []

    def __call__(self, pair: Pair) -> None:
        tally = self.requests.get(pair.request.name)
        if tally is None:
            tally = self.requests[pair.request.name] = RequestTally(pair.request)
        tally.pairs += 1
        self.pairs_done += 1
        for observation in (pair.baseline, pair.candidate):
            side = observation.side
            if observation.failure:
                tally.failures[side][observation.failure.error_class] += 1
                tally.failure_messages[side].setdefault(
                    observation.failure.error_class, observation.failure.message
                )
                self.failures[side] += 1
            else:
                tally.statuses[side][str(observation.status)] += 1
                tally.latency_ns[side].append(observation.timings.total_ns)
        if pair.differences:
            tally.pairs_with_differences += 1
            self.pairs_with_differences += 1
        for difference in pair.differences:
            signature = tally.signatures.get(difference.signature)
            if signature is None:
                signature = tally.signatures[difference.signature] = SignatureTally(difference)
            signature.add(difference, pair.index)
        if self.keep_pairs:
            self.pair_records.append(_pair_record(pair))


def _side_record(observation: Observation) -> dict[str, Any]:
    return {
        "status": observation.status,
        "error": observation.failure.error_class if observation.failure else None,
        "total_ms": round(observation.timings.total_ns / 1e6, 3),
    }


def _pair_record(pair: Pair) -> dict[str, Any]:
    return {
        "index": pair.index,
        "request": pair.request.name,
        "baseline": _side_record(pair.baseline),
        "candidate": _side_record(pair.candidate),
        "differences": [[d.kind, d.field] for d in pair.differences],
    }
