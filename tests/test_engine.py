"""The replay engine with real servers: every pair accounted for, failures as findings."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from shadowdiff.observation import Observation, Timings
from shadowdiff.pair import Pair
from shadowdiff.replay.engine import replay
from shadowdiff.report import ExitCode, RunCollector, build_report
from shadowdiff.report.schema import Report
from shadowdiff.scenario import Scenario, load_scenario
from shadowdiff.spec import RequestSpec, Side

from .conftest import unused_port


async def _replayed(scenario: Scenario) -> Report:
    """The report of one replay of `scenario`, as `run` builds it."""
    collector = RunCollector()
    await replay(scenario, collector)
    return build_report(scenario, collector, started_at="t", duration_s=1.0)


async def _failing(request: web.Request) -> web.Response:
    """A candidate whose every request fails: the regression noise must never hide."""
    return web.Response(status=503, text="no healthy upstream")


async def test_thousand_pairs_are_all_accounted_for(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            """\
            defaults: {concurrency: 32}
            requests:
              - {name: home, url: "https://app.example.com/", repeat: 400}
            matrix:
              - {name: api, schemes: [http, https], hosts: [api.example.com], paths: [/a, /b], repeat: 150}
            """,
            ca_file,
        )
    )
    collector = RunCollector()
    outcome = await replay(scenario, collector)
    report = build_report(scenario, collector, started_at="t", duration_s=1.0)

    assert outcome.pairs == scenario.pair_count == 1000 and outcome.model == "requests"
    assert report["totals"]["pairs"] == 1000
    assert sum(entry["pairs"] for entry in report["requests"]) == 1000
    assert report["pairs"] is not None
    assert sorted(record["index"] for record in report["pairs"]) == list(range(1000))
    # Noise calibration sends the first of each request, and about a tenth of the rest, to the
    # baseline a second time; nothing else is sent.
    calibrated = sum(entry["noise_samples"] for entry in report["requests"])
    assert len(candidate.requests) == 1000
    assert len(baseline.requests) == 1000 + calibrated
    assert 5 + 0.05 * 995 < calibrated < 5 + 0.15 * 995
    assert report["outcome"]["exit_code"] == ExitCode.IDENTICAL


async def test_refused_side_is_a_finding_not_a_crash(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    baseline = await start_entry_point()
    closed = f"address: 127.0.0.2\n    ports: {{http: {unused_port('127.0.0.2')}, https: {unused_port('127.0.0.2')}}}"
    scenario = load_scenario(
        write_scenario(
            baseline,
            closed,
            "requests:\n  - {name: a, url: 'https://app.example.com/', repeat: 5}\n",
            ca_file,
        )
    )
    report = await _replayed(scenario)

    (request,) = report["requests"]
    assert request["status"]["baseline"] == {"200": 5}
    assert request["failures"]["candidate"]["refused"]["count"] == 5
    assert request["differences"][0]["kind"] == "transport"
    assert report["outcome"]["exit_code"] == ExitCode.RUN_FAILED
    assert "candidate failed every request (refused)" in report["outcome"]["reason"]


async def test_environment_values_never_reach_the_report(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:

    async def leaky(request: web.Request) -> web.Response:
        return web.json_response({"auth": request.headers.get("Authorization", "")})

    baseline = await start_entry_point(handler=leaky)
    candidate = await start_entry_point(
        "127.0.0.2", handler=lambda r: web.json_response({"auth": ""})
    )
    path = write_scenario(
        baseline,
        candidate,
        "requests:\n  - {name: a, url: 'https://app.example.com/', headers: {Authorization: 'Bearer ${TOKEN}'}}\n",
        ca_file,
    )
    scenario = load_scenario(path, environ={"TOKEN": "very-secret-token"})
    report = await _replayed(scenario)
    text = repr(report)
    assert "very-secret-token" not in text
    assert "[redacted " in text  # the difference is still shown, as a fingerprint


class RecordingTransport:
    """In-memory transport that records when each send starts and ends, by request URL."""

    def __init__(
        self, side: Side, events: list[tuple[str, Side, str]], in_flight: list[int]
    ) -> None:
        self.side = side
        self.events = events
        self.in_flight = in_flight

    async def send(self, request: RequestSpec, traceparent: str | None = None) -> Observation:
        self.in_flight[0] += 1
        self.in_flight[1] = max(self.in_flight[1], self.in_flight[0])
        self.events.append(("start", self.side, request.url))
        await asyncio.sleep(0.001)
        self.events.append(("end", self.side, request.url))
        self.in_flight[0] -= 1
        return Observation(side=self.side, status=200, timings=Timings(started_ns=0, total_ns=1))

    def start(self, request: RequestSpec, traceparent: str | None = None) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(self.send(request, traceparent))

    async def close(self) -> None:
        pass


async def test_pairs_start_together_in_both_orders_within_concurrency(
    write_scenario: Callable[..., Path],
) -> None:
    # One distinct URL per pair, so that each event names its pair.
    requests = "".join(
        f"  - {{name: r{n}, url: 'https://app.example.com/{n}'}}\n" for n in range(200)
    )
    scenario: Scenario = load_scenario(
        write_scenario(
            "address: 127.0.0.1",
            "address: 127.0.0.1",
            "defaults: {concurrency: 4}\ncompare: {noise: {share: 0}}\nrequests:\n" + requests,
        )
    )
    events: list[tuple[str, Side, str]] = []
    in_flight = [0, 0]
    pairs: list[Pair] = []
    await replay(
        scenario,
        pairs.append,
        transport_factory=lambda endpoint, n: RecordingTransport(endpoint.side, events, in_flight),
        seed=1,
    )
    assert len(pairs) == 200
    assert 2 < in_flight[1] <= 2 * 4  # two sends per pair, four pairs in flight
    by_pair: dict[str, list[tuple[str, Side]]] = {}
    for kind, side, url in events:
        by_pair.setdefault(url, []).append((kind, side))
    assert len(by_pair) == 200
    for url, pair_events in by_pair.items():
        # Both sends start before either ends: neither waits for the other.
        assert [kind for kind, _ in pair_events[:2]] == ["start", "start"], (url, pair_events)
    first_sides = [pair_events[0][1] for pair_events in by_pair.values()]
    assert 60 < first_sides.count("baseline") < 140  # random order, not always one side first


async def test_noise_calibration_sets_random_fields_aside_and_keeps_real_ones(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    import secrets

    def page(version: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            return web.json_response({"csrf": secrets.token_hex(8), "version": version})

        return handle

    baseline = await start_entry_point(handler=page("1.4"))
    candidate = await start_entry_point("127.0.0.2", handler=page("1.5"))
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            "compare: {noise: {share: 0.5}}\nrequests:\n  - {name: page, url: 'https://app.example.com/', repeat: 40}\n",
            ca_file,
        )
    )
    report = await _replayed(scenario)
    by_field = {line["field"]: line["status"] for line in report["signatures"]}
    assert by_field == {"$.csrf": "noise", "$.version": "reported"}
    assert report["totals"]["pairs_with_differences"] == 40


async def test_calibration_never_doubles_the_baseline_requests_a_client_has_open(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:

    # A baseline that refuses a client's second request in flight, as ingress-nginx's
    # limit-connections annotation does, and a candidate that fails every request. The
    # calibration's request, sent beside the pair's, was refused: `status` became noise on
    # 100% of samples, and the candidate's 503s were all ruled noise (exit 0).
    open_requests = [0]

    async def limited(request: web.Request) -> web.Response:
        if open_requests[0] >= 1:
            return web.Response(status=503, text="limit-connections")
        open_requests[0] += 1
        try:
            await asyncio.sleep(0.01)
            return web.Response(text="ok")
        finally:
            open_requests[0] -= 1

    baseline = await start_entry_point(handler=limited)
    candidate = await start_entry_point("127.0.0.2", handler=_failing)
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            "defaults: {concurrency: 1}\ncompare: {noise: {share: 0.5}}\n"
            "requests:\n  - {name: page, url: 'https://app.example.com/', repeat: 10}\n",
            ca_file,
        )
    )
    report = await _replayed(scenario)
    assert report["requests"][0]["status"]["baseline"] == {"200": 10}
    statuses = [s for s in report["signatures"] if s["kind"] == "status"]
    assert [(s["status"], s["count"]) for s in statuses] == [("reported", 10)], statuses
    assert report["outcome"]["exit_code"] == ExitCode.DIFFERENCES


def _flapping() -> Callable[[web.Request], Awaitable[web.Response]]:
    """An entry point whose upstream flaps: 503 to every third request it receives."""
    received = [0]

    async def handler(request: web.Request) -> web.Response:
        received[0] += 1
        if received[0] % 3 == 0:
            return web.Response(status=503, text="upstream flapped")
        return web.Response(text="ok")

    return handler


@pytest.mark.parametrize("candidate_fails", [False, True], ids=["flapping too", "failing"])
async def test_a_flapping_baseline_is_calibrated_as_it_answers(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    candidate_fails: bool,
) -> None:
    # A baseline that refuses its own pairs' requests too refuses calibrations as often by
    # chance. Setting those aside left only the calibrations where the pair's answer was the
    # refused one, status noise looked rarer than it is, and identical entry points failed
    # (exit 1). And a candidate refusing every request beside it passed (exit 0): the noise
    # rate, over calibrations mostly a 503 beside a 200, came near the candidate's own rate.
    baseline = await start_entry_point(handler=_flapping())
    candidate = await start_entry_point(
        "127.0.0.2", handler=_failing if candidate_fails else _flapping()
    )
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            "defaults: {concurrency: 1}\ncompare: {noise: {share: 1}}\n"
            "requests:\n  - {name: page, url: 'https://app.example.com/', repeat: 30}\n",
            ca_file,
        )
    )
    report = await _replayed(scenario)
    assert report["requests"][0]["noise_refused"] == 0
    (status,) = [s for s in report["signatures"] if s["kind"] == "status"]
    assert (status["noise_rate"] or 0) > 0.3  # noisy indeed
    if candidate_fails:
        assert status["status"] == "reported", status
        assert report["outcome"]["exit_code"] == ExitCode.DIFFERENCES
    else:
        assert status["status"] == "noise", status
        assert report["outcome"]["exit_code"] == ExitCode.IDENTICAL


async def test_an_interruption_during_the_calibration_keeps_the_answered_pair(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:

    # The baseline stalls the calibration's request (its second); Ctrl-C then comes while
    # only that request is out. The pair was answered on both sides: the report keeps it.
    calibrating, released = asyncio.Event(), asyncio.Event()
    received = [0]

    async def stalls_the_second(request: web.Request) -> web.Response:
        received[0] += 1
        if received[0] == 2:
            calibrating.set()
            await released.wait()
        return web.Response(text="ok")

    baseline = await start_entry_point(handler=stalls_the_second)
    candidate = await start_entry_point("127.0.0.2")
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            "defaults: {concurrency: 1}\n"
            "requests:\n  - {name: page, url: 'https://app.example.com/', repeat: 3}\n",
            ca_file,
        )
    )
    collector = RunCollector()
    running = asyncio.ensure_future(replay(scenario, collector))
    try:
        await asyncio.wait_for(calibrating.wait(), 10)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    finally:
        released.set()
    assert collector.pairs_done == 1
    report = build_report(scenario, collector, started_at="t", duration_s=1.0)
    assert report["requests"][0]["pairs"] == 1 and report["requests"][0]["noise_samples"] == 0


async def test_a_calibration_refused_by_a_rate_limit_is_no_noise_and_is_said(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    from rich.console import Console

    from shadowdiff.render.html import render_html
    from shadowdiff.render.junit import render_junit
    from shadowdiff.render.markdown import render_markdown
    from shadowdiff.render.terminal import render_report

    # A baseline that serves one request per 50 ms and refuses the rest, as ingress-nginx's
    # limit-rps does without a burst, and a candidate that fails every request. Pairs come
    # 100 ms apart, so the pair's own request is served and the calibration's, right after
    # it, is refused: that is the limit, not an answer that varies, and counted as noise it
    # made every status difference noise (exit 0).
    last_served_s = [-1.0]

    async def rate_limited(request: web.Request) -> web.Response:
        now_s = asyncio.get_running_loop().time()
        if now_s - last_served_s[0] < 0.05:
            return web.Response(status=503, text="limit-rps")
        last_served_s[0] = now_s
        return web.Response(text="ok")

    baseline = await start_entry_point(handler=rate_limited)
    candidate = await start_entry_point("127.0.0.2", handler=_failing)
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            "compare: {noise: {share: 1}}\nload: {model: open, rate: 10, duration_s: 0.8}\n"
            "requests:\n  - {name: page, url: 'https://app.example.com/'}\n",
            ca_file,
        )
    )
    report = await _replayed(scenario)
    entry = report["requests"][0]
    # On a busy machine a late pair can start within 50 ms of the one before; its own request
    # is refused then, that pair is calibrated as usual, and one later refused calibration
    # counts as noise.
    served = entry["status"]["baseline"]["200"]
    assert entry["pairs"] >= 5 and served >= entry["pairs"] - 2
    assert entry["noise_refused"] >= served - 1 - (entry["pairs"] - served)
    assert entry["noise_refused"] + entry["noise_samples"] == entry["pairs"]
    statuses = [s for s in report["signatures"] if s["kind"] == "status"]
    assert [(s["status"], s["count"]) for s in statuses] == [("reported", served)]
    assert report["outcome"]["exit_code"] == ExitCode.DIFFERENCES
    # Every format says why the request has fewer noise samples, and what to do.
    said = f"the baseline refused {entry['noise_refused']} of {entry['pairs']} second requests"
    console = Console(width=400, record=True)
    console.print(render_report(report))
    for rendered in (
        console.export_text(),
        render_markdown(report),
        render_junit(report),
        render_html(report),
    ):
        assert said in rendered and "limit-rps" in rendered


async def test_progress_counts_differing_pairs_as_the_verdict_does(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    """Before: the live progress counted accepted differences as "differ" (120 shown, then
    the verdict said all alike)."""

    baseline = await start_entry_point(
        handler=lambda r: web.Response(text="a", headers={"X-Build": "1"})
    )
    candidate = await start_entry_point(
        "127.0.0.2", handler=lambda r: web.Response(text="a", headers={"X-Build": "2"})
    )
    path = write_scenario(
        baseline,
        candidate,
        "requests:\n  - {name: a, url: 'https://app.example.com/', repeat: 20}\n"
        "accept:\n  - {field: x-build, reason: the candidate is a newer build}\n",
        ca_file,
    )
    scenario = load_scenario(path, environ={})
    collector = RunCollector(accept=scenario.accept)
    await replay(scenario, collector)
    report = build_report(scenario, collector, started_at="t", duration_s=1.0)
    assert report["totals"]["pairs_with_differences"] == 0
    assert collector.pairs_with_differences == 0


async def test_a_request_can_leave_kinds_of_difference_out(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    """`ignore: [status]`: the candidate's other status is not a difference for that request
    (and only that one)."""

    baseline = await start_entry_point("127.0.0.1", name="same")
    candidate = await start_entry_point(
        "127.0.0.2", handler=lambda request: web.Response(status=503, text="no")
    )
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            "tls_probe: {probe: false}\ncompare: {noise: {share: 0}}\nrequests:\n"
            "  - {name: ignored, url: 'http://app.example.com/a', ignore: [status, body]}\n"
            "  - {name: compared, url: 'http://app.example.com/b'}\n",
        )
    )
    report = await _replayed(scenario)
    kinds = {
        entry["name"]: {d["kind"] for d in entry["differences"]} for entry in report["requests"]
    }
    assert "status" not in kinds["ignored"] and "body" not in kinds["ignored"]
    assert "status" in kinds["compared"]


async def test_a_request_sent_to_neither_side_fails_the_run_rather_than_passing_it(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    """A request the transport refuses as written (here a gRPC call whose URL no longer names
    its method, which only the library can build) is `not_sent` on both sides: nothing was
    compared for it, so the run cannot say "alike"."""
    entry = await start_entry_point()
    scenario = load_scenario(
        write_scenario(
            entry,
            entry,
            "requests:\n  - {name: a, url: 'https://app.example.com/', repeat: 3}\n"
            "  - {name: g, url: 'https://app.example.com/', grpc: {health: ''}, repeat: 3}\n",
            ca_file,
        )
    )
    # Away from its path the health check is no longer safe (tests/test_safety.py): allowed
    # here, so that it is the transport that refuses it.
    broken = dataclasses.replace(
        scenario.requests[1], url="https://app.example.com/elsewhere", allow_unsafe=True
    )
    scenario = dataclasses.replace(scenario, requests=(scenario.requests[0], broken))
    report = await _replayed(scenario)

    by_name = {entry["name"]: entry for entry in report["requests"]}
    assert by_name["a"]["status"]["baseline"] == {"200": 3}
    assert by_name["g"]["failures"]["baseline"]["not_sent"]["count"] == 3
    assert report["outcome"]["exit_code"] == ExitCode.RUN_FAILED
    assert (
        "not sent as written (3 to the baseline, 3 to the candidate)"
        in (report["outcome"]["reason"])
    )
