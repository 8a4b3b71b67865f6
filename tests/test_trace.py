"""W3C traceparent on every request: one trace id per pair shared by both sides, each request its
own span id, asserted on what real servers on loopback saw; kept when a scenario sets its own,
never replayed from a recording, off on request, and never a difference."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from shadowdiff.compare import compare
from shadowdiff.echo import EchoIdentity, make_echo_app
from shadowdiff.observation import Observation
from shadowdiff.pair import Pair
from shadowdiff.render.terminal import print_report
from shadowdiff.replay.engine import replay
from shadowdiff.report import RunCollector, build_report
from shadowdiff.report.schema import Report
from shadowdiff.run import RunOptions, run
from shadowdiff.scenario import load_scenario
from shadowdiff.spec import RequestSpec
from shadowdiff.trace import new_span_id, new_trace_id, parse_traceparent, traceparent
from shadowdiff.transport import open_transport

from .conftest import EntryPoint

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")


def _sent(entry: EntryPoint, name: str = "traceparent") -> list[str | None]:
    """The value of `name` each request the entry point saw carried (None: absent)."""
    values = []
    for seen in entry.requests:
        found = [value for key, value in seen.headers if key.lower() == name]
        assert len(found) <= 1, f"{name} sent {len(found)} times"
        values.append(found[0] if found else None)
    return values


def _headers_echo(request: web.Request) -> web.Response:
    """A backend that answers with every request header as JSON, as many apps' debug routes
    do: no echo format shadowdiff knows, so its body is compared field by field."""
    return web.json_response({"headers": dict(request.headers)})


def _text_echo(request: web.Request) -> web.Response:
    lines = "".join(f"{name}: {value}\n" for name, value in request.headers.items())
    return web.Response(text=f"you sent\n{lines}")


async def _report(scenario_path: Path, **options: Any) -> tuple[Report, list[Pair]]:
    scenario = load_scenario(scenario_path)
    collector = RunCollector()
    pairs: list[Pair] = []

    def sink(pair: Pair) -> None:
        pairs.append(pair)
        collector(pair)

    await replay(scenario, sink, **options)
    return build_report(scenario, collector, started_at="t", duration_s=1.0), pairs


@pytest.mark.parametrize("transport", ["lean", "aiohttp"])
async def test_every_pair_carries_one_trace_id_on_both_sides_each_with_its_own_span(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    transport: str,
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    path = write_scenario(
        baseline,
        candidate,
        f"""\
        defaults: {{transport: {transport}, concurrency: 8}}
        compare: {{noise: {{share: 0.5}}}}
        requests:
          - {{name: home, url: "https://app.example.com/", repeat: 30}}
          - {{name: api, url: "http://api.example.com/items", repeat: 20}}
        """,
        ca_file,
    )
    report, _ = await _report(path, seed=3)

    baseline_sent, candidate_sent = _sent(baseline), _sent(candidate)
    assert None not in baseline_sent and None not in candidate_sent
    parsed = [TRACEPARENT.fullmatch(value or "") for value in baseline_sent + candidate_sent]
    assert all(parsed), "version 00, lower-case hex, sampled"
    # Every request its own span id: the baseline's, the candidate's and the calibration's.
    spans = [match[2] for match in parsed if match]
    assert len(set(spans)) == len(spans) == 50 + len(baseline_sent)
    candidate_traces = [match[1] for match in parsed[len(baseline_sent) :] if match]
    baseline_traces = [match[1] for match in parsed[: len(baseline_sent)] if match]
    # One trace per pair, shared by both sides; a calibrated pair's second baseline request
    # is in the same trace.
    assert len(set(candidate_traces)) == len(candidate_traces) == 50
    assert set(baseline_traces) == set(candidate_traces)
    calibrated = sum(entry["noise_samples"] for entry in report["requests"])
    assert len(baseline_traces) - len(set(baseline_traces)) == calibrated > 2

    # The report names each pair's trace, and each side's span, as the servers saw them.
    records = report["pairs"]
    assert records is not None and len(records) == 50
    by_trace = {record["trace_id"]: record for record in records}
    assert set(by_trace) == set(candidate_traces)
    for value in candidate_sent:
        trace_id, span_id = TRACEPARENT.fullmatch(value or "").groups()  # type: ignore[union-attr]
        assert by_trace[trace_id]["candidate"]["span_id"] == span_id
    baseline_spans = {TRACEPARENT.fullmatch(v or "")[2] for v in baseline_sent}  # type: ignore[index]
    assert {r["baseline"]["span_id"] for r in records} <= baseline_spans
    assert report["totals"]["pairs_with_differences"] == 0


@pytest.mark.parametrize("handler", [_headers_echo, _text_echo], ids=["json", "text"])
async def test_an_echo_of_the_traceparent_is_no_difference(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    handler: Callable[[web.Request], web.Response],
) -> None:
    """Both sides see the same trace id but their own span id: a backend that echoes it must
    not make every pair differ, nor its calibration look like noise."""
    baseline = await start_entry_point("127.0.0.1", handler)
    candidate = await start_entry_point("127.0.0.2", handler)
    path = write_scenario(
        baseline,
        candidate,
        """\
        requests:
          - {name: echo, url: "https://app.example.com/", repeat: 20}
        """,
        ca_file,
    )
    report, pairs = await _report(path)

    assert "traceparent" in pairs[0].baseline.body.decode().lower()
    assert pairs[0].baseline.body != pairs[0].candidate.body
    assert report["signatures"] == []
    assert report["totals"]["pairs_with_differences"] == 0


def _tracing_data_plane(keep_trace: bool) -> Callable[[web.Request], web.Response]:
    """A candidate whose data plane traces: the backend sees the data plane's own span as the
    parent (as Envoy makes it), or, misconfigured, no trace context at all."""

    def handle(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "traceparent"}
        sent = parse_traceparent(request.headers.get("traceparent", ""))
        if keep_trace and sent is not None:
            headers["traceparent"] = traceparent(sent.trace_id, new_span_id())
        return web.json_response({"headers": headers})

    return handle


@pytest.mark.parametrize("keep_trace", [True, False], ids=["new-span", "trace-lost"])
async def test_a_data_plane_span_is_no_difference_but_a_lost_trace_is(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    keep_trace: bool,
) -> None:
    baseline = await start_entry_point("127.0.0.1", _headers_echo)
    candidate = await start_entry_point("127.0.0.2", _tracing_data_plane(keep_trace))
    path = write_scenario(
        baseline,
        candidate,
        "requests:\n  - {name: echo, url: 'https://app.example.com/', repeat: 10}\n",
        ca_file,
    )
    report, _ = await _report(path)

    found = {(line["kind"], line["field"]) for line in report["signatures"]}
    assert found == (set() if keep_trace else {("json_field", "$.headers.traceparent")})


async def test_the_echo_backend_shows_each_side_the_pair_trace(
    write_scenario: Callable[..., Path],
) -> None:
    """`shadowdiff echo` (echo-basic JSON): what the backend saw carries the pair's trace id
    and that side's span id, and the comparison of echoes reports nothing."""
    runners, targets = [], []
    for address in ("127.0.0.1", "127.0.0.2"):
        runner = web.AppRunner(make_echo_app(EchoIdentity("shop", "shop-7d9c5b6f4-x2k4q"), 80))
        await runner.setup()
        await web.TCPSite(runner, address, 0).start()
        runners.append(runner)
        port = runner.addresses[0][1]
        targets.append(f"address: {address}\n    ports: {{http: {port}, https: {port}}}")
    try:
        path = write_scenario(
            *targets, "requests:\n  - {name: shop, url: 'http://app.example.com/', repeat: 5}\n"
        )
        report, pairs = await _report(path)
    finally:
        for runner in runners:
            await runner.cleanup()

    assert len(pairs) == 5
    for pair in pairs:
        for observation in (pair.baseline, pair.candidate):
            (seen,) = json.loads(observation.body)["headers"]["Traceparent"]
            assert seen == observation.traceparent
            assert parse_traceparent(seen) == (pair.trace_id, seen[36:52])
    assert report["signatures"] == []


