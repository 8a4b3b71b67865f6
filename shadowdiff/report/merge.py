"""`shadowdiff merge`: one report from the reports of several shards or machines, exactly.

Each report carries its state (report/state.py): the collector it was built from and the
scenario settings the report reads. Merging adds the collectors (`RunCollector.merge`, the
same exact merge `--workers` uses: counts, histogram buckets, signatures with their counts,
examples capped as in one report, per-combination counts) and builds the report again with
`build_report`, so thresholds and the verdict are decided on the merged figures by the code
`run` uses. Pure apart from reading the files.

Refused, as a `UsageError` naming the file (exit 2): a file that is no report (not JSON,
larger than MAX_REPORT_BYTES, nested deeper than json_document.MAX_DEPTH, fields of the
wrong type), reports of another schema or shadowdiff version, of different scenarios or
settings, the same shard twice, and reports whose counts add up past what a report holds
(2**53, state_read.MAX_COUNT).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from typing import Any, Final, NamedTuple, cast

from pydantic import TypeAdapter, ValidationError

from shadowdiff import __version__
from shadowdiff.errors import UsageError
from shadowdiff.json_document import MAX_DEPTH, NOT_JSON, load_json
from shadowdiff.pair import LoadOutcome
from shadowdiff.redaction import KeySource
from shadowdiff.report.collect import PAIR_RECORD_LIMIT
from shadowdiff.report.document import REPORT_SCHEMA, build_report
from shadowdiff.report.files import read_file_bounded
from shadowdiff.report.schema import CoverageCount, CoverageEntry, Merged, PairRecord, Report
from shadowdiff.report.state import StateError
from shadowdiff.report.state_read import RunState, read_state
from shadowdiff.tls import HostTls

# A report is a few megabytes; a file far past that is not one.
MAX_REPORT_BYTES: Final = 256 << 20


class Mergeable(NamedTuple):
    """A report file read for merging: the report, its state, and its coverage (checked)."""

    path: str
    report: Report
    state: RunState
    coverage: CoverageEntry | None


def read_mergeable(path: str) -> Mergeable:
    """A report file and its state, checked as hostile input."""
    data = load_json(read_file_bounded(path, MAX_REPORT_BYTES, "a report"))
    if data is NOT_JSON:
        raise UsageError(f"{path}: not JSON, or nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a shadowdiff report (a JSON {type(data).__name__})")
    schema = data.get("schema")
    if schema != REPORT_SCHEMA:
        raise UsageError(_one_line(f"{path}: schema {schema!r} is not {REPORT_SCHEMA!r}"))
    tool = data.get("tool")
    version = tool.get("version") if isinstance(tool, dict) else None
    if version != __version__:
        raise UsageError(
            _one_line(
                f"{path}: written by shadowdiff {version!r}; this is {__version__}: merge "
                "reports with the version that wrote them"
            )
        )
    if "state" not in data:
        raise UsageError(f"{path}: no state section (written before reports could merge)")
    try:
        state = read_state(data["state"])
        coverage = _coverage(data.get("coverage"))
        host_tls = [_host_tls(entry, i) for i, entry in enumerate(_list(data.get("tls"), "tls"))]
        records = _pair_records(data.get("pairs"))
        for key in ("started_at", "duration_s", "interrupted"):
            if key not in data:
                raise StateError(f"{key}: missing")
        if not isinstance(data["started_at"], str) or not isinstance(data["interrupted"], bool):
            raise StateError("started_at, interrupted: expected a string and true or false")
        if isinstance(data["duration_s"], bool) or not isinstance(data["duration_s"], (int, float)):
            raise StateError("duration_s: expected a number")
    except StateError as exc:
        raise UsageError(f"{path}: {_one_line(str(exc))}") from None
    # The tallies of the TLS findings are in the state; the postures are the report's own.
    state.collector.tls_hosts = host_tls
    state.collector.pair_records = records
    state.collector.keep_pairs = data.get("pairs") is not None
    report = cast(Report, data)  # checked above in what merge reads
    return Mergeable(str(path), report, state, coverage)


def _one_line(message: str, limit: int = 300) -> str:
    """A message quoting a hostile file's names, as one bounded line of printable text."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise StateError(f"{where}: expected a list")
    return value


def _pair_records(value: Any) -> list[PairRecord]:
    records = _list(value, "pairs")
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("index"), int):
            raise StateError(f"pairs[{i}]: expected an object with an integer index")
    return records[:PAIR_RECORD_LIMIT]


# The TLS postures are the report's `tls[]` entries, read back into the probe's own
# dataclasses by pydantic: every field checked for its type, nested ones included.
_HOST_TLS: Final = TypeAdapter(HostTls)


