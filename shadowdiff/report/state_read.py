"""Reading a report's mergeable state (`shadowdiff.state/1`, written by `state.py`) back into a
`RunCollector` and the scenario settings its report reads. Pure.

The state comes from a file: hostile input. Every field is checked for its type and range
(histograms add up, bucket indexes stay in range, counts are whole and not negative), and a
problem is a `StateError` naming where it is (`state.collector.requests[3].pairs: ...`).
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, get_args

from pydantic import BaseModel, ValidationError

from shadowdiff.compare.acceptance import AcceptanceMatch
from shadowdiff.difference import Difference, DifferenceKind
from shadowdiff.pair import LoadOutcome
from shadowdiff.redaction import Secrets
from shadowdiff.report.collect import (
    PHASES,
    Buffered,
    EdgeTally,
    RequestTally,
    RunCollector,
    SignatureTally,
)
from shadowdiff.report.schema import RequestExample
from shadowdiff.report.state import STATE_SCHEMA, StateError
from shadowdiff.scenario import Scenario
from shadowdiff.scenario.model import (
    Acceptance,
    CompareSettings,
    Defaults,
    LoadSettings,
    Ports,
    Target,
    Targets,
    Threshold,
    TlsProbeSettings,
)
from shadowdiff.spec import SIDES, RequestSpec
from shadowdiff.stats.histogram import SIGNIFICANT_DIGITS, DifferenceHistogram, LatencyHistogram
from shadowdiff.stats.timeline import Timeline

_KINDS: Final = frozenset(get_args(DifferenceKind))
# HdrHistogram buckets of values up to 2**63 µs stay below this index (see stats/histogram.py).
_MAX_BUCKET_INDEX: Final = 64 << 10


# No real count reaches 2**53 (a float's whole numbers), nor a time, rate or size 1e15: a
# state beyond them was written by hand, and would print as Infinity or thousands of digits.
MAX_COUNT: Final = 2**53
MAX_MAGNITUDE: Final = 1e15


class _Reader:
    """Typed access to untrusted JSON, each failure a `StateError` naming the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, expected: str, value: Any) -> StateError:
        shown: Any = type(value).__name__
        if isinstance(value, bool | float) or (isinstance(value, int) and abs(value) <= MAX_COUNT):
            shown = value
        elif isinstance(value, int):
            shown = f"a number of {len(str(abs(value)))} digits"
        return StateError(f"{self.where}{path}: expected {expected}; got {shown!r}")

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "an object", value)
        return value

    def key(self, value: Any, path: str, name: str) -> Any:
        found = self.obj(value, path)
        if name not in found:
            raise StateError(f"{self.where}{path}.{name}: missing")
        return found[name]

    def items(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, "a list", value)
        return value

    def count(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            raise self.fail(path, "a whole number from 0 to 2**53", value)
        return value

    def text(self, value: Any, path: str, *, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(path, "a string", value)
        return value

    def flag(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, "true or false", value)
        return value

    def number(
        self, value: Any, path: str, *, optional: bool = False, limit: float = MAX_MAGNITUDE
    ) -> Any:
        if value is None and optional:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not -limit <= value <= limit  # NaN and infinities too
        ):
            raise self.fail(path, "a finite number", value)
        return value

    def histogram(self, value: Any, path: str) -> LatencyHistogram:
        if value is None:
            return LatencyHistogram()  # written as null when empty
        data = self.obj(value, path)
        buckets = []
        for i, bucket in enumerate(self.items(self.key(data, path, "buckets"), f"{path}.buckets")):
            where = f"{path}.buckets[{i}]"
            pair = self.items(bucket, where)
            if len(pair) != 2:
                raise self.fail(where, "[index, count]", pair)
            index, count = self.count(pair[0], where), self.count(pair[1], where)
            if index >= _MAX_BUCKET_INDEX or count == 0:
                raise self.fail(where, "a bucket index and a count above 0", pair)
            buckets.append([index, count])
        total = self.count(self.key(data, path, "count"), f"{path}.count")
        if sum(count for _, count in buckets) != total or len({i for i, _ in buckets}) != len(
            buckets
        ):
            raise StateError(f"{self.where}{path}: buckets do not add up to its count")
        low, high = data.get("min"), data.get("max")
        for name, bound in (("min", low), ("max", high)):
            if not (bound is None if total == 0 else isinstance(bound, int)):
                raise self.fail(f"{path}.{name}", "a whole number (null when empty)", bound)
        return LatencyHistogram.from_dict(
            {
                "buckets": buckets,
                "count": total,
                "min": low,
                "max": high,
                "sum": self.count(self.key(data, path, "sum"), f"{path}.sum"),
                "unit": "us",
                "significant_digits": SIGNIFICANT_DIGITS,
                "sum_squares": float(
                    self.number(
                        self.key(data, path, "sum_squares"),
                        f"{path}.sum_squares",
                        limit=sys.float_info.max,  # squares of microseconds add up fast
                    )
                ),
            }
        )

    def model(self, kind: type[BaseModel], value: Any, path: str) -> Any:
        try:
            return kind.model_validate(value)
        except ValidationError as exc:
            error = exc.errors()[0]
            inner = "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
            )
            raise StateError(f"{self.where}{path}{inner}: {error['msg']}") from None


