"""How `shadowdiff watch` judges an interval against the checkpoint, and when it calls for a
rollback: never on noise (a false alarm is a bug), always on a clear regression."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.errors import UsageError
from shadowdiff.stats.histogram import LatencyHistogram
from shadowdiff.watch.checkpoint import checkpoint_figures, read_checkpoint
from shadowdiff.watch.compare import Figures, Limits, compare_with_checkpoint
from shadowdiff.watch.rollback import RollbackRules, RollbackState

LIMITS = Limits(error_rate_points=1, p99_ratio=1.5)


def figures(requests: int, errors: int, latencies_ms: list[float]) -> Figures:
    histogram = LatencyHistogram()
    histogram.record([int(value * 1000) for value in latencies_ms])
    return Figures(requests, errors, histogram)


def checkpoint(rng: random.Random, requests: int = 400, error_share: float = 0.01) -> Figures:
    errors = sum(rng.random() < error_share for _ in range(requests))
    return figures(requests, errors, [rng.lognormvariate(3, 0.4) for _ in range(requests)])


def interval(rng: random.Random, requests: int, error_share: float, scale: float = 1.0) -> Figures:
    errors = sum(rng.random() < error_share for _ in range(requests))
    latencies = [scale * rng.lognormvariate(3, 0.4) for _ in range(requests - errors)]
    return figures(requests, errors, latencies)


def test_an_unchanged_candidate_never_calls_for_a_rollback_over_a_long_watch() -> None:
    # 3000 intervals of 20 answers each (over 8 hours at 2 rounds/s, 10 s intervals), drawn
    # from exactly the checkpoint's distribution: one 1% error is 5 points of an interval,
    # and the p99 of 20 answers is their maximum; neither may fire.
    rng = random.Random(7)
    reference = checkpoint(rng)
    state = RollbackState(RollbackRules(1, 1.5, intervals=2))
    crossed = 0
    for _ in range(3000):
        candidate = compare_with_checkpoint(interval(rng, 20, 0.01), reference, LIMITS)
        baseline = compare_with_checkpoint(interval(rng, 20, 0.01), reference, LIMITS)
        crossed += candidate.error_crossed or candidate.p99_crossed
        assert state.decide(candidate, baseline, candidate_in_dns=True).verdict != "rollback"
    assert crossed <= 3  # one interval alone, about 1 in 1000 by design


def test_a_clear_error_regression_is_crossed_in_one_interval() -> None:
    rng = random.Random(1)
    comparison = compare_with_checkpoint(interval(rng, 20, 0.4), checkpoint(rng), LIMITS)
    assert comparison.error_crossed
    assert comparison.error_points_low is not None and comparison.error_points_low > 1


def test_one_slow_answer_is_not_a_p99_regression_but_a_slow_candidate_is() -> None:
    reference = figures(400, 0, [10.0] * 396 + [20.0] * 4)  # p99 10 ms
    one_slow = compare_with_checkpoint(figures(20, 0, [10.0] * 19 + [500.0]), reference, LIMITS)
    assert one_slow.p99_ratio == pytest.approx(50, rel=0.01) and not one_slow.p99_crossed
    slower = compare_with_checkpoint(figures(20, 0, [10.0] * 14 + [40.0] * 6), reference, LIMITS)
    assert slower.p99_crossed and slower.slow_share == 0.3


def test_too_few_answers_are_shown_but_not_judged() -> None:
    reference = figures(400, 0, [10.0] * 400)
    few = compare_with_checkpoint(figures(3, 3, []), reference, LIMITS)
    assert few.error_rate == 1 and not few.enough and not few.error_crossed
    decision = RollbackState(RollbackRules(1)).decide(few, few, candidate_in_dns=True)
    assert decision.verdict == "too_few"


def test_a_rollback_waits_for_dns_and_for_k_intervals_in_a_row() -> None:
    reference = figures(400, 0, [10.0] * 400)
    bad = compare_with_checkpoint(figures(20, 10, [10.0] * 10), reference, LIMITS)
    good = compare_with_checkpoint(figures(20, 0, [10.0] * 20), reference, LIMITS)
    state = RollbackState(RollbackRules(1, None, intervals=2))
    assert state.decide(bad, good, candidate_in_dns=True).verdict == "candidate_worse"
    assert state.decide(good, good, candidate_in_dns=True).verdict == "ok"  # the streak breaks
    assert state.decide(bad, good, candidate_in_dns=False).verdict == "candidate_worse"
    assert state.decide(bad, good, candidate_in_dns=False).verdict == "candidate_worse"
    fired = state.decide(bad, good, candidate_in_dns=True)
    assert fired.verdict == "rollback" and fired.fired == "error_rate_points"
    assert fired.streaks["error_rate_points"] == 3


def test_a_regression_the_baseline_shows_too_is_not_the_candidates() -> None:
    reference = figures(400, 0, [10.0] * 400)
    bad = compare_with_checkpoint(figures(20, 10, [10.0] * 10), reference, LIMITS)
    state = RollbackState(RollbackRules(1, None, intervals=1))
    assert state.decide(bad, bad, candidate_in_dns=True).verdict == "both_worse"


@settings(max_examples=200, deadline=None)
@given(
    requests=st.integers(1, 5000),
    errors=st.integers(0, 5000),
    reference_requests=st.integers(1, 5000),
    reference_errors=st.integers(0, 5000),
)
def test_the_error_interval_never_claims_more_than_the_observed_difference(
    requests: int, errors: int, reference_requests: int, reference_errors: int
) -> None:
    errors, reference_errors = min(errors, requests), min(reference_errors, reference_requests)
    reference = figures(reference_requests, reference_errors, [])
    comparison = compare_with_checkpoint(figures(requests, errors, []), reference, LIMITS)
    observed = (errors / requests - reference_errors / reference_requests) * 100
    assert comparison.error_points_low is not None
    assert comparison.error_points_low <= observed + 1e-9


def _report(**changes: Any) -> dict[str, Any]:
    histogram = LatencyHistogram()
    histogram.record([1000, 2000, 3000])
    side = {"status": {"200": 3, "503": 1}, "failures": {"refused": {"count": 1, "message": "x"}}}
    report: dict[str, Any] = {
        "schema": "shadowdiff.report/1",
        "latency": {"histograms": {s: histogram.to_dict() for s in ("baseline", "candidate")}},
        "requests": [
            {"status": {s: side["status"] for s in ("baseline", "candidate")},
             "failures": {s: side["failures"] for s in ("baseline", "candidate")}}
        ],
    }  # fmt: skip
    report.update(changes)
    return report


def test_a_checkpoint_counts_failures_and_5xx_as_errors() -> None:
    found = checkpoint_figures(_report())
    assert (found["baseline"].requests, found["baseline"].errors) == (5, 2)
    assert found["baseline"].latency.count == 3


HOSTILE_CHECKPOINTS = {
    "not a report": [1, 2, 3],
    "another schema": _report(schema="shadowdiff.report/9"),
    "no histograms": _report(latency={}),
    "histogram counts as text": _report(
        latency={"histograms": {"baseline": {"unit": "us", "buckets": "many"}, "candidate": {}}}
    ),
    "negative count": _report(
        requests=[
            {
                "status": {"baseline": {"200": -1}, "candidate": {}},
                "failures": {"baseline": {}, "candidate": {}},
            }
        ]
    ),
    "a count that is true": _report(
        requests=[
            {
                "status": {"baseline": {"200": True}, "candidate": {}},
                "failures": {"baseline": {}, "candidate": {}},
            }
        ]
    ),
    "requests not a list": _report(requests={"a": 1}),
}


@pytest.mark.parametrize("document", HOSTILE_CHECKPOINTS.values(), ids=HOSTILE_CHECKPOINTS.keys())
def test_a_checkpoint_that_is_not_a_run_report_is_a_located_error(document: Any) -> None:
    with pytest.raises(UsageError, match="checkpoint"):
        checkpoint_figures(document, "checkpoint")


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000, b"\xff\xfe not json", b'{"schema": "shadowdiff.report/1"'],
    ids=["nested too deep", "not text", "cut short"],
)
def test_a_hostile_checkpoint_file_is_a_usage_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=str(path)):
        read_checkpoint(path)


def test_a_checkpoint_round_trips_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(_report()))
    assert read_checkpoint(path)["candidate"].errors == 2


@pytest.mark.parametrize(
    ("rollback_when", "expected"),
    [
        (
            "{error_rate_points: 0}",
            "rollback_when.error_rate_points: input should be greater than 0",
        ),
        ("{p99_ratio: 0.5}", "rollback_when.p99_ratio: input should be greater than 1"),
        ("{intervals: 2}", "rollback_when: rollback_when needs error_rate_points or p99_ratio"),
        ("{error_rate_point: 1}", "rollback_when.error_rate_point: unknown field"),
    ],
    ids=["zero points", "ratio under 1", "no limit", "typo"],
)
def test_rollback_when_is_validated_with_located_errors(
    tmp_path: Path, rollback_when: str, expected: str
) -> None:
    from shadowdiff.errors import ScenarioError
    from shadowdiff.scenario.load import parse_scenario

    text = (
        "targets: {baseline: {address: 127.0.0.1}, candidate: {address: 127.0.0.2}}\n"
        "requests: [{name: home, url: 'https://app.example.com/'}]\n"
        f"rollback_when: {rollback_when}\n"
    )
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text, "shop.yaml", base_dir=tmp_path)
    assert any(
        str(problem).startswith("shop.yaml:3:") and expected in str(problem)
        for problem in raised.value.problems
    ), [str(p) for p in raised.value.problems]


def test_rollback_when_reaches_the_scenario(tmp_path: Path) -> None:
    from shadowdiff.scenario.load import parse_scenario

    text = (
        "targets: {baseline: {address: 127.0.0.1}, candidate: {address: 127.0.0.2}}\n"
        "requests: [{name: home, url: 'https://app.example.com/'}]\n"
        "rollback_when: {error_rate_points: 1, p99_ratio: 1.5, intervals: 3}\n"
    )
    rules = parse_scenario(text, "shop.yaml", base_dir=tmp_path).rollback_when
    assert rules is not None and (rules.error_rate_points, rules.p99_ratio, rules.intervals) == (
        1,
        1.5,
        3,
    )