def _host_tls(entry: Any, index: int) -> HostTls:
    where = f"tls[{index}]"
    if not isinstance(entry, dict):
        raise StateError(f"{where}: expected an object")
    try:
        host_tls = _HOST_TLS.validate_python(entry, strict=False)
        for posture in (host_tls.baseline, host_tls.candidate):
            posture.days_to_expiry  # noqa: B018 - the report computes it: dates must parse
    except ValidationError as exc:
        error = exc.errors()[0]
        inner = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        raise StateError(f"{where}{inner}: {error['msg']}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise StateError(f"{where}: a date that does not parse: {exc}") from None
    return host_tls


def _coverage_count(value: Any, where: str) -> CoverageCount | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StateError(f"{where}: expected an object or null")
    rules, uncovered = value.get("rules"), value.get("uncovered")
    if isinstance(rules, bool) or not isinstance(rules, int) or rules < 0:
        raise StateError(f"{where}.rules: expected a whole number")
    if not isinstance(uncovered, list) or not all(isinstance(u, str) for u in uncovered):
        raise StateError(f"{where}.uncovered: expected a list of strings")
    if len(uncovered) > rules:
        raise StateError(f"{where}.uncovered: more rules than {rules}")
    return {"rules": rules, "covered": rules - len(uncovered), "uncovered": uncovered}


def _coverage(value: Any) -> CoverageEntry | None:
    """A report's coverage section, checked: what merging it reads."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StateError("coverage: expected an object or null")
    minimum = value.get("min")
    if minimum is not None and (isinstance(minimum, bool) or not isinstance(minimum, (int, float))):
        raise StateError("coverage.min: expected a number or null")
    return {
        "ingress": _coverage_count(value.get("ingress"), "coverage.ingress"),
        "routes": _coverage_count(value.get("routes"), "coverage.routes"),
        "share": None,
        "min": minimum,
    }


def merge_coverage(entries: list[CoverageEntry | None]) -> CoverageEntry | None:
    """A rule is reached by the merged run when any report's requests reached it: the rules
    none reached are those every report lists as not reached (each report lists them all)."""
    if not entries or entries[0] is None:
        return None
    first = entries[0]
    merged: CoverageEntry = {"ingress": None, "routes": None, "share": None, "min": first["min"]}
    for kind in ("ingress", "routes"):
        counts = [entry[kind] for entry in entries if entry is not None]
        found = [count for count in counts if count is not None]
        if not found:
            continue
        left = Counter(found[0]["uncovered"])
        for count in found[1:]:
            left &= Counter(count["uncovered"])
        uncovered = []
        for name in found[0]["uncovered"]:
            if left[name] > 0:
                uncovered.append(name)
                left[name] -= 1
        merged[kind] = {
            "rules": found[0]["rules"],
            "covered": found[0]["rules"] - len(uncovered),
            "uncovered": uncovered,
        }
    total = sum(c["rules"] for c in (merged["ingress"], merged["routes"]) if c is not None)
    reached = sum(c["covered"] for c in (merged["ingress"], merged["routes"]) if c is not None)
    merged["share"] = round(reached / total, 4) if total else None
    return merged


def merge_load(loads: list[LoadOutcome | None]) -> LoadOutcome | None:
    """The load of several shards or machines sending at once: pairs and the rates they
    were asked for add up (a shard's target is its share of the rate), the window is the
    longest."""
    found = [load for load in loads if load is not None]
    if not found:
        return None
    targets = [load.target_rate for load in found]
    return LoadOutcome(
        model=found[0].model,
        pairs=sum(load.pairs for load in found),
        elapsed_s=max(load.elapsed_s for load in found),
        measured_s=max(load.measured_s for load in found),
        target_rate=None if any(t is None for t in targets) else sum(t or 0.0 for t in targets),
        started_on_time=sum(load.started_on_time for load in found),
        interrupted=any(load.interrupted for load in found),
        dropped=sum(load.dropped for load in found),
    )


def _key_id(file: Mergeable) -> object:
    redaction: object = file.report.get("redaction")
    return redaction.get("key_id") if isinstance(redaction, dict) else None


def _refuse_repeats_and_mixed_keys(files: list[Mergeable]) -> None:
    """The same run given twice would count every pair twice; reports whose fingerprints come
    from different keys cannot be compared, and the merged report could name neither key."""
    seen: dict[str, str] = {}
    first_key = _key_id(files[0])
    for file in files:
        key_id = _key_id(file)
        if key_id != first_key:
            raise UsageError(
                f"{file.path}: redacted with another key (key_id {key_id}, not {first_key} as "
                f"{files[0].path}): merge reports made with one SHADOWDIFF_REDACTION_KEY"
            )
        digest = hashlib.sha256(
            json.dumps(file.report.get("state"), sort_keys=True).encode("utf-8", "surrogatepass")
        ).hexdigest()
        if digest in seen:
            raise UsageError(f"{file.path}: the same run as {seen[digest]}: each run's report once")
        seen[digest] = file.path


def merge_reports(
    paths: list[str], *, redaction_key: tuple[bytes, KeySource] | None = None
) -> Report:
    """The report of the runs whose reports are at `paths`, built as one run's would be."""
    if len(paths) < 1:
        raise UsageError("merge: name at least one report")
    files = [read_mergeable(path) for path in paths]
    read = [(file.path, file.report, file.state) for file in files]
    first_path, _, first = read[0]
    shards: dict[tuple[int, int], str] = {}
    for file in files:
        if _rules(file.coverage) != _rules(files[0].coverage):
            raise UsageError(
                f"{file.path}: its coverage section counts other rules than {first_path}'s "
                f"({_rules(file.coverage)} and {_rules(files[0].coverage)}): only runs checked "
                "against the same manifests merge"
            )
    for path, _, state in read:
        # The file's path may differ from machine to machine; what it says may not.
        if _comparable(state.settings) != _comparable(first.settings):
            raise UsageError(
                f"{path}: another scenario or other settings than {first_path} "
                f"({_difference(first.settings, state.settings)}): only runs of the same "
                "scenario merge"
            )
        if state.shard is not None:
            if state.shard in shards:
                raise UsageError(
                    f"{path}: shard {state.shard[0]}/{state.shard[1]} is {shards[state.shard]} "
                    "too: each shard once"
                )
            shards[state.shard] = path
    counts = {shard[1] for shard in shards}
    if len(counts) > 1:
        raise UsageError(f"merge: shards of different counts ({sorted(counts)}): one split each")
    if counts:
        count = counts.pop()
        missing = [f"{k}/{count}" for k in range(count) if (k, count) not in shards]
        if missing:
            raise UsageError(
                f"merge: shard {', '.join(missing)} missing: the merged report would claim a "
                "whole run it does not cover"
            )
    _refuse_repeats_and_mixed_keys(files)
    collector = first.collector
    for _, _, state in read[1:]:
        # TLS was probed by every shard alike: the first report's probe stands for all.
        state.collector.tls, state.collector.tls_hosts = {}, []
        collector.merge(state.collector)
    collector.keep_pairs = all(state.collector.keep_pairs for _, _, state in read)
    order = {name: place for _, _, state in read for name, place in state.order.items()}
    scenario = dataclasses.replace(
        first.scenario,
        requests=tuple(
            collector.requests[name].request
            for name in sorted(collector.requests, key=lambda name: order.get(name, 0))
        ),
    )
    planned = [state.pairs_planned for _, _, state in read]
    merged: Merged = {
        "reports": len(read),
        "shards": [f"{s.shard[0]}/{s.shard[1]}" for _, _, s in read if s.shard is not None],
    }
    reports = [report for _, report, _ in read]
    report = build_report(
        scenario,
        collector,
        started_at=min(r["started_at"] for r in reports),
        duration_s=max(float(r["duration_s"]) for r in reports),
        interrupted=any(r["interrupted"] for r in reports),
        load=merge_load([state.load for _, _, state in read]),
        redaction_key=redaction_key,
        pairs_planned=None if any(p is None for p in planned) else sum(p or 0 for p in planned),
        merged=merged,
        coverage=merge_coverage([file.coverage for file in files]),
    )
    stops = [r.get("stop") for r in reports if r.get("stop")]
    report["stop"] = stops[0] if stops else None
    try:
        # Each file's counts were within bounds; their sums may not be. A merged report must
        # merge again, so it is read back as a later merge would read it.
        read_state(json.loads(json.dumps(report["state"])))
    except StateError as exc:
        raise UsageError(
            _one_line(f"these reports together pass what a report holds: {exc}")
        ) from None
    return report


def _rules(coverage: CoverageEntry | None) -> tuple[int | None, int | None] | None:
    if coverage is None:
        return None
    ingress, routes = coverage["ingress"], coverage["routes"]
    return (
        None if ingress is None else ingress["rules"],
        None if routes is None else routes["rules"],
    )


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in settings.items() if key != "source"}


def _difference(expected: dict[str, Any], found: dict[str, Any]) -> str:
    keys = [
        key
        for key in {**expected, **found}
        if key != "source" and expected.get(key) != found.get(key)
    ]
    return "differs in " + ", ".join(keys[:5])
