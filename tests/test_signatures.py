"""Signature decisions (noise, acceptance) and folding across routes. Pure."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from shadowdiff.compare import Difference
from shadowdiff.compare.acceptance import find_acceptance
from shadowdiff.compare.observations import compare
from shadowdiff.observation import Observation, TransportFailure
from shadowdiff.pair import Pair
from shadowdiff.report.collect import RunCollector
from shadowdiff.report.signatures import NoiseThresholds, fold_signatures, route_pattern
from shadowdiff.scenario.model import Acceptance
from shadowdiff.spec import RequestSpec, Side

TOKEN = Difference("json_field", "$.token", '"a"', '"b"', "error")
HSTS = Difference("header_missing", "strict-transport-security", "max-age=1", None, "error")


def request(name: str = "r", url: str = "https://app.example.com/x") -> RequestSpec:
    return RequestSpec(name, "GET", url, (), None)


def run(
    pairs: int,
    differing: int,
    noise_samples: int,
    noisy: int,
    difference: Difference = TOKEN,
) -> str:
    """The status decided for `difference` seen in `differing` of `pairs` candidate pairs and
    in `noisy` of `noise_samples` baseline-vs-baseline pairs."""
    collector = RunCollector()
    spec = request()
    for index in range(pairs):
        noise = None
        if index < noise_samples:
            noise = (difference,) if index < noisy else ()
        found = (difference,) if index < differing else ()
        collector(
            Pair(index, spec, Observation("baseline"), Observation("candidate"), found, noise)
        )
    lines, _ = fold_signatures(collector.requests.values(), NoiseThresholds())
    (line,) = lines
    return str(line["status"])


@pytest.mark.parametrize(
    ("pairs", "differing", "samples", "noisy", "status"),
    [
        (100, 100, 10, 10, "noise"),  # a random token: differs always, on both
        (100, 60, 50, 1, "reported"),  # 2% noise on the baseline, 60% on the candidate
        (100, 5, 10, 0, "reported"),  # never noisy on the baseline: any rate is reported
        (100, 4, 50, 1, "noise"),  # 2% vs 4%: within the absolute margin
        (100, 100, 0, 0, "reported"),  # no calibration at all
    ],
    ids=["random-token", "rare-noise-frequent-change", "no-noise", "within-margin", "uncalibrated"],
)
def test_noise_decision(pairs: int, differing: int, samples: int, noisy: int, status: str) -> None:
    assert run(pairs, differing, samples, noisy) == status


def refusals(
    baseline_refused: list[bool],
    candidate_refused: list[bool],
    baseline_status: int = 503,
    candidate_status: int = 503,
) -> str:
    """The status decided for `status` differences between two sides whose answers are
    `*_status` where marked (a status of 0 is no answer: a reset), else 200, with status noisy
    on every calibration (a flapping baseline)."""
    collector = RunCollector()
    spec = request()
    kind = "status" if candidate_status else "transport"
    noise = (
        Difference("status", "status", "503", "200", "error")
        if candidate_status
        else Difference("transport", "error", "reset", "HTTP 200", "error"),
    )
    for index, (b, c) in enumerate(zip(baseline_refused, candidate_refused, strict=True)):
        baseline = _answer("baseline", baseline_status if b else 200)
        candidate = _answer("candidate", candidate_status if c else 200)
        found = tuple(compare(spec, baseline, candidate))
        collector(Pair(index, spec, baseline, candidate, found, noise))
    lines, _ = fold_signatures(collector.requests.values(), NoiseThresholds())
    return str(next(line for line in lines if line["kind"] == kind)["status"])


def _answer(side: Side, status: int) -> Observation:
    if status:
        return Observation(side, status=status)
    return Observation(side, failure=TransportFailure("reset", "connection reset by peer"))


def test_a_candidate_refusing_clearly_more_is_reported_however_noisy_status_is() -> None:
    # A baseline limit refusing a fifth of the pairs, a candidate refusing them all.
    assert refusals([i % 5 == 0 for i in range(48)], [True] * 48) == "reported"
    # 5% against 12% of 300 pairs: past the thresholds, and past chance.
    assert refusals([i % 20 == 0 for i in range(300)], [i % 8 == 0 for i in range(300)]) == (
        "reported"
    )


@pytest.mark.parametrize(
    ("baseline_status", "candidate_status"), [(503, 502), (503, 504), (429, 500), (0, 0)], ids=str
)
def test_a_candidate_failing_clearly_more_beside_a_limited_baseline_is_reported(
    baseline_status: int, candidate_status: int
) -> None:
    # A baseline limit refusing a fifth of the pairs (503, or resetting: 0) makes status
    # noisy on nearly every calibration; a candidate answering 502 (or resetting) on half of
    # them is plainly worse. Counted by 429 and 503 answers alone, it passed: 50% of 502s
    # against 81% of status noise on a rate-limited baseline, 5 runs of 5.
    half = [i % 2 == 0 for i in range(96)]
    fifth = [i % 5 == 0 for i in range(96)]
    assert refusals(fifth, half, baseline_status, candidate_status) == "reported"


@pytest.mark.parametrize("status", [502, 504, 429, 0], ids=str)
def test_identical_sides_failing_alike_are_not_told_apart(status: int) -> None:
    # Chance alone still tells such sides apart now and then: in about 3 runs of 300 pairs in
    # 1000 (a 95% interval), more in short runs (about 1 in 80 of 30 pairs).
    rng = np.random.default_rng(1)
    decided = [
        refusals(list(rng.random(300) < 0.2), list(rng.random(300) < 0.2), status, status)
        for _ in range(50)
    ]
    assert decided.count("noise") == 50


def test_identical_flapping_sides_are_not_told_apart_by_chance() -> None:
    # Both sides refuse a random fifth: their shares differ past the noise thresholds in about
    # one run of 300 pairs in seven by chance alone (29 of these 200), never past the interval.
    rng = np.random.default_rng(1)
    decided = [
        refusals(list(rng.random(300) < 0.2), list(rng.random(300) < 0.2)) for _ in range(200)
    ]
    assert decided.count("noise") == 200


def calibrated_run(rng: np.random.Generator, pairs: int, share: float, candidate: float) -> str:
    """The status decided for `status` in one run where the baseline answers 503 to a random
    `share` of requests (the pair's own and the calibration's alike) and the candidate to a
    random `candidate` share; every pair calibrated, with no refused calibration set aside."""
    collector = RunCollector()
    spec = request()
    for index in range(pairs):
        own, again, theirs = (
            503 if rng.random() < rate else 200 for rate in (share,) * 2 + (candidate,)
        )
        noise = (
            (Difference("status", "status", str(own), str(again), "error"),) if own != again else ()
        )
        found = (
            (Difference("status", "status", str(own), str(theirs), "error"),)
            if own != theirs
            else ()
        )
        collector(
            Pair(
                index,
                spec,
                Observation("baseline", status=own),
                Observation("candidate", status=theirs),
                found,
                noise,
            )
        )
    lines, _ = fold_signatures(collector.requests.values(), NoiseThresholds())
    return next((str(line["status"]) for line in lines if line["kind"] == "status"), "alike")


def test_a_noise_rate_from_few_samples_is_judged_with_its_interval() -> None:
    # Two identical entry points, a fifth of answers 503 on each, runs of 30 pairs: comparing
    # the two rates themselves reported status in 61 of 200 such runs (a false alarm); a
    # candidate that refuses everything is reported in every run all the same.
    rng = np.random.default_rng(0)
    identical = [calibrated_run(rng, 30, 0.2, 0.2) for _ in range(200)]
    assert identical.count("reported") <= 10, identical.count("reported")
    assert all(calibrated_run(rng, 30, 0.2, 1.0) == "reported" for _ in range(50))


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("https://a.example.com/orders/123?x=1", "/orders/{n}"),
        (
            "https://a.example.com/u/0c5b2a8e-1d3f-4b6a-9c7e-2f1e3d4c5b6a/profile",
            "/u/{uuid}/profile",
        ),
        ("https://a.example.com/blob/4bf92f3577b34da6a3ce929d0e0e4736", "/blob/{hex}"),
        ("https://a.example.com", "/"),
    ],
)
def test_route_pattern_generalises_identifiers(url: str, pattern: str) -> None:
    assert route_pattern(url) == pattern


def test_same_difference_on_many_routes_folds_into_one_line() -> None:
    collector = RunCollector()
    paths = ["/shop/a", "/shop/b", "/shop/c", "/shop/d"]
    for index, path in enumerate(paths):
        spec = request(f"page {path}", f"https://app.example.com{path}")
        collector(Pair(index, spec, Observation("baseline"), Observation("candidate"), (HSTS,)))
    other = request("api", "https://api.example.com/v1")
    collector(Pair(9, other, Observation("baseline"), Observation("candidate"), (HSTS,)))
    lines, _ = fold_signatures(collector.requests.values(), NoiseThresholds())
    summary = sorted(
        (line["host"], line["route"], line["count"], len(line["requests"])) for line in lines
    )
    assert summary == [("api.example.com", "/v1", 1, 1), ("app.example.com", "/shop/*", 4, 4)]


def rule(**fields: object) -> Acceptance:
    return Acceptance.model_validate({"reason": "known", **fields})


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([rule(field="strict-transport-security")], "in force"),
        ([rule(field="strict-*", kind="header_missing")], "in force"),
        ([rule(field="strict-transport-security", kind="header_added")], None),
        ([rule(field="strict-transport-security", request="api*")], None),
        ([rule(field="strict-transport-security", host="api.example.com")], None),
        ([rule(field="strict-transport-security", baseline="max-age=1")], "in force"),
        ([rule(field="strict-transport-security", candidate="max-age=1")], None),
        ([rule(field="strict-transport-security", until="2026-01-01")], "expired"),
        (
            [rule(field="strict-transport-security", until="2026-01-01"), rule(field="*")],
            "in force",
        ),
    ],
    ids=[
        "field",
        "glob-and-kind",
        "other-kind",
        "other-request",
        "other-host",
        "baseline-value",
        "candidate-value",
        "expired",
        "prefers-rule-in-force",
    ],
)
def test_acceptance_matching(rules: list[Acceptance], expected: str | None) -> None:
    match = find_acceptance(rules, request(), HSTS, datetime.date(2026, 6, 1))
    if expected is None:
        assert match is None
    else:
        assert match is not None and match.expired == (expected == "expired")
