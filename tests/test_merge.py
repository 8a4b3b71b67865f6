"""`merge`, in process: reports of disjoint shares merge into exactly the report of the whole
run, and no change to a report's state ends in anything but a located error."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowdiff.difference import Difference
from shadowdiff.errors import UsageError
from shadowdiff.observation import Observation, Timings, TransportFailure
from shadowdiff.pair import Pair
from shadowdiff.replay.pacing import deal, iter_requests
from shadowdiff.replay.shard import Shard
from shadowdiff.report.collect import RunCollector
from shadowdiff.report.document import build_report, write_report
from shadowdiff.report.merge import merge_reports
from shadowdiff.scenario import Scenario, parse_scenario
from shadowdiff.tls import HostTls
from shadowdiff.tls.probe import TlsPosture

SCENARIO = """\
targets:
  baseline: {address: 127.0.0.1}
  candidate: {address: 127.0.0.2}
compare: {noise: {share: 0}}
thresholds:
  - candidate.p99 < 4ms
  - difference_rate < 20%
requests:
  - {name: home, url: 'http://app.example.com/', repeat: 300}
  - {name: cart, url: 'http://app.example.com/cart', repeat: 120}
  - {name: api, url: 'http://app.example.com/api', repeat: 40}
"""
KEY = (b"k" * 32, "environment")


def _scenario(tmp_path: Path) -> Scenario:
    return parse_scenario(SCENARIO, "s.yaml", base_dir=tmp_path, environ={})


def _pairs(scenario: Scenario) -> list[Pair]:
    """The whole run's pairs: latencies drawn once, a header lost on every third cart pair,
    a refused connection now and then."""
    rng = np.random.default_rng(7)
    pairs = []
    for index, (request, repetition) in enumerate(iter_requests(scenario)):
        baseline_ns, candidate_ns = (int(v) for v in rng.integers(200_000, 6_000_000, size=2))
        candidate = Observation(
            "candidate", status=200, timings=Timings(0, connect_ns=90_000, total_ns=candidate_ns)
        )
        differences: tuple[Difference, ...] = ()
        if request.name == "cart" and repetition % 3 == 0:
            differences = (
                Difference("header_missing", "x-frame-options", f"DENY-{index % 5}", None, "error"),
            )
        if request.name == "api" and repetition % 10 == 0:
            candidate = Observation(
                "candidate",
                failure=TransportFailure("refused", "connection refused"),
                timings=Timings(0),
            )
            differences = (Difference("transport", "error", "200", "refused", "error"),)
        pairs.append(
            Pair(
                index,
                request,
                Observation("baseline", status=200, timings=Timings(0, total_ns=baseline_ns)),
                candidate,
                differences,
                repetition=repetition,
            )
        )
    return pairs


def _report(
    scenario: Scenario, pairs: list[Pair], shard: Shard | None, coverage: Any = None
) -> Any:
    collector = RunCollector(accept=scenario.accept)
    for pair in pairs:
        collector(pair)
    # Every shard probes TLS alike; the merged report takes the first one's probe.
    probed_at = "2026-12-02T10:00:00+00:00"
    collector.add_tls(
        HostTls(
            "app.example.com",
            TlsPosture("baseline", "app.example.com", probed_at, version="TLSv1.3"),
            TlsPosture("candidate", "app.example.com", probed_at, version="TLSv1.2"),
            (Difference("tls_protocol", "TLSv1.3", "accepted", "refused", "warning"),),
        )
    )
    return build_report(
        scenario,
        collector,
        started_at="2026-12-02T10:00:00+00:00",
        duration_s=1.0,
        redaction_key=KEY,  # type: ignore[arg-type]
        shard=None if shard is None else (shard.index, shard.count),
        coverage=coverage,
        pairs_planned=...
        if shard is None
        else sum(1 for _ in deal(iter_requests(scenario), shard.share(), lambda i: i[0].name)),
    )


def write_shard_reports(
    tmp_path: Path, count: int = 4, coverage: list[Any] | None = None
) -> tuple[Any, list[str]]:
    scenario = _scenario(tmp_path)
    pairs = _pairs(scenario)
    paths = []
    for k in range(count):
        shard = Shard(k, count)
        mine = {
            index for index, _ in deal(iter_requests(scenario), shard.share(), lambda i: i[0].name)
        }
        path = tmp_path / f"shard-{k}.json"
        mine_pairs = [p for p in pairs if p.index in mine]
        write_report(path, _report(scenario, mine_pairs, shard, coverage and coverage[k]))
        paths.append(str(path))
    return _report(scenario, pairs, None), paths


def test_merged_shards_are_exactly_the_whole_runs_report(tmp_path: Path) -> None:
    whole, paths = write_shard_reports(tmp_path)
    merged = merge_reports(paths, redaction_key=KEY)  # type: ignore[arg-type]
    whole = json.loads(json.dumps(whole))
    merged = json.loads(json.dumps(merged))
    # Built by one function from equal collectors: equal in every figure. Only what says how
    # the report came to be may differ.
    for report in (whole, merged):
        for key in ("shard", "merged", "state"):
            report.pop(key)
    assert merged.pop("stop") is None  # set as `run` sets it (build_report alone does not)
    assert merged == whole
    assert whole["totals"]["pairs_with_differences"] == 40 + 4
    assert [t["passed"] for t in whole["thresholds"]] == [False, True]


def test_shards_of_a_run_under_load_merge(tmp_path: Path) -> None:
    # The state kept the load settings with every default written out (`speed: 1.0`), and
    # reading them back refused speed without `pace: recorded`: no run with a `load:` merged.
    scenario = parse_scenario(
        SCENARIO.replace("compare:", "load: {model: open, rate: 50, duration_s: 2}\ncompare:"),
        "s.yaml",
        base_dir=tmp_path,
        environ={},
    )
    pairs = _pairs(scenario)
    paths = []
    for k in range(2):
        shard = Shard(k, 2)
        mine = {i for i, _ in deal(iter_requests(scenario), shard.share(), lambda i: i[0].name)}
        path = tmp_path / f"shard-{k}.json"
        write_report(path, _report(scenario, [p for p in pairs if p.index in mine], shard))
        paths.append(str(path))
    merged = merge_reports(paths, redaction_key=KEY)  # type: ignore[arg-type]
    assert merged["totals"]["pairs"] == len(pairs)


def test_examples_stay_capped_and_counts_add_up(tmp_path: Path) -> None:
    _, paths = write_shard_reports(tmp_path)
    merged = merge_reports(paths, redaction_key=KEY)  # type: ignore[arg-type]
    (cart,) = [entry for entry in merged["requests"] if entry["name"] == "cart"]
    (lost,) = [d for d in cart["differences"] if d["field"] == "x-frame-options"]
    assert lost["count"] == 40 and len(lost["examples"]) == 3


def _coverage(uncovered: list[str]) -> Any:
    return {
        "ingress": {"rules": 4, "covered": 4 - len(uncovered), "uncovered": uncovered},
        "routes": None,
        "share": (4 - len(uncovered)) / 4,
        "min": 0.75,
    }


def test_a_rule_any_shard_reached_is_reached_by_the_merged_run(tmp_path: Path) -> None:
    # Each shard reached half the rules, and failed its `coverage.min` of 75%; together they
    # reached three of the four.
    shards = [_coverage(["ns/a rule 0", "ns/b rule 0"]), _coverage(["ns/b rule 0", "ns/c rule 1"])]
    _, paths = write_shard_reports(tmp_path, count=2, coverage=shards)
    for path in paths:
        check = json.loads(Path(path).read_text())["thresholds"][-1]
        assert check["check"] == "coverage >= 75%" and not check["passed"]
    merged = merge_reports(paths, redaction_key=KEY)  # type: ignore[arg-type]
    coverage = merged["coverage"]
    assert coverage is not None and coverage["ingress"] == {
        "rules": 4,
        "covered": 3,
        "uncovered": ["ns/b rule 0"],
    }
    assert coverage["share"] == 0.75 and merged["thresholds"][-1]["passed"]


# Hostile states: any value put anywhere in a report's state is read, or refused by name.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            found += _paths(item, (*prefix, index))
    return found


def _at(report: dict[str, Any], root: tuple[str, ...]) -> Any:
    return report[root[0]] if root else report


@pytest.fixture(scope="module")
def shard_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("hostile")
    _, paths = write_shard_reports(folder, count=1)
    loaded: dict[str, Any] = json.loads(Path(paths[0]).read_text())
    loaded["pairs"] = loaded["pairs"][:3]  # a shorter report is quicker to change 60 times
    return loaded


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), value=_JSON)
def test_any_change_to_a_report_is_merged_or_refused_by_name(
    shard_report: dict[str, Any], tmp_path: Path, data: st.DataObject, value: Any
) -> None:
    report = copy.deepcopy(shard_report)
    # Mostly in the state (what merge reads most of), also anywhere else in the report. The
    # draws are of a fixed shape whatever the report holds (an index taken modulo the paths
    # there are): a draw whose shape follows the data makes Hypothesis's replays inconsistent.
    roots = [
        root for root in (("state",), ("state",), ("tls",), ()) if _paths(_at(report, root))[1:]
    ]
    root = roots[data.draw(st.integers(0, 2**16)) % len(roots)]
    start: Any = _at(report, root)
    paths = _paths(start)[1:]
    where = paths[data.draw(st.integers(0, 2**16)) % len(paths)]
    target = start
    for part in where[:-1]:
        target = target[part]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[where[-1]]
    else:
        target[where[-1]] = value
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(report))
    try:
        merged = merge_reports([str(path)], redaction_key=KEY)  # type: ignore[arg-type]
    except UsageError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
    else:
        # What is read is written back as plain JSON: no Infinity, NaN or numbers beyond
        # any count (a hand-written 10**70 must not come out as seventy digits).
        text = json.dumps(merged, allow_nan=False)
        assert not re.search(r"[:,\[]\s*-?\d{20}", text), text[:200]


@pytest.mark.parametrize(
    ("where", "value", "said"),
    [
        (("collector", "pairs_done"), 10**70, "got 'a number of 71 digits'"),
        (("collector", "pairs_with_differences"), 2**53 + 1, "from 0 to 2**53"),
        (("collector", "pairs_done"), float("inf"), "expected a whole number"),
    ],
)
def test_numbers_beyond_any_run_are_refused_by_name(
    shard_report: dict[str, Any], tmp_path: Path, where: tuple[str, str], value: Any, said: str
) -> None:
    report = copy.deepcopy(shard_report)
    report["state"][where[0]][where[1]] = value
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(report))  # Python writes inf as Infinity, as a hand could
    with pytest.raises(UsageError) as refused:
        merge_reports([str(path)], redaction_key=KEY)  # type: ignore[arg-type]
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and said in message, message
    assert where[1] in message and len(message) < 300, message


@pytest.mark.parametrize("field", ["backends", "grpc"])
@pytest.mark.parametrize("value", [0, "", False, []])
def test_counts_that_are_no_object_are_refused_not_read_as_none(
    shard_report: dict[str, Any], tmp_path: Path, field: str, value: Any
) -> None:
    """`backends` and `grpc` are written only when there are some: a falsy value that is
    there was written by hand, and is refused like any other wrong type."""
    report = copy.deepcopy(shard_report)
    report["state"]["collector"]["requests"][0][field] = value
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(report))
    with pytest.raises(UsageError) as refused:
        merge_reports([str(path)], redaction_key=KEY)  # type: ignore[arg-type]
    assert f"requests[0].{field}" in str(refused.value), str(refused.value)


def test_counts_that_add_up_past_what_a_report_holds_are_refused_by_name(
    tmp_path: Path,
) -> None:
    """Each file holds a count a report may hold; their sum would be one that no later merge
    reads back: refused, rather than written."""
    _, paths = write_shard_reports(tmp_path, count=2)
    for path in paths:
        report = json.loads(Path(path).read_text())
        report["state"]["collector"]["pairs_done"] = 2**53
        Path(path).write_text(json.dumps(report))
    with pytest.raises(UsageError) as refused:
        merge_reports(paths, redaction_key=KEY)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "pairs_done" in message and "2**53" in message and "\n" not in message, message


def test_a_missing_date_or_failure_message_is_refused_by_name(
    shard_report: dict[str, Any], tmp_path: Path
) -> None:
    """Found by the property test above: both ended in a KeyError (exit 70)."""
    without_today = copy.deepcopy(shard_report)
    del without_today["state"]["today"]
    without_message = copy.deepcopy(shard_report)
    tally = next(
        t for t in without_message["state"]["collector"]["requests"] if t["failures"]["candidate"]
    )
    failed = next(iter(tally["failure_messages"]["candidate"]))
    del tally["failure_messages"]["candidate"][failed]
    for report, said in ((without_today, "state.today"), (without_message, "a message for")):
        path = tmp_path / "tampered.json"
        path.write_text(json.dumps(report))
        with pytest.raises(UsageError) as refused:
            merge_reports([str(path)], redaction_key=KEY)  # type: ignore[arg-type]
        assert said in str(refused.value), str(refused.value)
