"""Accumulate completed pairs into per-request tallies, without keeping the answers themselves.

A `RunCollector` is the engine's sink. It is pure bookkeeping: no I/O, and no clock but one
reading when it is made (where the pairs' `perf_counter` timings stand on the wall clock, to
place each pair on the timeline; today's date, for acceptance expiry, is passed in). Memory
grows with the number of distinct requests and difference signatures, not with the number of
pairs: latencies go into histograms (buffered, then recorded in vectorised batches), the
timeline into at most `MAX_INTERVALS` intervals, and only the first pair records are kept.
"""

from __future__ import annotations

import datetime
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from shadowdiff.backend_time import EdgeSplit, edge_split
from shadowdiff.compare import Difference
from shadowdiff.compare.acceptance import AcceptanceMatch, find_acceptance
from shadowdiff.grpc import answer_outcome
from shadowdiff.metrics.series import Ruling
from shadowdiff.observation import Observation
from shadowdiff.pair import Pair
from shadowdiff.report.schema import PairRecord, PairSide, RequestExample
from shadowdiff.spec import SIDES, RequestSpec, Side
from shadowdiff.stats.histogram import DifferenceHistogram, LatencyHistogram
from shadowdiff.stats.timeline import Timeline
from shadowdiff.trace import parse_traceparent

if TYPE_CHECKING:
    from shadowdiff.metrics.board import Board
    from shadowdiff.scenario.model import Acceptance
    from shadowdiff.tls import HostTls

# Distinct value pairs kept per difference signature, so a million pairs stay small.
EXAMPLES_PER_SIGNATURE: Final = 3
# Only this many pair records are kept for the report (the first ones).
PAIR_RECORD_LIMIT: Final = 10_000
# Latencies wait in a buffer and are recorded this many at a time (numpy per batch).
_BATCH: Final = 4096
# Distinct backend services counted per side of a `backend_split` request; more are pooled, so
# that a hostile echo naming a new service per answer cannot grow memory.
BACKENDS_PER_REQUEST: Final = 32
OTHER_BACKENDS: Final = "(other services)"
# Distinct gRPC outcomes counted per side of a gRPC request (`shadowdiff.grpc.answer_outcome`):
# a code without a name or a health value is one each, so a hostile server is bounded here too.
GRPC_OUTCOMES_PER_REQUEST: Final = 32
OTHER_GRPC_OUTCOMES: Final = "(other outcomes)"
PHASES: Final = ("connect", "tls", "first_byte")
# Distinct (kind, field) signatures kept per request. Past it, a new field is counted under
# one signature per kind and severity, its example naming the field: a server that names a
# header, a cookie or a JSON key afresh on every answer (an ID-keyed map) would otherwise add
# signatures with every pair, and memory and the report would grow with the run.
SIGNATURES_PER_REQUEST: Final = 100

SignatureKey = tuple[str, str]  # (kind, field)
_ALIKE: Final[frozenset[SignatureKey]] = frozenset()  # the signatures of a pair alike
# Either kind of histogram; a buffer's type says which, so that merging needs no cast.
HistogramT = TypeVar("HistogramT", LatencyHistogram, DifferenceHistogram)