async def test_a_scenario_traceparent_is_kept_and_its_trace_recorded(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    """A request that sets its own traceparent is a probe of propagation: sent as written to
    both sides, nothing added, and its trace id is the pair's when it is a valid one."""
    own = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    path = write_scenario(
        baseline,
        candidate,
        f"""\
        requests:
          - {{name: own, url: "https://app.example.com/", headers: {{traceparent: "{own}"}}}}
          - {{name: odd, url: "https://app.example.com/x", headers: {{Traceparent: "not-one"}}}}
        """,
        ca_file,
    )
    report, _ = await _report(path)

    # The first of each request is calibrated: the baseline gets it twice.
    assert sorted(_sent(baseline), key=str) == sorted([own, own, "not-one", "not-one"], key=str)
    assert sorted(_sent(candidate), key=str) == sorted([own, "not-one"], key=str)
    records = {record["request"]: record for record in report["pairs"] or []}
    assert records["own"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert records["own"]["baseline"]["span_id"] is None
    assert records["odd"]["trace_id"] is None
    assert report["signatures"] == []


@pytest.mark.parametrize("how", ["scenario", "option"])
async def test_trace_can_be_turned_off(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    how: str,
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    defaults = "defaults: {trace: false}\n" if how == "scenario" else ""
    path = write_scenario(
        baseline,
        candidate,
        defaults + "requests:\n  - {name: a, url: 'https://app.example.com/', repeat: 3}\n",
        ca_file,
    )
    scenario = load_scenario(path)
    result = await run(scenario, RunOptions(trace=how != "option"))

    assert _sent(baseline) == [None] * len(baseline.requests) and len(candidate.requests) == 3
    assert _sent(candidate) == [None] * 3
    assert {record["trace_id"] for record in result.report["pairs"] or []} == {None}


async def test_a_recorded_trace_context_is_never_replayed(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    """A recorded traceparent names a real user's trace, long over: it is dropped (with
    tracestate, B3's and Jaeger's), the run's own goes instead, and the report counts it."""
    stale = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    lines = [
        {
            "method": "GET",
            "url": "https://app.example.com/a",
            "headers": {
                "traceparent": stale,
                "tracestate": "vendor=x",
                "X-B3-TraceId": "80f198ee56343ba864fe8b2a57d3eff7",
                "uber-trace-id": "1:2:0:1",
                "X-Kept": "yes",
            },
        },
        {"method": "GET", "url": "https://app.example.com/b"},
    ]
    (tmp_path / "recorded.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    path = write_scenario(
        baseline, candidate, f"sources: [{{jsonl: {tmp_path / 'recorded.jsonl'}}}]\n", ca_file
    )
    report, _ = await _report(path)

    for entry in (baseline, candidate):
        for seen in entry.requests:
            names = {name.lower() for name, _ in seen.headers}
            assert not names & {"tracestate", "x-b3-traceid", "uber-trace-id"}
        assert stale not in _sent(entry)
        assert all(TRACEPARENT.fullmatch(value or "") for value in _sent(entry))
    assert ("X-Kept", "yes") in next(s for s in candidate.requests if s.raw_path == "/a").headers
    (source,) = report["sources"] or []
    assert source["trace_context_dropped"] == 1 and source["replayed"] == 2


async def test_a_transport_refuses_a_traceparent_it_cannot_write(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    entry = await start_entry_point()
    scenario = load_scenario(
        write_scenario(entry, entry, "requests: [{name: a, url: 'https://app.example.com/'}]\n")
    )
    for name in ("lean", "aiohttp"):
        transport = open_transport(scenario.endpoint("candidate"), 1, name)
        try:
            answer = await transport.send(scenario.requests[0], "00-x\r\nX-Evil: 1")
        finally:
            await transport.close()
        assert answer.failure is not None and answer.failure.error_class == "not_sent"
    assert entry.requests == []


async def test_the_terminal_shows_the_example_pair_trace(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    baseline = await start_entry_point("127.0.0.1", name="one")
    candidate = await start_entry_point("127.0.0.2", name="two")
    path = write_scenario(
        baseline, candidate, "requests: [{name: a, url: 'https://app.example.com/'}]\n", ca_file
    )
    report, _ = await _report(path)

    (line,) = report["signatures"]
    (example,) = line["examples"]
    assert example["trace_id"] == (report["pairs"] or [])[0]["trace_id"]
    output = StringIO()
    print_report(report, Console(file=output, width=100))
    assert f"trace {example['trace_id']}" in output.getvalue()


def _echo_of(traceparent_seen: str, sent: str) -> Observation:
    body = json.dumps({"path": "/", "host": "a", "method": "GET", "proto": "HTTP/1.1",
                       "headers": {"Traceparent": [traceparent_seen]},
                       "namespace": "n", "ingress": "", "service": "s", "pod": "s-7d9c5b6f4-x2k4q",
                       "httpPort": "8080"}).encode()  # fmt: skip
    return Observation(
        "baseline",
        status=200,
        headers=(("Content-Type", "application/json"),),
        body=body,
        body_bytes=len(body),
        body_sha256=str(hash(body)),
        traceparent=sent,
    )


def test_a_sent_traceparent_compares_by_trace_id_when_a_data_plane_adds_its_span() -> None:
    """A data plane that traces makes its own span the backend's parent: the trace id is what
    a scenario's own traceparent promises, not the span id."""
    own = traceparent(new_trace_id(), new_span_id())
    request = RequestSpec("a", "GET", "https://a/", (("traceparent", own),), None)
    proxied = traceparent(own[3:35], new_span_id())
    assert compare(request, _echo_of(own, own), _echo_of(proxied, own)) == []
    restarted = traceparent(new_trace_id(), new_span_id())
    (difference,) = compare(request, _echo_of(own, own), _echo_of(restarted, own))
    assert (difference.kind, difference.field) == ("backend_header", "traceparent")


@given(st.text(max_size=80) | st.from_regex(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}.*"))
def test_parse_traceparent_takes_any_string(value: str) -> None:
    parsed = parse_traceparent(value)
    if parsed is not None:
        assert len(parsed.trace_id) == 32 and len(parsed.span_id) == 16
        assert parsed.trace_id != "0" * 32 and parsed.span_id != "0" * 16


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", True),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", False),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", True),
    ],
    ids=["sampled", "unsampled", "zero-trace", "zero-span", "upper", "ff", "00-extra", "future"],
)
def test_parse_traceparent_follows_the_specification(value: str, valid: bool) -> None:
    assert (parse_traceparent(value) is not None) == valid


def test_made_ids_are_random_lower_hex_and_sampled() -> None:
    values = {traceparent(new_trace_id(), new_span_id()) for _ in range(1000)}
    assert len(values) == 1000
    assert all(TRACEPARENT.fullmatch(value) for value in values)


def test_the_values_a_pair_is_given_read_back_as_any_other_would() -> None:
    from shadowdiff.trace import _parsed, new_pair_trace

    for _ in range(3000):  # past the remembered values, which are then let go
        trace_id, values = new_pair_trace(3)
        assert len(set(values)) == 3
        for value in values:
            made = parse_traceparent(value)
            assert made is not None and made == _parsed(value) and made.trace_id == trace_id
