"""Live metrics (`--metrics-port`, `--metrics-push`): /metrics served while a run goes on and
read back with prometheus_client's own parser, counts that mean what the report means (also
across worker processes), labels from closed sets only, a registry per run, and the options'
errors before anything is sent. Real Prometheus and Pushgateway: test_metrics_prometheus.py."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from shadowdiff.errors import UsageError
from shadowdiff.metrics import series
from shadowdiff.metrics.board import CELLS, Board, Counts
from shadowdiff.metrics.exposition import RunMetrics
from shadowdiff.metrics.options import MetricsOptions, display_url, listen_address
from shadowdiff.observation import ErrorClass, Observation, Timings, TransportFailure
from shadowdiff.pair import Pair
from shadowdiff.report.collect import RunCollector
from shadowdiff.run import RunOptions, check_options, run
from shadowdiff.scenario import load_scenario
from shadowdiff.spec import SIDES, RequestSpec, Side

from .cli_process import CliProcess, until
from .conftest import unused_port

QUIET = "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
SERVING = re.compile(r"metrics: serving (http://\S+/metrics)")


def parse(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Metric], sample: str, **labels: str) -> float:
    """The value of the sample `sample` (a full sample name) with exactly `labels`."""
    for family in families.values():
        for found in family.samples:
            if found.name == sample and found.labels == labels:
                return float(found.value)
    raise AssertionError(f"no sample {sample}{labels}")


async def scrape(url: str) -> tuple[str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        assert answer.status == 200
        return answer.headers["Content-Type"], await answer.text()


def held_back(release: asyncio.Event | None = None) -> Callable[[web.Request], Any]:
    """Answers at once, except /last, which waits for `release` (when given) until the test
    has looked; /missing is a 404 (the candidate's regression) when `release` is given."""

    async def handle(request: web.Request) -> web.Response:
        if release is not None and request.path == "/last":
            await release.wait()
        if release is not None and request.path == "/missing":
            return web.json_response({"path": request.path}, status=404)
        return web.json_response({"path": request.path})

    return handle


SCENARIO = (
    QUIET + "defaults: {concurrency: 1}\n"
    "requests:\n"
    "  - {name: home, url: 'http://app.example.com/', repeat: 4}\n"
    '  - {name: "secret-token-in-a-name\\r\\n{x=\\"1\\"}", url: "http://app.example.com/missing"}\n'
    "  - {name: last, url: 'http://app.example.com/last'}\n"
)


async def test_metrics_are_served_while_the_run_goes_on(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    """Mid-run, /metrics says what completed: 5 pairs of 6 (the last is held back), one of
    them a 404 on the candidate only, which is a reported status difference; the latency
    histogram counts the answered requests in seconds. Once the run ends nothing listens."""
    release = asyncio.Event()
    baseline = await start_entry_point("127.0.0.1", handler=held_back())
    candidate = await start_entry_point("127.0.0.2", handler=held_back(release))
    scenario = load_scenario(write_scenario(baseline, candidate, SCENARIO))
    served: list[str] = []
    task = asyncio.ensure_future(
        run(scenario, RunOptions(metrics=MetricsOptions(port=0)), on_metrics_serving=served.append)
    )
    await until(lambda: len(candidate.requests) == 6, 10, "the held-back request")
    (url,) = served
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    content_type, text = await scrape(url)
    release.set()
    result = await task
    assert content_type.startswith("text/plain")
    families = parse(text)
    assert value(families, "shadowdiff_pairs_total") == 5
    assert value(families, "shadowdiff_pairs_differing_total") == 1
    assert value(families, "shadowdiff_pairs_planned") == 6
    assert (
        value(
            families,
            "shadowdiff_requests_total",
            side="candidate",
            status_class="4xx",
            failure_class="none",
        )
        == 1
    )
    assert (
        value(
            families,
            "shadowdiff_requests_total",
            side="baseline",
            status_class="2xx",
            failure_class="none",
        )
        == 5
    )
    assert (
        value(
            families,
            "shadowdiff_differences_total",
            severity="error",
            kind="status",
            ruling="reported",
        )
        == 1
    )
    for side in ("baseline", "candidate"):
        count = value(families, "shadowdiff_request_duration_seconds_count", side=side)
        infinite = value(
            families, "shadowdiff_request_duration_seconds_bucket", side=side, le="+Inf"
        )
        total_s = value(families, "shadowdiff_request_duration_seconds_sum", side=side)
        assert count == infinite == 5
        assert 0 < total_s < 5  # seconds, not milliseconds: loopback answers in well under 1 s
    # The run's own figures once it ended: the held-back pair too.
    assert result.metrics is not None and result.metrics.counts().pairs == 6
    assert result.report["totals"]["pairs"] == 6
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(url)


async def test_series_are_the_documented_ones_with_closed_label_values(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    """Every series exposed is in the catalogue with its type and labels, and every label
    value comes from a closed set: no request name, URL or value from a server."""
    release = asyncio.Event()
    release.set()
    baseline = await start_entry_point("127.0.0.1", handler=held_back())
    candidate = await start_entry_point("127.0.0.2", handler=held_back(release))
    scenario = load_scenario(write_scenario(baseline, candidate, SCENARIO))
    result = await run(scenario, RunOptions(metrics=MetricsOptions(port=0)))
    assert result.metrics is not None
    text = generate_latest(result.metrics.registry).decode()
    assert "secret-token" not in text and "app.example.com" not in text and "/missing" not in text
    catalogue = {entry.name: entry for entry in series.CATALOGUE}
    closed: dict[str, set[str]] = {
        "side": {"baseline", "candidate"},
        "status_class": {*series.STATUS_CLASSES, series.NONE},
        "failure_class": {*series.FAILURE_CLASSES, series.NONE},
        "severity": set(series.SEVERITIES),
        "kind": set(series.KINDS),
        "ruling": set(series.RULINGS),
        "model": set(series.LOAD_MODELS),
        "le": {repr(bound) for bound in series.LATENCY_BUCKETS_S} | {"+Inf"},
    }
    exposed = parse(text)
    for family in exposed.values():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert name in catalogue, name
        assert family.type == catalogue[name].type, name
        for sample in family.samples:
            labels = set(sample.labels) - {"le"}
            assert labels == set(catalogue[name].labels), (name, sample.labels)
            for label, label_value in sample.labels.items():
                assert label_value in closed[label], (name, label, label_value)
    # All there (the run has ended: its exit code too), but the targets of a schedule, which
    # a run of each request's repeat count does not have.
    missing = set(catalogue) - {
        f.name + ("_total" if f.type == "counter" else "") for f in exposed.values()
    }
    assert missing == {series.LOAD_TARGET.name, series.LOAD_CURRENT_TARGET.name}, missing
    assert value(exposed, "shadowdiff_run_exit_code") == 1
    assert value(exposed, "shadowdiff_load_achieved_pairs_per_second", model="requests") > 0


async def test_each_run_has_a_registry_of_its_own(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            QUIET + "requests:\n  - {name: home, url: 'http://app.example.com/', repeat: 3}\n",
        )
    )
    options = RunOptions(metrics=MetricsOptions(port=0))
    first = await run(scenario, options)
    second = await run(scenario, options)
    assert first.metrics is not None and second.metrics is not None
    assert first.metrics.counts().pairs == second.metrics.counts().pairs == 3
    assert first.metrics.registry is not second.metrics.registry
    assert "shadowdiff_" not in generate_latest(REGISTRY).decode()


async def test_workers_pairs_all_reach_the_metrics(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    """With --workers 2 the pairs are counted in the workers; /metrics reads their shared
    counts mid-run and, at the end, holds every pair the report holds."""
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point(
        "127.0.0.2", handler=lambda r: web.json_response({"p": r.path}, status=503)
    )
    scenario = write_scenario(
        baseline,
        candidate,
        QUIET + "load: {model: open, rate: 100, duration_s: 2.5}\n"
        "requests:\n  - {name: a, url: 'http://app.example.com/a'}\n"
        "  - {name: b, url: 'http://app.example.com/b'}\n",
    )
    report_path = tmp_path / "report.json"
    process = await CliProcess.start(
        "run", str(scenario), "--workers", "2", "--metrics-port", "0", "--json", str(report_path)
    )
    url = await read_serving_url(process)
    await until(lambda: len(candidate.requests) >= 40, 20, "pairs from both workers")
    _, text = await scrape(url)
    code, _, stderr = await process.finish()
    assert code == 1, stderr  # every pair differs: the candidate answers 503
    report = json.loads(report_path.read_text())
    families = parse(text)
    mid_run = value(families, "shadowdiff_pairs_total")
    assert 0 < mid_run < report["totals"]["pairs"] == 250
    # Read cell by cell while the workers count: a pair's requests may be in, not yet the pair.
    answered = value(
        families,
        "shadowdiff_requests_total",
        side="candidate",
        status_class="5xx",
        failure_class="none",
    )
    assert mid_run <= answered <= mid_run + 2
    assert value(families, "shadowdiff_load_current_target_pairs_per_second", model="open") == 100


async def read_serving_url(process: CliProcess) -> str:
    """The URL the CLI says it serves metrics at, on stderr."""
    await until(lambda: SERVING.search(process.stderr_so_far) is not None, 20, "metrics URL")
    match = SERVING.search(process.stderr_so_far)
    assert match is not None
    return match.group(1)


def test_two_workers_boards_sum_like_one_process() -> None:
    shared = [0] * (2 * CELLS)
    first, second = Board(shared, 0), Board(shared, CELLS)
    for board, status in ((first, 200), (second, 200), (second, 302), (first, 0), (second, 600)):
        board.answer("baseline", status)
        board.latency("baseline", 500)  # exactly the first bound: in the first bucket
    first.latency("candidate", 30_000_001)  # past the last bound: +Inf only
    first.failure("candidate", "refused")
    first.replay_started(2_000)
    second.replay_started(1_000)
    second.replay_started(3_000)  # the first call counts
    counts = Counts([(shared, 0), (shared, CELLS)])
    assert counts.replay_started_ns == 1_000  # the earliest, not a sum
    requests = dict(counts.requests())
    assert requests["baseline", "2xx", "none"] == 2
    assert requests["baseline", "3xx", "none"] == 1
    assert requests["baseline", "other", "none"] == 2  # a status line outside 100-599
    assert requests["candidate", "none", "refused"] == 1
    cumulative, sum_s = counts.latency("baseline")
    assert cumulative[0] == cumulative[-1] == 5 and sum_s == pytest.approx(0.0025)
    cumulative, _ = counts.latency("candidate")
    assert cumulative[-2] == 0 and cumulative[-1] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (MetricsOptions(port=70000), "--metrics-port must be from 0 to 65535; got 70000"),
        (MetricsOptions(address="0.0.0.0"), "--metrics-address applies to --metrics-port only"),
        (MetricsOptions(port=0, job="ci"), "--metrics-job applies to --metrics-push only"),
        (MetricsOptions(push_url="ftp://gw:21"), "give the Pushgateway's http:// or https:// URL"),
        (MetricsOptions(push_url="http://gw:9091/?a=1"), "no query or fragment"),
        (MetricsOptions(push_url="http://gw:port"), "not a URL"),
        (MetricsOptions(push_url="http://gw\r\n:9091"), "spaces or control characters"),
        (MetricsOptions(push_url="http://gw:9091", job="a\nb"), "--metrics-job must be"),
    ],
    ids=["port", "address", "job", "scheme", "query", "bad-port", "crlf", "job-crlf"],
)
def test_metrics_options_that_cannot_work_are_refused(
    write_scenario: Callable[..., Path], options: MetricsOptions, message: str
) -> None:
    target = "address: 127.0.0.1\n    ports: {http: 9}"
    path = write_scenario(
        target, target, QUIET + "requests:\n  - {name: a, url: 'http://a.example/'}\n"
    )
    with pytest.raises(UsageError, match=re.escape(message)):
        check_options(load_scenario(path), RunOptions(metrics=options))


def test_messages_show_a_push_url_without_its_credentials() -> None:
    assert display_url("https://ci:s3cret@gw.example:9091/base") == "https://gw.example:9091/base"
    assert display_url("http://gw.example:9091") == "http://gw.example:9091"


async def test_a_port_in_use_is_exit_2_before_any_request(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    scenario = write_scenario(
        baseline, candidate, "requests:\n  - {name: home, url: 'https://app.example.com/'}\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await CliProcess.start("run", str(scenario), "--metrics-port", str(port))
        code, stdout, stderr = await process.finish()
    assert code == 2 and stdout == ""
    assert stderr.strip() == (f"error: --metrics-port {port}: 127.0.0.1:{port} is already in use")
    assert baseline.requests == candidate.requests == [] and baseline.server_names == []


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_stops_the_server_with_the_run(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    tmp_path: Path,
    stop: signal.Signals,
) -> None:
    release = asyncio.Event()
    baseline = await start_entry_point("127.0.0.1", handler=held_back())
    candidate = await start_entry_point("127.0.0.2", handler=held_back(release))
    scenario = write_scenario(baseline, candidate, SCENARIO)
    report_path = tmp_path / "report.json"
    process = await CliProcess.start(
        "run", str(scenario), "--metrics-port", "0", "--json", str(report_path)
    )
    url = await read_serving_url(process)
    await until(lambda: len(candidate.requests) == 6, 20, "the held-back request")
    _, text = await scrape(url)
    assert value(parse(text), "shadowdiff_pairs_total") == 5
    process.send(stop)
    code, _, stderr = await process.finish()
    release.set()
    assert code == 128 + stop, stderr
    assert json.loads(report_path.read_text())["totals"]["pairs"] == 5
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(url)
    assert await process.nothing_left_behind()


async def test_a_failed_push_is_a_warning_without_credentials_and_keeps_the_verdict(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    scenario = write_scenario(
        baseline, candidate, QUIET + "requests:\n  - {name: home, url: 'http://app.example.com/'}\n"
    )
    port = unused_port()
    process = await CliProcess.start(
        "run", str(scenario), "--metrics-push", f"http://ci:push-s3cret@127.0.0.1:{port}", "-q"
    )
    code, stdout, stderr = await process.finish()
    assert code == 0, stdout + stderr
    assert f"warning: --metrics-push http://127.0.0.1:{port}: " in stderr
    assert "refused" in stderr.lower()
    assert "push-s3cret" not in stdout + stderr and "ci:" not in stderr


def test_every_series_is_documented() -> None:
    """docs/metrics.md names every series with its type and labels, and no series that does
    not exist (the README links to it)."""
    text = DOCS.read_text()
    for entry in series.CATALOGUE:
        row = next((line for line in text.splitlines() if f"`{entry.name}`" in line), None)
        assert row is not None, entry.name
        assert entry.type in row, entry.name
        for label in entry.labels:
            assert f"`{label}`" in row, (entry.name, label)
    # The watch's own series are held to the doc by tests/test_watch.py, on a real watch.
    names = set(re.findall(r"\bshadowdiff_(?!watch_)[a-z_]+", text))
    known = {entry.name for entry in series.CATALOGUE}
    derived = {
        f"{entry.name}{suffix}"
        for entry in series.CATALOGUE
        if entry.type == "histogram"
        for suffix in ("_bucket", "_sum", "_count")
    }
    assert names - known - derived == set()
    assert "docs/metrics.md" in (DOCS.parents[1] / "README.md").read_text()


async def test_a_follow_run_is_watched_too(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    """A follow run, which only ends when stopped, is what a dashboard watches longest."""
    from .test_follow import FOLLOWED, append, following, nginx_line

    baseline = await start_entry_point("127.0.0.1", handler=held_back())
    candidate = await start_entry_point("127.0.0.2", handler=held_back())
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    scenario = load_scenario(write_scenario(baseline, candidate, FOLLOWED), read_sources=False)
    served: list[str] = []
    task = asyncio.ensure_future(
        run(
            scenario,
            RunOptions(follow=True, follow_pairs_per_s=1000, metrics=MetricsOptions(port=0)),
            on_metrics_serving=served.append,
        )
    )
    await until(lambda: following(os.getpid(), log), 10, "the follower to open the log")
    append(log, b"".join(nginx_line(f"/items/{n}") for n in range(5)))
    await until(lambda: len(candidate.requests) >= 5, 10, "5 pairs")
    for _ in range(200):  # polled: the fifth pair is compared a moment after both answers
        _, text = await scrape(served[0])
        if value(parse(text), "shadowdiff_pairs_total") == 5:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    result = await task
    families = parse(text)
    assert value(families, "shadowdiff_pairs_total") == 5
    assert "shadowdiff_pairs_planned" not in families  # as many as the log gains
    assert value(families, "shadowdiff_load_achieved_pairs_per_second", model="follow") > 0
    assert result.metrics is not None and result.metrics.counts().pairs == 5


# One side's answer: a status (any a server could send, 0-999) or a failure on the wire, and
# how long it took.
_ANSWERS = st.one_of(
    st.integers(0, 999).map(lambda status: (status, None)),
    st.sampled_from(series.FAILURE_CLASSES).map(lambda failure: (0, failure)),
)


@given(
    st.lists(
        st.tuples(_ANSWERS, _ANSWERS, st.integers(0, 40_000_000_000), st.booleans()),
        max_size=60,
    )
)
@settings(max_examples=60, deadline=None)
def test_the_board_counts_what_the_collector_tallies(
    pairs: list[tuple[tuple[int, ErrorClass | None], tuple[int, ErrorClass | None], int, bool]],
) -> None:
    """Whatever the answers (statuses outside 100-599, every failure class, any duration, in
    warm-up or not), the series say what the report's tallies say."""
    metrics = RunMetrics()
    collector = RunCollector(board=metrics.board, keep_pairs=False)
    spec = RequestSpec("r", "GET", "http://app.example.com/", (), None)

    def answer(side: Side, status: int, failure: ErrorClass | None, total_ns: int) -> Observation:
        return Observation(
            side,
            failure=TransportFailure(failure, "x") if failure else None,
            status=None if failure else status,
            timings=Timings(started_ns=0, total_ns=total_ns),
        )

    for index, (baseline, candidate, total_ns, measured) in enumerate(pairs):
        collector(
            Pair(
                index,
                spec,
                answer("baseline", *baseline, total_ns),
                answer("candidate", *candidate, total_ns),
                (),
                measured=measured,
            )
        )
    collector.flush()
    counts = metrics.counts()
    assert counts.pairs == collector.pairs_done == len(pairs)
    requests = dict(counts.requests())
    tally = collector.requests.get("r")
    for side in SIDES:
        failures = tally.failures[side] if tally else {}
        statuses = tally.statuses[side] if tally else {}
        for failure in series.FAILURE_CLASSES:
            assert requests[side, series.NONE, failure] == failures.get(failure, 0)
        by_class: dict[str, int] = dict.fromkeys(series.STATUS_CLASSES, 0)
        for status, count in statuses.items():
            by_class[f"{status // 100}xx" if 100 <= status <= 599 else "other"] += count
        for status_class, count in by_class.items():
            assert requests[side, status_class, series.NONE] == count
        cumulative, sum_s = counts.latency(side)
        histogram = tally.latency[side].histogram if tally else None
        assert cumulative[-1] == (histogram.count if histogram is not None else 0)
        assert sum_s == pytest.approx(histogram.sum_us / 1e6 if histogram is not None else 0)


def test_an_ipv6_metrics_address_may_be_written_in_brackets_as_in_its_url() -> None:
    # What `metrics: serving http://[::1]:PORT/metrics` shows is what the flag takes back.
    assert listen_address("[::1]") == "::1"
    assert listen_address("::1") == "::1"
    assert listen_address("127.0.0.1") == "127.0.0.1"
