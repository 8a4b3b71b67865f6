"""Accumulate completed pairs into per-request tallies, without keeping the answers themselves.

A `RunCollector` is the engine's sink. It is pure bookkeeping: no I/O, no clock (today's date,
for acceptance expiry, is passed in). Memory grows with the number of distinct requests and
difference signatures, not with the number of pairs, except for the optional pair records.
"""

from __future__ import annotations

import datetime
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from shadowdiff.compare import Difference
from shadowdiff.compare.acceptance import AcceptanceMatch, find_acceptance
from shadowdiff.engine import Pair
from shadowdiff.observation import Observation
from shadowdiff.spec import SIDES, RequestSpec, Side

if TYPE_CHECKING:
    from shadowdiff.scenario.model import Acceptance
    from shadowdiff.tls import HostTls

# Distinct value pairs kept per difference signature, so a million pairs stay small.
EXAMPLES_PER_SIGNATURE: Final = 3
# Above this many pairs the report lists no per-pair records (they would dwarf the rest).
PAIR_RECORD_LIMIT: Final = 100_000

SignatureKey = tuple[str, str]  # (kind, field)


@dataclass
class SignatureTally:
    """Every occurrence of one (kind, field) difference on one request."""

    difference: Difference  # the first one seen
    count: int = 0  # candidate pairs showing it
    accepted: int = 0  # of those, accepted by a rule in force
    expired: int = 0  # of those, matched only by an expired rule
    acceptance: AcceptanceMatch | None = None
    noise: int = 0  # calibrated baseline pairs showing it
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, difference: Difference, pair_index: int, match: AcceptanceMatch | None) -> None:
        self.count += 1
        if match is not None:
            self.acceptance = self.acceptance or match
            if match.expired:
                self.expired += 1
            else:
                self.accepted += 1
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
    tls_probe: bool = False  # a hostname's TLS findings rather than a request's
    noise_samples: int = 0  # pairs calibrated with a second baseline answer
    statuses: dict[Side, Counter[str]] = field(
        default_factory=lambda: {side: Counter() for side in SIDES}
    )
    failures: dict[Side, Counter[str]] = field(
        default_factory=lambda: {side: Counter() for side in SIDES}
    )
    # The first message seen for each failure class, per side: what a person reads to fix it.
    failure_messages: dict[Side, dict[str, str]] = field(
        default_factory=lambda: {side: {} for side in SIDES}
    )
    latency_ns: dict[Side, array[int]] = field(
        default_factory=lambda: {side: array("q") for side in SIDES}
    )
    signatures: dict[SignatureKey, SignatureTally] = field(default_factory=dict)
    # How many pairs showed exactly this set of signatures: enough to count differing pairs
    # once noise and acceptance are decided, without a record per pair.
    combinations: Counter[frozenset[SignatureKey]] = field(default_factory=Counter)


class RunCollector:
    """Tallies per request name, plus the run-wide counters a progress display reads."""

    def __init__(
        self,
        *,
        accept: Sequence[Acceptance] = (),
        today: datetime.date | None = None,
        keep_pairs: bool = True,
    ) -> None:
        self.requests: dict[str, RequestTally] = {}
        self.pairs_done = 0
        self.pairs_with_differences = 0  # before noise and acceptance: for progress only
        self.failures: dict[Side, int] = dict.fromkeys(SIDES, 0)
        self.accept = tuple(accept)
        self.today = today or datetime.date.min
        self.keep_pairs = keep_pairs
        self.pair_records: list[dict[str, Any]] = []
        self.tls: dict[str, RequestTally] = {}  # hostname -> TLS findings
        self.tls_hosts: list[HostTls] = []

    def add_tls(self, host_tls: HostTls) -> None:
        """The TLS probe's findings for one hostname, tallied like one pair of that host."""
        spec = RequestSpec(f"TLS {host_tls.host}", "TLS", f"https://{host_tls.host}/", (), None)
        tally = self.tls[host_tls.host] = RequestTally(spec, pairs=1, tls_probe=True)
        for difference in host_tls.differences:
            match = (
                find_acceptance(self.accept, spec, difference, self.today) if self.accept else None
            )
            self._signature(tally, difference).add(difference, -1, match)
        tally.combinations[frozenset(d.signature for d in host_tls.differences)] += 1
        self.tls_hosts.append(host_tls)

    def __call__(self, pair: Pair) -> None:
        tally = self.requests.get(pair.request.name)
        if tally is None:
            tally = self.requests[pair.request.name] = RequestTally(pair.request)
        tally.pairs += 1
        self.pairs_done += 1
        for observation in (pair.baseline, pair.candidate):
            self._tally_observation(tally, observation)
        keys = frozenset(d.signature for d in pair.differences)
        tally.combinations[keys] += 1
        if pair.differences:
            self.pairs_with_differences += 1
        for difference in pair.differences:
            signature = self._signature(tally, difference)
            match = (
                find_acceptance(self.accept, pair.request, difference, self.today)
                if self.accept
                else None
            )
            signature.add(difference, pair.index, match)
        if pair.noise is not None:
            tally.noise_samples += 1
            for key in {d.signature for d in pair.noise}:
                noisy = next(d for d in pair.noise if d.signature == key)
                self._signature(tally, noisy).noise += 1
        if self.keep_pairs and len(self.pair_records) < PAIR_RECORD_LIMIT:
            self.pair_records.append(_pair_record(pair))

    def _tally_observation(self, tally: RequestTally, observation: Observation) -> None:
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

    @staticmethod
    def _signature(tally: RequestTally, difference: Difference) -> SignatureTally:
        signature = tally.signatures.get(difference.signature)
        if signature is None:
            signature = tally.signatures[difference.signature] = SignatureTally(difference)
        return signature


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