def _counter(reader: _Reader, value: Any, path: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for name, count in reader.obj(value, path).items():
        found[name] = reader.count(count, f"{path}.{name}")
    return found


def _tally_from_state(reader: _Reader, data: Any, path: str) -> RequestTally:
    r = reader
    request = r.obj(r.key(data, path, "request"), f"{path}.request")
    where = f"{path}.request"
    method = r.text(r.key(request, where, "method"), f"{where}.method")
    spec = RequestSpec(
        r.text(r.key(request, where, "name"), f"{where}.name"),
        method,
        r.text(r.key(request, where, "url"), f"{where}.url"),
        (),
        # A safe method with a body is what the report counts as unsafe.
        b"" if r.flag(r.key(request, where, "unsafe"), f"{where}.unsafe") else None,
        origin=r.text(request.get("origin"), f"{where}.origin", optional=True),
        backend_split=r.flag(request.get("backend_split", False), f"{where}.backend_split"),
    )
    tally = RequestTally(
        spec,
        pairs=r.count(r.key(data, path, "pairs"), f"{path}.pairs"),
        tls_probe=r.flag(r.key(data, path, "tls_probe"), f"{path}.tls_probe"),
        noise_samples=r.count(r.key(data, path, "noise_samples"), f"{path}.noise_samples"),
        # Absent from the states of shadowdiff before it counted refused calibrations.
        noise_refused=r.count(r.obj(data, path).get("noise_refused", 0), f"{path}.noise_refused"),
    )
    for side in SIDES:
        statuses = r.items(r.key(r.key(data, path, "statuses"), path, side), f"{path}.statuses")
        for i, entry in enumerate(statuses):
            pair = r.items(entry, f"{path}.statuses.{side}[{i}]")
            if len(pair) != 2:
                raise r.fail(f"{path}.statuses.{side}[{i}]", "[status, count]", pair)
            status = r.count(pair[0], f"{path}.statuses.{side}[{i}]")
            tally.statuses[side][status] = r.count(pair[1], f"{path}.statuses.{side}[{i}]")
        tally.failures[side] = _counter(
            r, r.key(r.key(data, path, "failures"), f"{path}.failures", side), f"{path}.failures"
        )
        messages = r.obj(
            r.key(r.key(data, path, "failure_messages"), f"{path}.failure_messages", side),
            f"{path}.failure_messages.{side}",
        )
        tally.failure_messages[side] = {
            name: r.text(message, f"{path}.failure_messages.{side}.{name}")
            for name, message in messages.items()
        }
        for name in tally.failures[side]:
            if name not in tally.failure_messages[side]:
                # The report names each failure class it counts with its first message.
                raise r.fail(f"{path}.failure_messages.{side}", f"a message for {name}", messages)
        tally.retries[side] = r.count(
            r.key(r.key(data, path, "retries"), f"{path}.retries", side), f"{path}.retries"
        )
        for attribute in ("latency", "uncorrected"):
            histograms = r.key(data, path, attribute)
            buffered: Buffered[LatencyHistogram] = Buffered(
                r.histogram(r.key(histograms, f"{path}.{attribute}", side), f"{path}.{attribute}")
            )
            getattr(tally, attribute)[side] = buffered
    tally.difference = Buffered(
        _difference_from_state(r, r.key(data, path, "difference"), f"{path}.difference")
    )
    # Written only when there are some; any value that is there must be an object (a 0 or
    # "" is not "none").
    backends = data.get("backends", {})
    for side in SIDES:
        counts = _counter(r, r.obj(backends, f"{path}.backends").get(side, {}), f"{path}.backends")
        for service, answers in counts.items():
            tally.count_backend(side, service, answers)
    outcomes = data.get("grpc", {})
    for side in SIDES:
        counts = _counter(r, r.obj(outcomes, f"{path}.grpc").get(side, {}), f"{path}.grpc")
        for outcome, answers in counts.items():
            tally.count_grpc(side, outcome, answers)
    if (edge := data.get("edge")) is not None:
        tally.split = _edge_from_state(r, r.obj(edge, f"{path}.edge"), f"{path}.edge")
    for i, entry in enumerate(r.items(r.key(data, path, "signatures"), f"{path}.signatures")):
        signature = _signature_from_state(r, entry, f"{path}.signatures[{i}]")
        tally.signatures[signature.difference.signature] = signature
    for i, entry in enumerate(r.items(r.key(data, path, "combinations"), f"{path}.combinations")):
        where = f"{path}.combinations[{i}]"
        pair = r.items(entry, where)
        if len(pair) != 2:
            raise r.fail(where, "[signatures, count]", pair)
        keys = []
        for key in r.items(pair[0], where):
            kind_field = r.items(key, where)
            if len(kind_field) != 2:
                raise r.fail(where, "[kind, field]", kind_field)
            keys.append((r.text(kind_field[0], where), r.text(kind_field[1], where)))
        tally.combinations[frozenset(keys)] += r.count(pair[1], where)
    return tally


def _difference_from_state(r: _Reader, data: Any, path: str) -> DifferenceHistogram:
    histogram = DifferenceHistogram()
    histogram.faster = r.histogram(r.key(data, path, "faster"), path)
    histogram.slower = r.histogram(r.key(data, path, "slower"), path)
    histogram.zero = r.count(r.key(data, path, "zero"), path)
    return histogram


def _edge_from_state(r: _Reader, data: dict[str, Any], path: str) -> EdgeTally:
    split = EdgeTally()
    for part in ("edge", "backend"):
        found = r.key(data, path, part)
        for side in SIDES:
            histogram = r.histogram(r.key(found, f"{path}.{part}", side), f"{path}.{part}")
            getattr(split, part)[side] = Buffered(histogram)
    for part in ("edge_difference", "backend_difference"):
        difference = _difference_from_state(r, r.key(data, path, part), f"{path}.{part}")
        setattr(split, part, Buffered(difference))
    return split


def _signature_from_state(reader: _Reader, data: Any, path: str) -> SignatureTally:
    r = reader
    found = r.obj(data, path)
    where = path
    try:
        difference = Difference(
            kind=r.text(r.key(found, where, "kind"), f"{where}.kind"),
            field=r.text(r.key(found, where, "field"), f"{where}.field"),
            baseline=r.text(found.get("baseline"), f"{where}.baseline", optional=True),
            candidate=r.text(found.get("candidate"), f"{where}.candidate", optional=True),
            severity=r.text(r.key(found, where, "severity"), f"{where}.severity"),
            detail=r.text(found.get("detail"), f"{where}.detail", optional=True),
        )
    except (TypeError, ValueError) as exc:
        raise StateError(f"{r.where}{where}: {exc}") from None
    if difference.kind not in _KINDS:
        raise r.fail(f"{where}.kind", "a difference kind (docs/report-format.md)", difference.kind)
    if difference.severity not in ("error", "warning", "info"):
        raise r.fail(f"{where}.severity", "error, warning or info", difference.severity)
    acceptance = None
    if (accepted := data.get("acceptance")) is not None:
        at = f"{path}.acceptance"
        until = r.text(r.key(accepted, at, "until"), f"{at}.until", optional=True)
        try:
            until_date = None if until is None else datetime.date.fromisoformat(until)
        except ValueError:
            raise r.fail(f"{at}.until", "a date (YYYY-MM-DD)", until) from None
        acceptance = AcceptanceMatch(
            r.count(r.key(accepted, at, "rule"), f"{at}.rule"),
            r.text(r.key(accepted, at, "reason"), f"{at}.reason"),
            until_date,
            r.flag(r.key(accepted, at, "expired"), f"{at}.expired"),
        )
    examples: list[RequestExample] = []
    for i, example in enumerate(r.items(r.key(data, path, "examples"), f"{path}.examples")):
        at = f"{path}.examples[{i}]"
        item: RequestExample = {
            "pair": int(r.number(r.key(example, at, "pair"), f"{at}.pair")),
            "trace_id": r.text(example.get("trace_id"), f"{at}.trace_id", optional=True),
            "baseline": r.text(r.key(example, at, "baseline"), f"{at}.baseline", optional=True),
            "candidate": r.text(r.key(example, at, "candidate"), f"{at}.candidate", optional=True),
        }
        if "diff" in example:
            item["diff"] = r.text(example["diff"], f"{at}.diff")
        examples.append(item)
    tally = SignatureTally(
        difference,
        count=r.count(r.key(data, path, "count"), f"{path}.count"),
        accepted=r.count(r.key(data, path, "accepted"), f"{path}.accepted"),
        expired=r.count(r.key(data, path, "expired"), f"{path}.expired"),
        acceptance=acceptance,
        noise=r.count(r.key(data, path, "noise"), f"{path}.noise"),
    )
    # Capped as a single report caps them, whatever the file says.
    for example in examples:
        tally.add_example(
            example["baseline"],
            example["candidate"],
            example["pair"],
            example["trace_id"],
            example.get("diff"),
        )
    return tally


class RunState:
    """A report's state read back: its collector, scenario settings, load and shard."""

    def __init__(
        self,
        scenario: Scenario,
        collector: RunCollector,
        load: LoadOutcome | None,
        pairs_planned: int | None,
        shard: tuple[int, int] | None,
        settings: dict[str, Any],
    ) -> None:
        self.scenario, self.collector, self.load = scenario, collector, load
        self.pairs_planned, self.shard = pairs_planned, shard
        self.settings = settings  # as written: two reports merge only when these are equal
        self.order: dict[str, int] = {}  # request name -> place in the scenario


def read_state(data: Any, where: str = "state") -> RunState:
    """The state section of a report (`run_state`'s output) read back; `where` prefixes the
    location of any problem (`a.json: state.collector...`)."""
    r = _Reader(where)
    state = r.obj(data, "")
    schema = state.get("schema")
    if schema != STATE_SCHEMA:
        raise StateError(f"{where}.schema: {schema!r} is not {STATE_SCHEMA!r}")
    expected = {"unit": "us", "significant_digits": SIGNIFICANT_DIGITS}
    if state.get("histograms") != expected:
        raise StateError(f"{where}.histograms: expected {expected}; got another bucketing")
    settings = r.obj(r.key(state, "", "scenario"), ".scenario")
    scenario = _scenario_from_state(r, settings)
    today_text = r.text(r.key(state, "", "today"), ".today")
    try:
        today = datetime.date.fromisoformat(today_text)
    except ValueError:
        raise r.fail(".today", "a date (YYYY-MM-DD)", today_text) from None
    collector = RunCollector(accept=scenario.accept, today=today, keep_pairs=False)
    found = r.obj(r.key(state, "", "collector"), ".collector")
    collector.pairs_done = r.count(
        r.key(found, ".collector", "pairs_done"), ".collector.pairs_done"
    )
    collector.pairs_with_differences = r.count(
        r.key(found, ".collector", "pairs_with_differences"), ".collector.pairs_with_differences"
    )
    failures = r.key(found, ".collector", "failures")
    for side in SIDES:
        collector.failures[side] = r.count(
            r.key(failures, ".collector.failures", side), f".collector.failures.{side}"
        )
        phases = r.key(r.key(found, ".collector", "phases"), ".collector.phases", side)
        for phase in PHASES:
            at = f".collector.phases.{side}.{phase}"
            collector.phases[side][phase] = Buffered(r.histogram(r.key(phases, at, phase), at))
    collector.open_model = r.flag(r.key(found, ".collector", "open_model"), ".collector.open_model")
    if (timeline := found.get("timeline")) is not None:
        try:
            collector.timeline = Timeline.from_dict(r.obj(timeline, ".collector.timeline"))
        except ValueError as exc:
            raise StateError(f"{where}.collector.timeline: {exc}") from None
    sources = r.obj(found.get("backend_time_from", {}), ".collector.backend_time_from")
    for side in SIDES:
        collector.backend_time_from[side] = _counter(
            r, sources.get(side, {}), f".collector.backend_time_from.{side}"
        )
    requests = r.items(r.key(found, ".collector", "requests"), ".collector.requests")
    order: dict[str, int] = {}
    for i, entry in enumerate(requests):
        tally = _tally_from_state(r, entry, f".collector.requests[{i}]")
        if tally.request.name in collector.requests:
            raise StateError(f"{where}.collector.requests[{i}]: {tally.request.name!r} twice")
        collector.requests[tally.request.name] = tally
        order[tally.request.name] = r.count(
            r.key(entry, f".collector.requests[{i}]", "order"), f".collector.requests[{i}].order"
        )
    for i, entry in enumerate(r.items(r.key(found, ".collector", "tls"), ".collector.tls")):
        tally = _tally_from_state(r, entry, f".collector.tls[{i}]")
        collector.tls[tally.request.name.removeprefix("TLS ")] = tally
    load = _load_from_state(r, r.key(state, "", "load"))
    planned = state.get("pairs_planned")
    shard = state.get("shard")
    if shard is not None:
        index = r.count(r.key(shard, ".shard", "index"), ".shard.index")
        count = r.count(r.key(shard, ".shard", "count"), ".shard.count")
        if not index < count:
            raise StateError(f"{where}.shard: index {index} is not below count {count}")
    result = RunState(
        dataclasses.replace(
            scenario, requests=tuple(t.request for t in collector.requests.values())
        ),
        collector,
        load,
        None if planned is None else r.count(planned, ".pairs_planned"),
        None if shard is None else (index, count),
        settings,
    )
    result.order = order
    return result


def _load_from_state(reader: _Reader, data: Any) -> LoadOutcome | None:
    if data is None:
        return None
    r, at = reader, ".load"
    found = r.obj(data, at)
    return LoadOutcome(
        model=r.text(r.key(found, at, "model"), f"{at}.model"),
        pairs=r.count(r.key(found, at, "pairs"), f"{at}.pairs"),
        elapsed_s=float(r.number(r.key(found, at, "elapsed_s"), f"{at}.elapsed_s")),
        measured_s=float(r.number(r.key(found, at, "measured_s"), f"{at}.measured_s")),
        target_rate=r.number(found.get("target_rate"), f"{at}.target_rate", optional=True),
        started_on_time=r.count(r.key(found, at, "started_on_time"), f"{at}.started_on_time"),
        interrupted=r.flag(r.key(found, at, "interrupted"), f"{at}.interrupted"),
        # Whether the sender kept up (absent from states written before it was measured).
        late_by_sender=r.count(found.get("late_by_sender", 0), f"{at}.late_by_sender"),
        late_by_slots=r.count(found.get("late_by_slots", 0), f"{at}.late_by_slots"),
        dropped=r.count(found.get("dropped", 0), f"{at}.dropped"),
        loop_ticks=r.count(found.get("loop_ticks", 0), f"{at}.loop_ticks"),
        loop_late_ticks=r.count(found.get("loop_late_ticks", 0), f"{at}.loop_late_ticks"),
        loop_lag_max_ms=float(r.number(found.get("loop_lag_max_ms", 0.0), f"{at}.loop_lag_max_ms")),
        cpu_share=float(r.number(found.get("cpu_share", 0.0), f"{at}.cpu_share")),
    )


def _scenario_from_state(reader: _Reader, settings: Mapping[str, Any]) -> Scenario:
    """What `build_report` reads of a scenario. The settings are the scenario's own pydantic
    models, so a report's state is checked by the rules that checked the scenario file."""
    r, at = reader, ".scenario"
    targets = {}
    for side in SIDES:
        target = r.obj(r.key(r.key(settings, at, "targets"), f"{at}.targets", side), side)
        where = f"{at}.targets.{side}"
        # The address may read `${NAME}` (redacted): kept as text, never connected to.
        targets[side] = Target.model_construct(
            address=r.text(r.key(target, where, "address"), f"{where}.address"),
            ports=r.model(Ports, r.key(target, where, "ports"), f"{where}.ports"),
        )
    load = settings.get("load")
    sources = r.items(r.key(settings, at, "sources"), f"{at}.sources")
    return Scenario(
        source=r.text(r.key(settings, at, "source"), f"{at}.source"),
        name=r.text(r.key(settings, at, "name"), f"{at}.name"),
        targets=Targets.model_construct(
            baseline=targets["baseline"], candidate=targets["candidate"]
        ),
        defaults=Defaults(),
        requests=(),
        compare=r.model(CompareSettings, r.key(settings, at, "compare"), f"{at}.compare"),
        tls_probe=TlsProbeSettings(),
        load=None if load is None else r.model(LoadSettings, load, f"{at}.load"),
        thresholds=tuple(
            r.model(Threshold, item, f"{at}.thresholds[{i}]")
            for i, item in enumerate(r.items(r.key(settings, at, "thresholds"), at))
        ),
        accept=tuple(
            r.model(Acceptance, item, f"{at}.accept[{i}]")
            for i, item in enumerate(r.items(r.key(settings, at, "accept"), at))
        ),
        base_dir=Path("."),
        secrets=Secrets(
            headers=frozenset(
                r.text(name, f"{at}.redact_headers")
                for name in r.items(r.key(settings, at, "redact_headers"), at)
            )
        ),
        sources=tuple(r.obj(source, f"{at}.sources") for source in sources),
    )