class Buffered(Generic[HistogramT]):
    """A histogram with a small buffer in front: appending is cheap, recording is batched."""

    __slots__ = ("histogram", "pending")

    def __init__(self, histogram: HistogramT) -> None:
        self.histogram: HistogramT = histogram
        self.pending: array[int] = array("q")

    def add(self, value_us: int) -> None:
        self.pending.append(value_us)
        if len(self.pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.histogram.record(self.pending)
            self.pending = array("q")


@dataclass
class SignatureTally:
    """Every occurrence of one (kind, field) difference on one request."""

    difference: Difference  # the first one seen
    count: int = 0  # candidate pairs showing it
    accepted: int = 0  # of those, accepted by a rule in force
    expired: int = 0  # of those, matched only by an expired rule
    acceptance: AcceptanceMatch | None = None
    noise: int = 0  # calibrated baseline pairs showing it
    examples: list[RequestExample] = field(default_factory=list)

    def add(
        self,
        difference: Difference,
        pair_index: int,
        match: AcceptanceMatch | None,
        trace_id: str | None = None,
    ) -> None:
        self.count += 1
        if match is not None:
            self.acceptance = self.acceptance or match
            if match.expired:
                self.expired += 1
            else:
                self.accepted += 1
        self.add_example(
            difference.baseline, difference.candidate, pair_index, trace_id, difference.detail
        )

    def add_example(
        self,
        baseline: str | None,
        candidate: str | None,
        pair_index: int,
        trace_id: str | None,
        detail: str | None = None,
    ) -> None:
        if len(self.examples) < EXAMPLES_PER_SIGNATURE and not any(
            example["baseline"] == baseline and example["candidate"] == candidate
            for example in self.examples
        ):
            example: RequestExample = {
                "pair": pair_index,
                "trace_id": trace_id,
                "baseline": baseline,
                "candidate": candidate,
            }
            if detail is not None:
                example["diff"] = detail
            self.examples.append(example)

    def merge(self, other: SignatureTally) -> None:
        self.count += other.count
        self.accepted += other.accepted
        self.expired += other.expired
        self.noise += other.noise
        self.acceptance = self.acceptance or other.acceptance
        # The earliest pairs of the run, whatever order the shares are merged in: each share
        # kept the first distinct values it saw, so the run's first ones are among them.
        combined = sorted([*self.examples, *other.examples], key=lambda example: example["pair"])
        self.examples = []
        for example in combined:
            self.add_example(
                example["baseline"],
                example["candidate"],
                example["pair"],
                example.get("trace_id"),
                example.get("diff"),
            )


@dataclass
class EdgeTally:
    """One request's answers that said their backend time: the entry point's own time (edge)
    and the backend's, per side, and candidate minus baseline per pair where both said it.
    Made for a request when its first such answer arrives, so that requests without any cost
    nothing."""

    edge: dict[Side, Buffered[LatencyHistogram]] = field(
        default_factory=lambda: {side: Buffered(LatencyHistogram()) for side in SIDES}
    )
    backend: dict[Side, Buffered[LatencyHistogram]] = field(
        default_factory=lambda: {side: Buffered(LatencyHistogram()) for side in SIDES}
    )
    edge_difference: Buffered[DifferenceHistogram] = field(
        default_factory=lambda: Buffered(DifferenceHistogram())
    )
    backend_difference: Buffered[DifferenceHistogram] = field(
        default_factory=lambda: Buffered(DifferenceHistogram())
    )

    def add(self, splits: dict[Side, EdgeSplit]) -> None:
        for side, split in splits.items():
            self.edge[side].add(split.edge_us)
            self.backend[side].add(split.backend_us)
        if len(splits) == 2:
            baseline, candidate = splits["baseline"], splits["candidate"]
            self.edge_difference.add(candidate.edge_us - baseline.edge_us)
            self.backend_difference.add(candidate.backend_us - baseline.backend_us)

    def flush(self) -> None:
        for buffered in (*self.edge.values(), *self.backend.values()):
            buffered.flush()
        self.edge_difference.flush()
        self.backend_difference.flush()

    def merge(self, other: EdgeTally) -> None:
        self.flush()
        other.flush()
        for side in SIDES:
            self.edge[side].histogram.merge(other.edge[side].histogram)
            self.backend[side].histogram.merge(other.backend[side].histogram)
        self.edge_difference.histogram.merge(other.edge_difference.histogram)
        self.backend_difference.histogram.merge(other.backend_difference.histogram)


@dataclass
class RequestTally:
    request: RequestSpec
    pairs: int = 0
    tls_probe: bool = False  # a hostname's TLS findings rather than a request's
    noise_samples: int = 0  # pairs calibrated with a second baseline answer
    # Calibrations whose second baseline request was refused where the pair's was served
    # (shadowdiff.replay.engine.refused): a limit on the baseline, no noise sample.
    noise_refused: int = 0
    # Keyed by the status code as an int; the report writes them as strings.
    statuses: dict[Side, Counter[int]] = field(
        default_factory=lambda: {side: Counter() for side in SIDES}
    )
    failures: dict[Side, Counter[str]] = field(
        default_factory=lambda: {side: Counter() for side in SIDES}
    )
    # The first message seen for each failure class, per side: what a person reads to fix it.
    failure_messages: dict[Side, dict[str, str]] = field(
        default_factory=lambda: {side: {} for side in SIDES}
    )
    # Answers that came on a second attempt, after a reused connection was closed under the
    # request (see `shadowdiff.transport.may_retry`).
    retries: Counter[Side] = field(default_factory=Counter)
    # Total time per side; measured from the intended start in the open model.
    latency: dict[Side, Buffered[LatencyHistogram]] = field(
        default_factory=lambda: {side: Buffered(LatencyHistogram()) for side in SIDES}
    )
    # From the actual start: differs from `latency` only in the open model.
    uncorrected: dict[Side, Buffered[LatencyHistogram]] = field(
        default_factory=lambda: {side: Buffered(LatencyHistogram()) for side in SIDES}
    )
    difference: Buffered[DifferenceHistogram] = field(
        default_factory=lambda: Buffered(DifferenceHistogram())
    )
    signatures: dict[SignatureKey, SignatureTally] = field(default_factory=dict)
    # How many pairs showed exactly this set of signatures: enough to count differing pairs
    # once noise and acceptance are decided, without a record per pair.
    combinations: Counter[frozenset[SignatureKey]] = field(default_factory=Counter)
    # `backend_split` requests: answers per backend service, per side (report/split_finding.py).
    backends: dict[Side, Counter[str]] = field(
        default_factory=lambda: {side: Counter() for side in SIDES}
    )

    # gRPC requests: answers per outcome (grpc-status name, or the health status), per side:
    # what the Requests table shows instead of the HTTP status, 200 for nearly every call.
    grpc: dict[Side, Counter[str]] = field(
        default_factory=lambda: {side: Counter() for side in SIDES}
    )

    def count_backend(self, side: Side, service: str, answers: int = 1) -> None:
        counts = self.backends[side]
        if service not in counts and len(counts) >= BACKENDS_PER_REQUEST:
            service = OTHER_BACKENDS
        counts[service] += answers

    def count_grpc(self, side: Side, outcome: str, answers: int = 1) -> None:
        counts = self.grpc[side]
        if outcome not in counts and len(counts) >= GRPC_OUTCOMES_PER_REQUEST:
            outcome = OTHER_GRPC_OUTCOMES
        counts[outcome] += answers

    # Edge and backend time, once any answer said its backend time (shadowdiff.backend_time).
    split: EdgeTally | None = None

    def flush(self) -> None:
        for buffered in (*self.latency.values(), *self.uncorrected.values()):
            buffered.flush()
        self.difference.flush()
        if self.split is not None:
            self.split.flush()

    def merge(self, other: RequestTally) -> None:
        self.flush()
        other.flush()
        self.pairs += other.pairs
        self.noise_samples += other.noise_samples
        self.noise_refused += other.noise_refused
        self.retries.update(other.retries)
        for side in SIDES:
            self.statuses[side].update(other.statuses[side])
            self.failures[side].update(other.failures[side])
            for error_class, message in other.failure_messages[side].items():
                self.failure_messages[side].setdefault(error_class, message)
            self.latency[side].histogram.merge(other.latency[side].histogram)
            self.uncorrected[side].histogram.merge(other.uncorrected[side].histogram)
        self.difference.histogram.merge(other.difference.histogram)
        if other.split is not None:
            if self.split is None:
                self.split = other.split
            else:
                self.split.merge(other.split)
        for key, signature in other.signatures.items():
            if key in self.signatures:
                self.signatures[key].merge(signature)
            else:
                self.signatures[key] = signature
        self.combinations.update(other.combinations)
        for side in SIDES:
            for service, answers in other.backends[side].items():
                self.count_backend(side, service, answers)
            for outcome, answers in other.grpc[side].items():
                self.count_grpc(side, outcome, answers)


class RunCollector:
    """Tallies per request name, plus the run-wide counters a progress display reads."""

    def __init__(
        self,
        *,
        accept: Sequence[Acceptance] = (),
        today: datetime.date | None = None,
        keep_pairs: bool = True,
        board: Board | None = None,
        wall_offset_ns: int | None = None,
    ) -> None:
        self.requests: dict[str, RequestTally] = {}
        self.pairs_done = 0
        # Pairs that differ as the verdict will count them, as far as can be known while the
        # run goes on: accepted differences and signatures already seen as noise left out.
        self.pairs_with_differences = 0
        self.failures: dict[Side, int] = dict.fromkeys(SIDES, 0)
        self.accept = tuple(accept)
        self.today = today or datetime.date.min
        self.keep_pairs = keep_pairs
        self.pair_records: list[PairRecord] = []
        self.phases: dict[Side, dict[str, Buffered[LatencyHistogram]]] = {
            side: {phase: Buffered(LatencyHistogram()) for phase in PHASES} for side in SIDES
        }
        self.open_model = False  # set when any pair carried an intended start time
        # Answers that said their backend time, by where it came from ("ignored": unusably).
        self.backend_time_from: dict[Side, Counter[str]] = {side: Counter() for side in SIDES}
        self.tls: dict[str, RequestTally] = {}  # hostname -> TLS findings
        self.tls_hosts: list[HostTls] = []
        # Live metrics (shadowdiff/metrics): counted here as tallied, so that they mean what
        # the report means. Not merged with another collector: each process has its own.
        self.board = board
        # Pairs completed and failures per side, over wall-clock time. Each process reads its
        # own offset: `perf_counter` is not promised to agree between processes.
        self.timeline = Timeline()
        self.wall_offset_ns = (
            time.time_ns() - time.perf_counter_ns() if wall_offset_ns is None else wall_offset_ns
        )

    def __call__(self, pair: Pair) -> None:
        tally = self.requests.get(pair.request.name)
        if tally is None:
            tally = self.requests[pair.request.name] = RequestTally(pair.request)
        tally.pairs += 1
        self.pairs_done += 1
        self._tally_observation(tally, pair.baseline, pair)
        self._tally_observation(tally, pair.candidate, pair)
        if pair.measured:
            self._tally_split(tally, pair)
        if pair.measured and pair.baseline.failure is None and pair.candidate.failure is None:
            # Same request, same moment: the fairest latency comparison there is.
            tally.difference.add(
                (pair.candidate.timings.total_ns - pair.baseline.timings.total_ns) // 1000
            )
        if pair.backends is not None:
            for side, service in zip(SIDES, pair.backends, strict=True):
                if service is not None:
                    tally.count_backend(side, service)
        # Acceptance rules match the field as found; tallies count it within the bound.
        found, differences = _bounded(tally, pair.differences)
        noise_found = _bounded(tally, pair.noise or ())[1]
        tally.combinations[
            frozenset(d.signature for d in differences) if differences else _ALIKE
        ] += 1
        noisy_now = {d.signature for d in noise_found} if differences else ()
        differs = False
        board = self.board
        for as_found, difference in zip(found, differences, strict=True):
            signature = self._signature(tally, difference)
            match = (
                find_acceptance(self.accept, pair.request, as_found, self.today)
                if self.accept
                else None
            )
            signature.add(difference, pair.index, match, pair.trace_id)
            accepted = match is not None and not match.expired
            noise = bool(signature.noise) or difference.signature in noisy_now
            if not accepted and not noise:
                differs = True
            if board is not None:
                ruling: Ruling = "accepted" if accepted else "noise" if noise else "reported"
                board.difference(difference.severity, difference.kind, ruling)
        if differs:
            self.pairs_with_differences += 1
        if board is not None:
            board.pair(differs=differs, measured=pair.measured)
        if pair.calibration_refused:
            tally.noise_refused += 1
        if pair.noise is not None:
            tally.noise_samples += 1
            for key in {d.signature for d in noise_found}:
                noisy = next(d for d in noise_found if d.signature == key)
                self._signature(tally, noisy).noise += 1
        if self.keep_pairs and len(self.pair_records) < PAIR_RECORD_LIMIT:
            self.pair_records.append(_pair_record(pair))
        self._place_on_timeline(pair)

    def _place_on_timeline(self, pair: Pair) -> None:
        """At the moment the later of the two answers ended (warm-up pairs too: they are load
        the entry points carried). A side without a start time (an observation made by hand,
        never by a transport) has no moment; a pair with neither is left off the timeline."""
        baseline, candidate = pair.baseline, pair.candidate
        # Written out rather than looped over: this runs once per pair.
        b, c = baseline.timings, candidate.timings
        ended_ns = max(
            b.started_ns + b.total_ns if b.started_ns else 0,
            c.started_ns + c.total_ns if c.started_ns else 0,
        )
        if not ended_ns:
            return
        self.timeline.add(
            ended_ns + self.wall_offset_ns,
            (baseline.failure is not None, candidate.failure is not None),
            (
                baseline.failure is None and (baseline.status or 0) >= 500,
                candidate.failure is None and (candidate.status or 0) >= 500,
            ),
        )

    def _tally_observation(self, tally: RequestTally, observation: Observation, pair: Pair) -> None:
        side = observation.side
        board = self.board
        if observation.retried:
            tally.retries[side] += 1
        if observation.failure:
            if board is not None:
                board.failure(side, observation.failure.error_class)
            tally.failures[side][observation.failure.error_class] += 1
            tally.failure_messages[side].setdefault(
                observation.failure.error_class, observation.failure.message
            )
            self.failures[side] += 1
            return
        tally.statuses[side][observation.status or 0] += 1
        if (call := tally.request.grpc) is not None:
            tally.count_grpc(
                side,
                answer_outcome(
                    observation.status,
                    observation.headers,
                    observation.trailers,
                    observation.body,
                    observation.body_bytes,
                    health=call.health,
                ),
            )
        if board is not None:
            board.answer(side, observation.status or 0)
        if not pair.measured:
            return
        timings = observation.timings
        total_us = timings.total_ns // 1000
        if pair.intended_ns is not None:
            # Only the open model has two figures: from the intended and the actual start.
            self.open_model = True
            tally.uncorrected[side].add(total_us)
            total_us += max(timings.started_ns - pair.intended_ns, 0) // 1000
        tally.latency[side].add(total_us)
        if board is not None:
            board.latency(side, total_us)
        phases = self.phases[side]
        if timings.connect_ns is not None:
            phases["connect"].add(timings.connect_ns // 1000)
        if timings.tls_ns is not None:
            phases["tls"].add(timings.tls_ns // 1000)
        if timings.first_byte_ns is not None:
            phases["first_byte"].add(timings.first_byte_ns // 1000)

    def _tally_split(self, tally: RequestTally, pair: Pair) -> None:
        """Each answer's total time (from the actual send: a wait for the client in the open
        model is nobody's edge) split into edge and backend time, when the answer says it."""
        splits: dict[Side, EdgeSplit] = {}
        for observation in (pair.baseline, pair.candidate):
            if observation.failure is not None:
                continue
            split = edge_split(observation.headers, observation.timings.total_ns // 1000)
            if split is None:
                continue
            self.backend_time_from[observation.side][split.source] += 1
            if split.source != "ignored":
                splits[observation.side] = split
        if splits:
            if tally.split is None:
                tally.split = EdgeTally()
            tally.split.add(splits)

    def add_tls(self, host_tls: HostTls) -> None:
        """The TLS probe's findings for one hostname, tallied like one pair of that host."""
        spec = RequestSpec(f"TLS {host_tls.host}", "TLS", f"https://{host_tls.host}/", (), None)
        tally = self.tls[host_tls.host] = RequestTally(spec, pairs=1, tls_probe=True)
        for difference in host_tls.differences:
            match = (
                find_acceptance(self.accept, spec, difference, self.today) if self.accept else None
            )
            self._signature(tally, difference).add(difference, -1, match)
            if self.board is not None:
                accepted = match is not None and not match.expired
                self.board.difference(
                    difference.severity, difference.kind, "accepted" if accepted else "reported"
                )
        tally.combinations[frozenset(d.signature for d in host_tls.differences)] += 1
        self.tls_hosts.append(host_tls)

    def flush(self) -> None:
        """Record every buffered latency; call before reading histograms."""
        for tally in self.requests.values():
            tally.flush()
        for phases in self.phases.values():
            for buffered in phases.values():
                buffered.flush()

    def merge(self, other: RunCollector) -> None:
        """Add another collector's results (another worker's share of the same scenario)."""
        self.flush()
        other.flush()
        for name, tally in other.requests.items():
            if name in self.requests:
                self.requests[name].merge(tally)
            else:
                self.requests[name] = tally
        self.pairs_done += other.pairs_done
        self.pairs_with_differences += other.pairs_with_differences
        for side in SIDES:
            self.failures[side] += other.failures[side]
            self.backend_time_from[side].update(other.backend_time_from[side])
            for phase in PHASES:
                self.phases[side][phase].histogram.merge(other.phases[side][phase].histogram)
        self.open_model = self.open_model or other.open_model
        self.timeline.merge(other.timeline)
        room = PAIR_RECORD_LIMIT - len(self.pair_records)
        self.pair_records = sorted(
            self.pair_records + other.pair_records[: max(room, 0)], key=lambda r: r["index"]
        )

    @staticmethod
    def _signature(tally: RequestTally, difference: Difference) -> SignatureTally:
        signature = tally.signatures.get(difference.signature)
        if signature is None:
            signature = tally.signatures[difference.signature] = SignatureTally(difference)
        return signature


def _bounded(
    tally: RequestTally, differences: Sequence[Difference]
) -> tuple[list[Difference], list[Difference]]:
    """The differences as found and as tallied (`_within_bound`), one per signature: the
    fields folded into one catch-all count once for the pair."""
    found: list[Difference] = []
    tallied: dict[SignatureKey, Difference] = {}
    for difference in differences:
        bounded = _within_bound(tally, difference)
        if bounded.signature not in tallied:
            found.append(difference)
            tallied[bounded.signature] = bounded
    return found, list(tallied.values())


def _within_bound(tally: RequestTally, difference: Difference) -> Difference:
    """`difference`, or past SIGNATURES_PER_REQUEST new fields on this request, the same
    finding under its kind's catch-all field, with the field it had as its example."""
    if difference.signature in tally.signatures or len(tally.signatures) < SIGNATURES_PER_REQUEST:
        return difference
    return Difference(
        difference.kind,
        f"(more fields: {difference.severity})",
        difference.field,
        difference.field,
        difference.severity,
    )


def _side_record(observation: Observation) -> PairSide:
    sent = None if observation.traceparent is None else parse_traceparent(observation.traceparent)
    return {
        "status": observation.status,
        "error": observation.failure.error_class if observation.failure else None,
        "total_ms": round(observation.timings.total_ns / 1e6, 3),
        "span_id": None if sent is None else sent.span_id,
    }


def _pair_record(pair: Pair) -> PairRecord:
    return {
        "index": pair.index,
        "request": pair.request.name,
        "trace_id": pair.trace_id,
        "baseline": _side_record(pair.baseline),
        "candidate": _side_record(pair.candidate),
        "differences": [[d.kind, d.field] for d in pair.differences],
    }
