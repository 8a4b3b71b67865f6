"""HTTP/2 in the lean transport, against Debian's nginx (h2 over TLS by ALPN, h2c with prior
knowledge, HTTP/1.1 only) and against hostile servers written with the `h2` library: answers
on the same Observation model, several streams on one connection, `auto` choosing what the
server offers, and every fault a classified failure within the timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import hashlib
import os
import shutil
import struct
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import h2.errors
import h2.events
import pytest
from hpack import Encoder
from hyperframe.frame import DataFrame, HeadersFrame, PriorityFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from shadowdiff.endpoint import ClientTls, Endpoint, HeadLimits
from shadowdiff.errors import ScenarioError
from shadowdiff.observation import Observation
from shadowdiff.render.terminal import render_report
from shadowdiff.replay.engine import replay
from shadowdiff.report import RunCollector, build_report
from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario
from shadowdiff.spec import HttpVersion, RequestSpec
from shadowdiff.transport import open_transport

from .h2_hostile import (
    H2Server,
    Siblings,
    Step,
    hostile_h2_server,
    scripted_h2_server,
    serving,
    sibling_h2_server,
)
from .h2_nginx import ADDRESS, H2Nginx, run_h2_nginx
from .lab import HERE as LAB_CONFIGS
from .lab import run_lab

# Production ports, each mapped to one nginx listener (see h2_nginx.py).
_PORTS = {"h2_tls": 443, "h1_tls": 8443, "h2c": 80, "h1": 8080, "h2_short": 9443}


@pytest.fixture(scope="module")
def h2_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H2Nginx]:
    with run_h2_nginx(tmp_path_factory.mktemp("h2-nginx")) as nginx:
        yield nginx


def endpoint(
    ports: dict[int, int],
    *,
    ca: Path | None = None,
    http: HttpVersion = "1.1",
    total_s: float = 5.0,
    capture: int = 65_536,
) -> Endpoint:
    return Endpoint(
        side="baseline",
        address=ADDRESS,
        port_map=ports,
        tls=ClientTls(ca=ca),
        headers=(),
        connect_timeout_s=2.0,
        total_timeout_s=total_s,
        body_capture_bytes=capture,
        limits=HeadLimits(65_536, 262_144, 500),
        any_https=ca is not None,
        http=http,
    )


def nginx_endpoint(nginx: H2Nginx, http: HttpVersion = "1.1") -> Endpoint:
    ports = {production: nginx.ports[name] for name, production in _PORTS.items()}
    return endpoint(ports, ca=nginx.ca_file, http=http)


def get(url: str, http: HttpVersion | None = None, method: str = "GET") -> RequestSpec:
    return RequestSpec(name="h2", method=method, url=url, headers=(), body=None, http=http)


async def send_all(target: Endpoint, requests: list[RequestSpec]) -> list[Observation]:
    transport = open_transport(target, pool_size=16)
    try:
        return list(await asyncio.gather(*(transport.send(r) for r in requests)))
    finally:
        await transport.close()


@pytest.mark.nginx
async def test_h2_over_tls_carries_concurrent_streams_on_one_connection(
    h2_nginx: H2Nginx,
) -> None:
    requests = [get(f"https://app.example.com/tls/{n}", "2") for n in range(8)]
    answers = await send_all(nginx_endpoint(h2_nginx), requests)

    assert [a.failure for a in answers] == [None] * 8
    assert {(a.status, a.http_version, a.reason, a.body) for a in answers} == {
        (200, "2", None, b"served\n")
    }
    first = answers[0]
    assert first.tls is not None and first.tls.alpn == "h2"
    # Lower-case names, as HTTP/2 writes them, and no pseudo-header among them.
    assert ("x-served", "nginx") in first.headers
    assert all(not name.startswith(":") for name, _ in first.headers)
    assert sum(not a.connection_reused for a in answers) == 1
    logged = [line for line in h2_nginx.log_lines("h2_tls") if line[3].startswith("/tls/")]
    assert len(logged) == 8
    assert {line[0] for line in logged} == {"HTTP/2.0"}
    assert len({line[1] for line in logged}) == 1, "all eight on one connection"


@pytest.mark.nginx
async def test_h2c_with_prior_knowledge(h2_nginx: H2Nginx) -> None:
    answers = await send_all(
        nginx_endpoint(h2_nginx, http="2"),
        [get("http://app.example.com/h2c"), get("http://app.example.com/h2c", method="HEAD")],
    )

    assert [(a.failure, a.status, a.http_version) for a in answers] == [(None, 200, "2")] * 2
    assert answers[0].body == b"served\n" and answers[1].body == b""
    assert answers[0].tls is None
    logged = [line for line in h2_nginx.log_lines("h2c") if line[3] == "/h2c"]
    assert [line[0] for line in logged] == ["HTTP/2.0"] * 2


@pytest.mark.nginx
async def test_the_traceparent_goes_out_over_h2_as_a_header_field(h2_nginx: H2Nginx) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    transport = open_transport(nginx_endpoint(h2_nginx, http="2"), 2)
    try:
        answer = await transport.send(get("http://app.example.com/traced"), traceparent)
    finally:
        await transport.close()
    assert (answer.failure, answer.http_version) == (None, "2")
    (logged,) = [line for line in h2_nginx.log_lines("h2c") if line[3] == "/traced"]
    assert logged[4] == traceparent


@pytest.mark.nginx
async def test_auto_speaks_h2_where_offered_and_http11_where_not(h2_nginx: H2Nginx) -> None:
    target = nginx_endpoint(h2_nginx, http="auto")
    transport = open_transport(target, pool_size=4)
    try:
        offered = [await transport.send(get("https://app.example.com/auto")) for _ in range(2)]
        refused = [await transport.send(get("https://app.example.com:8443/auto")) for _ in range(3)]
        plain = await transport.send(get("http://app.example.com:8080/auto"))
    finally:
        await transport.close()

    assert [(a.status, a.http_version) for a in offered] == [(200, "2")] * 2
    assert [(a.status, a.http_version) for a in refused] == [(200, "1.1")] * 3
    assert plain.http_version == "1.1", "no negotiation without TLS: auto is HTTP/1.1"
    # The choice is remembered: the connection auto opened to the HTTP/1.1-only host served
    # its request, and the next ones reused it instead of handshaking again.
    assert [a.connection_reused for a in refused] == [False, True, True]
    assert len({line[1] for line in h2_nginx.log_lines("h1_tls") if line[3] == "/auto"}) == 1


@pytest.mark.nginx
async def test_h2_required_where_tls_does_not_offer_it_is_tls_handshake(
    h2_nginx: H2Nginx,
) -> None:
    (answer,) = await send_all(
        nginx_endpoint(h2_nginx, http="2"), [get("https://app.example.com:8443/need-h2")]
    )

    assert answer.failure is not None
    assert answer.failure.error_class == "tls_handshake"
    assert "h2" in answer.failure.message


@pytest.mark.nginx
async def test_h2c_to_an_http11_server_is_malformed(h2_nginx: H2Nginx) -> None:
    (answer,) = await send_all(
        nginx_endpoint(h2_nginx, http="2"), [get("http://app.example.com:8080/h1")]
    )

    assert answer.failure is not None
    assert answer.failure.error_class in ("malformed_response", "reset")


@pytest.mark.nginx
async def test_graceful_goaway_finishes_the_streams_in_flight(h2_nginx: H2Nginx) -> None:
    # nginx ends each connection after three requests (keepalive_requests) with a GOAWAY
    # that spares the streams it took: they complete, and later requests move on to a new
    # connection. None may fail, or every long run over h2 would show false failures.
    target = nginx_endpoint(h2_nginx, http="2")
    transport = open_transport(target, pool_size=4)
    try:
        answers = []
        for _ in range(5):
            answers += await asyncio.gather(
                *(transport.send(get("https://app.example.com:9443/short")) for _ in range(4))
            )
    finally:
        await transport.close()

    assert [(a.failure, a.status) for a in answers] == [(None, 200)] * 20
    logged = [line for line in h2_nginx.log_lines("h2_short") if line[3] == "/short"]
    assert len({line[1] for line in logged}) >= 7, "at most three requests per connection"
    # The streams above a GOAWAY's last stream never reached nginx: they were sent again, on
    # a new connection (RFC 9113 section 8.7), and nginx saw each request once.
    assert len(logged) == 20
    assert any(a.retried for a in answers)


@pytest.mark.nginx
async def test_request_setting_overrides_the_targets(h2_nginx: H2Nginx) -> None:
    answers = await send_all(
        nginx_endpoint(h2_nginx, http="2"),
        [get("https://app.example.com/", "1.1"), get("https://app.example.com/")],
    )

    assert [a.http_version for a in answers] == ["1.1", "2"]


async def send_hostile(
    behaviour: str, requests: int = 1, total_s: float = 1.0, capture: int = 65_536
) -> tuple[list[Observation], float]:
    async with hostile_h2_server(behaviour) as server:
        target = endpoint({80: server.port}, http="2", total_s=total_s, capture=capture)
        started = time.monotonic()
        answers = await send_all(
            target, [get(f"http://app.example.com/{n}") for n in range(requests)]
        )
        return answers, time.monotonic() - started


@pytest.mark.parametrize(
    ("behaviour", "error_class"),
    [
        ("goaway_mid_stream", "reset"),
        ("goaway_before", "reset"),
        ("reset", "reset"),
        ("no_end", "timeout"),
        ("endless_data", "timeout"),
        ("endless_continuation", "malformed_response"),
        ("oversized_frame", "malformed_response"),
        ("uppercase_header", "malformed_response"),
        ("huge_header", "malformed_response"),
        ("bad_status", "malformed_response"),
        ("window_overflow", "malformed_response"),
        ("cut_mid_stream", "reset"),
    ],
)
async def test_hostile_server_ends_as_classified_failure(behaviour: str, error_class: str) -> None:
    answers, elapsed_s = await send_hostile(behaviour, requests=3, total_s=1.0, capture=1024)

    assert [a.failure.error_class if a.failure else None for a in answers] == [error_class] * 3
    assert elapsed_s < 4.0, "within the timeout, never a hang"
    assert all(len(a.body) == 0 for a in answers)


async def test_a_bad_status_is_named_without_its_value() -> None:
    """A server's bytes never reach a message as they are: a reflected credential could be
    among them, in :status as anywhere else."""
    answers, _ = await send_hostile("bad_status", requests=1)

    failure = answers[0].failure
    assert failure is not None and failure.error_class == "malformed_response"
    assert "2x0" not in failure.message and ":status" in failure.message


async def test_a_reset_stream_leaves_the_others_on_its_connection() -> None:
    answers, _ = await send_hostile("reset_second", requests=4)

    failed = [a for a in answers if a.failure is not None]
    assert len(failed) == 1 and failed[0].failure is not None
    assert failed[0].failure.error_class == "reset"
    assert "RST_STREAM" in failed[0].failure.message
    assert [a.body for a in answers if a.failure is None] == [b"fine\n"] * 3


async def test_streams_in_flight_never_exceed_the_servers_max_concurrent_streams() -> None:
    async with hostile_h2_server("two_streams") as server:
        answers = await send_all(
            endpoint({80: server.port}, http="2"),
            [get(f"http://app.example.com/{n}") for n in range(6)],
        )
        most = [connection.most_open_streams for connection in server.connections]

    assert [(a.status, a.body) for a in answers] == [(200, b"later\n")] * 6
    # h2 on the server side would have refused a third stream (a protocol error) outright.
    assert max(most) == 2


async def test_a_server_that_allows_no_streams_fails_the_requests_not_the_scenario() -> None:
    # RFC 9113 section 5.1.2: a server may allow no streams. The requests were fine as written
    # (`not_sent` would blame them, and exit 3); the server refused them.
    async with hostile_h2_server("no_streams") as server:
        answers = await send_all(
            endpoint({80: server.port}, http="2", total_s=0.5),
            [get(f"http://app.example.com/{n}") for n in range(3)],
        )

    for answer in answers:
        assert answer.failure is not None, answer
        assert answer.failure.error_class == "reset", answer.failure
        assert "SETTINGS_MAX_CONCURRENT_STREAMS 0" in answer.failure.message


@pytest.mark.nginx
async def test_a_body_larger_than_the_flow_control_window_is_sent(h2_nginx: H2Nginx) -> None:
    body = b"z" * 300_000  # nginx grants 64 KiB per stream before the body is read
    request = RequestSpec(
        name="post",
        method="POST",
        url="https://app.example.com/upload",
        headers=(),
        body=body,
        allow_unsafe=True,
        http="2",
    )
    (answer,) = await send_all(nginx_endpoint(h2_nginx), [request])

    assert (answer.failure, answer.status, answer.http_version) == (None, 200, "2")


async def test_the_hostile_servers_ok_answer_is_an_observation() -> None:
    answers, _ = await send_hostile("ok", requests=2)

    assert [(a.status, a.http_version, a.body) for a in answers] == [(200, "2", b"fine\n")] * 2


def scenario_text(baseline_port: int, candidate_port: int, ca: Path, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        targets:
          baseline:
            address: {ADDRESS}
            ports: {{https: {baseline_port}}}
            tls: {{ca: {ca}}}
            http: auto
          candidate:
            address: {ADDRESS}
            ports: {{https: {candidate_port}}}
            tls: {{ca: {ca}}}
            http: auto
        tls_probe: {{probe: false}}
        compare: {{noise: {{share: 0}}}}
        requests:
          - {{name: home, url: "https://app.example.com/", repeat: 3}}
          - {{name: head, method: HEAD, url: "https://app.example.com/head"}}
        {extra}"""
    )


async def run_text(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "h2.yaml"
    path.write_text(text)
    return await run_scenario(load_scenario(path, environ={}))


@pytest.mark.nginx
async def test_baseline_h2_and_candidate_http11_is_one_protocol_difference_with_its_hint(
    h2_nginx: H2Nginx, tmp_path: Path
) -> None:
    report = await run_text(
        tmp_path,
        scenario_text(h2_nginx.ports["h2_tls"], h2_nginx.ports["h1_tls"], h2_nginx.ca_file),
    )

    # HTTP/2's lower-case names, missing reason phrase and missing Connection header are no
    # differences: the protocol is the only one.
    found = {(s["kind"], s["field"], s["severity"]) for s in report["signatures"]}
    assert found == {("protocol", "http_version", "warning")}
    assert len(report["signatures"]) == 2, "one per route: GET / and HEAD /head"
    signature = report["signatures"][0]
    example = signature["examples"][0]
    assert (example["baseline"], example["candidate"]) == ("HTTP/2", "HTTP/1.1")
    assert "ALPN" in signature["hint"]["fix"] and "listener" in signature["hint"]["fix"]
    assert report["outcome"]["exit_code"] == 0, "a warning does not fail the run by default"
    console = Console(width=200, record=True)
    console.print(render_report(report))
    shown = console.export_text()
    assert "protocol: http_version" in shown and "HTTP/2 → HTTP/1.1" in shown
    assert "offer h2 on the Gateway listener" in shown


@pytest.mark.nginx
async def test_h2_on_both_sides_and_http11_on_both_sides_are_alike(
    h2_nginx: H2Nginx, tmp_path: Path
) -> None:
    for port in (h2_nginx.ports["h2_tls"], h2_nginx.ports["h1_tls"]):
        report = await run_text(tmp_path, scenario_text(port, port, h2_nginx.ca_file))
        assert report["signatures"] == []
        assert report["outcome"]["exit_code"] == 0


@pytest.mark.nginx
async def test_http2_required_on_a_candidate_without_it_is_a_transport_difference(
    h2_nginx: H2Nginx, tmp_path: Path
) -> None:
    text = scenario_text(h2_nginx.ports["h2_tls"], h2_nginx.ports["h1_tls"], h2_nginx.ca_file)
    report = await run_text(tmp_path, text.replace("http: auto", 'http: "2"'))

    found = {(s["kind"], s["field"], s["severity"]) for s in report["signatures"]}
    assert found == {("transport", "error", "error")}
    assert report["signatures"][0]["examples"][0]["candidate"] == "tls_handshake"


@pytest.mark.parametrize(
    ("written", "target", "request_http"),
    [("2", "2", "2"), ("1.1", "1.1", "1.1"), ('"2"', "2", "2"), ("auto", "auto", "auto")],
)
def test_the_http_setting_reads_as_written(
    tmp_path: Path, written: str, target: str, request_http: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "targets:\n"
        f"  baseline: {{address: 10.0.0.1, http: {written}}}\n"
        "  candidate: {address: 10.0.0.2}\n"
        "requests:\n"
        f"  - {{name: a, url: 'https://a.example.com/', http: {written}}}\n"
        "  - {name: b, url: 'https://a.example.com/b'}\n"
    )
    scenario = load_scenario(path, environ={})
    assert scenario.endpoint("baseline").http == target
    assert scenario.endpoint("candidate").http == "1.1", "HTTP/1.1 unless a file says otherwise"
    assert [r.http for r in scenario.requests] == [request_http, None]


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("  - {name: a, url: 'https://a.example.com/', http: 3}\n", "expected one of 1.1, 2, auto"),
        (
            "  - {name: a, url: 'https://a.example.com/', http: 2}\n"
            "defaults: {transport: aiohttp}\n",
            "HTTP/2 needs the lean transport",
        ),
    ],
    ids=["unknown-version", "aiohttp"],
)
def test_a_wrong_http_setting_is_a_located_error(
    tmp_path: Path, fragment: str, message: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "targets:\n"
        "  baseline: {address: 10.0.0.1}\n"
        "  candidate: {address: 10.0.0.2}\n"
        "requests:\n" + fragment
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, environ={})
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{path}:5:") and "requests[0].http" in str(problem)
    assert message in str(problem)


@pytest.mark.nginx
def test_lab_routes_alike_except_http2_differ_in_the_protocol_alone(tmp_path: Path) -> None:
    """The proxy lab's routes configured alike, with the baseline offering h2 (as
    ingress-nginx does) and the candidate HTTP/1.1 only, sent with `http: auto`: through
    real proxies to echo backends, the protocol is the one difference reported. HTTP/2's
    lower-case names reach the backends too; nothing of that may show."""
    configs = tmp_path / "configs"
    configs.mkdir()
    baseline = (LAB_CONFIGS / "baseline.conf").read_text()
    assert " ssl default_server;" in baseline
    (configs / "baseline.conf").write_text(
        baseline.replace(" ssl default_server;", " ssl http2 default_server;")
    )
    shutil.copy(LAB_CONFIGS / "candidate.conf", configs / "candidate.conf")
    lab_folder = tmp_path / "lab"
    lab_folder.mkdir()
    with run_lab(lab_folder, configs) as lab:
        scenario = load_scenario(LAB_CONFIGS / "scenario.yaml", environ=lab.environ())
        alike = tuple(
            dataclasses.replace(spec, http="auto", repeat=min(spec.repeat, 10))
            for spec in scenario.requests
            if spec.name.startswith("alike:")
        )
        scenario = dataclasses.replace(scenario, requests=alike)
        collector = RunCollector()
        asyncio.run(replay(scenario, collector, seed=7))
        report = build_report(scenario, collector, started_at="t", duration_s=1.0)

    reported = {
        (line["kind"], line["field"], line["severity"])
        for line in report["signatures"]
        if line["status"] in ("reported", "expired")
    }
    assert reported == {("protocol", "http_version", "warning")}
    https_pairs = sum(s.repeat for s in alike if s.url.startswith("https:"))
    protocol_pairs = sum(
        line["count"] for line in report["signatures"] if line["kind"] == "protocol"
    )
    assert protocol_pairs == https_pairs > 0


async def test_a_cancelled_request_resets_its_stream_and_the_connection_serves_on() -> None:
    async with hostile_h2_server("no_end") as server:
        transport = open_transport(endpoint({80: server.port}, http="2", total_s=0.5), 4)
        try:
            first = asyncio.ensure_future(transport.send(get("http://app.example.com/a")))
            await asyncio.sleep(0.1)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            # The same connection carries the next one (which this server never ends).
            second = await transport.send(get("http://app.example.com/b"))
        finally:
            started = time.monotonic()
            await transport.close()
            closed_s = time.monotonic() - started
        (connection,) = server.connections  # one connection carried both
        assert connection.requests == 2

    assert second.failure is not None and second.failure.error_class == "timeout"
    assert closed_s < 2.0


_FRAME = st.builds(
    lambda kind, flags, stream_id, payload: (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream_id)
        + payload
    ),
    st.integers(0, 12),
    st.integers(0, 255),
    st.sampled_from([0, 1, 3, 2**31 - 1]),
    st.binary(max_size=48),
)
# A valid response head for stream 1 (:status 200, HPACK static index 8), END_HEADERS.
_HEAD = b"\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88"


# 30 examples in the suite (each may wait out its 0.3 s timeout); SHADOWDIFF_H2_EXAMPLES=400
# (with --timeout 900) for a longer look.
@settings(
    max_examples=int(os.environ.get("SHADOWDIFF_H2_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(st.one_of(_FRAME, st.binary(min_size=1, max_size=24)), max_size=6),
    st.booleans(),
)
def test_any_frames_a_server_sends_end_as_an_answer_or_a_classified_failure(
    frames: list[bytes], head_first: bool
) -> None:
    script = (_HEAD if head_first else b"") + b"".join(frames)

    async def exchange() -> Observation:
        async with scripted_h2_server(script) as port:
            transport = open_transport(endpoint({80: port}, http="2", total_s=0.3), 2)
            try:
                return await transport.send(get("http://app.example.com/"))
            finally:
                await transport.close()

    started = time.monotonic()
    answer = asyncio.run(exchange())
    assert time.monotonic() - started < 3.0
    if answer.failure is None:
        assert answer.status is not None and answer.http_version == "2"
    else:
        assert answer.failure.error_class in ("reset", "timeout", "malformed_response")


_OK = (b":status", b"200")
_GRPC_HEAD = [_OK, (b"content-type", b"application/grpc")]


async def send_beside(
    script: list[Step], *, after_reset: bool = True
) -> tuple[Observation, Observation, Observation, Siblings]:
    """`/scripted` and `/sibling` at once on one connection, then `/later` on its own: the
    three answers, and what the server saw."""
    async with sibling_h2_server(script, after_reset=after_reset) as seen:
        transport = open_transport(endpoint({80: seen.port}, http="2", total_s=1.0), 4)
        try:
            scripted, sibling = await asyncio.gather(
                transport.send(get("http://app.example.com/scripted")),
                transport.send(get("http://app.example.com/sibling")),
            )
            later = await transport.send(get("http://app.example.com/later"))
        finally:
            await transport.close()
    return scripted, sibling, later, seen


def assert_fine(*answers: Observation) -> None:
    assert [(a.failure, a.status, a.body) for a in answers] == [(None, 200, b"fine\n")] * len(
        answers
    )


@pytest.mark.parametrize(
    ("script", "said"),
    [
        ([("headers", [_OK, (b"X-Upper", b"1")], True)], "upper case in the field name 'X-Upper'"),
        (
            [
                ("headers", _GRPC_HEAD, False),
                ("headers", [(b"grpc-status", b"13"), (b"grpc-message", b"a\r\nb")], True),
            ],
            "CR, LF or NUL in the value of 'grpc-message'",
        ),
        (
            [("headers", [_OK, (b"x-nul", b"a\x00b")], True)],
            "CR, LF or NUL in the value of 'x-nul'",
        ),
        (
            [("headers", [_OK, (b"connection", b"close")], True)],
            "connection-specific field 'connection'",
        ),
        (
            [("headers", [_OK, (b"transfer-encoding", b"chunked")], False), ("data", b"x", True)],
            "connection-specific field 'transfer-encoding'",
        ),
        (
            [("headers", [(b"server", b"s"), _OK], True)],
            "pseudo-header field ':status' after a regular",
        ),
        (
            [("headers", [_OK, (b":path", b"/")], True)],
            "pseudo-header field ':path', which no response",
        ),
        ([("headers", [_OK, _OK], True)], "a second :status"),
        ([("headers", [(b"server", b"s")], True)], "a head without :status"),
        ([("headers", [_OK, (b"x-pad", b"v ")], True)], "white space around the value of 'x-pad'"),
        ([("headers", [(b":status", b"103")], True)], "informational (1xx) head with END_STREAM"),
        (
            [("headers", [_OK], False), ("headers", [(b"x-trailer", b"1")], False)],
            "trailers without END_STREAM",
        ),
        (
            [("headers", [_OK], False), ("headers", [_OK], True)],
            "pseudo-header field ':status' in trailers",
        ),
        (
            [("headers", [_OK, (b"content-length", b"1x")], True)],
            "content-length that is no number",
        ),
        (
            [("headers", [_OK, (b"content-length", b"10")], False), ("data", b"abc", True)],
            "content-length says 10 bytes, the body came to 3",
        ),
        (
            [
                ("headers", [_OK, (b"content-length", b"10")], False),
                ("data", b"abc", False),
                ("headers", [(b"x-trailer", b"1")], True),
            ],
            "content-length says 10 bytes, the body came to 3",
        ),
        (
            # Past the digits Python turns into an int by default (4300): h2 would fail the
            # connection, quoting the value.
            [("headers", [_OK, (b"content-length", b"1" * 5000)], True)],
            "content-length of more than 19 digits",
        ),
        ([("data", b"early", True)], "DATA before the head"),
        # Stream errors of PROTOCOL_ERROR too, which h2 alone makes connection errors:
        (
            [("raw", PriorityFrame(1, depends_on=1, stream_weight=15).serialize(), False)],
            "stream 1 depend on itself (RFC 9113 section 5.3.1)",
        ),
        (
            # `:status: 200` from the static table (0x88): the server's HPACK state stays as
            # it was, so its later answers decode.
            [
                (
                    "raw",
                    HeadersFrame(
                        1,
                        data=b"\x88",
                        flags=["END_HEADERS", "END_STREAM", "PRIORITY"],
                        depends_on=1,
                    ).serialize(),
                    False,
                )
            ],
            "stream 1 depend on itself (RFC 9113 section 5.3.1)",
        ),
        (
            [("raw", b"\x00\x00\x04\x08\x00" + struct.pack(">II", 1, 0), False)],
            "WINDOW_UPDATE of 0 on stream 1 (RFC 9113 section 6.9)",
        ),
    ],
    ids=[
        "uppercase-name",
        "crlf-in-grpc-message",
        "nul-in-value",
        "connection",
        "transfer-encoding",
        "pseudo-after-regular",
        "request-pseudo",
        "two-statuses",
        "no-status",
        "space-around-value",
        "informational-end-stream",
        "trailers-without-end",
        "pseudo-in-trailers",
        "content-length-not-number",
        "content-length-mismatch",
        "content-length-mismatch-before-trailers",
        "content-length-too-long",
        "data-before-head",
        "priority-on-itself",
        "headers-priority-on-itself",
        "window-update-of-0",
    ],
)
async def test_a_malformed_answer_fails_its_stream_alone(script: list[Step], said: str) -> None:
    scripted, sibling, later, seen = await send_beside(script)

    assert scripted.failure is not None, scripted
    assert scripted.failure.error_class == "malformed_response"
    assert said in scripted.failure.message, scripted.failure.message
    # RFC 9113 section 8.1.1: a stream error, sent for that stream only; the server answered
    # the sibling once it got it, on the same connection, which then served one more request.
    assert seen.resets == {1: h2.errors.ErrorCodes.PROTOCOL_ERROR}
    assert_fine(sibling, later)
    assert later.connection_reused and seen.connections == 1 and not seen.refused


@pytest.mark.parametrize("status", [b"204", b"304"])
async def test_an_answer_without_content_may_name_a_content_length(status: bytes) -> None:
    # RFC 9113 section 8.1.1: a response defined to have no content can have a non-zero
    # content-length, even though no content is included in DATA frames.
    script: list[Step] = [
        ("headers", [(b":status", status), (b"content-length", b"1234")], False),
        ("data", b"", True),
    ]
    scripted, sibling, later, _ = await send_beside(script)

    assert (scripted.failure, scripted.status, scripted.body) == (None, int(status), b"")
    assert_fine(sibling, later)


async def test_headers_on_a_stream_the_server_opened_fail_the_connection_without_a_value() -> None:
    # RFC 9113 section 8.4: a server opens a stream by PUSH_PROMISE alone (and push is off).
    block = Encoder().encode([_OK, (b"content-length", b"secret-in-a-value")], huffman=False)
    opened = HeadersFrame(2, data=block, flags=["END_HEADERS"]).serialize()
    async with scripted_h2_server(opened) as port:
        (answer,) = await send_all(
            endpoint({80: port}, http="2", total_s=0.5), [get("http://app.example.com/")]
        )

    assert answer.failure is not None and answer.failure.error_class == "malformed_response"
    assert "stream 2" in answer.failure.message and "secret" not in answer.failure.message


@pytest.mark.parametrize("second_read", [False, True], ids=["one-write", "two-writes"])
async def test_headers_after_a_complete_answer_leave_it_and_its_siblings_complete(
    second_read: bool,
) -> None:
    complete: list[Step] = [
        ("headers", [_OK, (b"content-type", b"text/plain")], False),
        ("data", b"done\n", False),
        ("headers", [(b"x-checksum", b"1")], True),
    ]
    late: list[Step] = [("headers", [(b"x-late", b"1")], True)]
    scripted, sibling, later, seen = await send_beside(
        [*complete, ("ping",), *late] if second_read else [*complete, *late]
    )

    assert (scripted.failure, scripted.status, scripted.body) == (None, 200, b"done\n")
    assert scripted.trailers == (("x-checksum", "1"),)
    assert ("x-late", "1") not in (*scripted.headers, *scripted.trailers)
    # RFC 9113 section 5.1: the late frame is refused for its stream alone.
    assert seen.resets == {1: h2.errors.ErrorCodes.STREAM_CLOSED}
    assert_fine(sibling, later)
    assert later.connection_reused and seen.connections == 1


@pytest.mark.parametrize("second_read", [False, True], ids=["one-write", "two-writes"])
async def test_an_answer_complete_before_a_connection_error_stays_complete(
    second_read: bool,
) -> None:
    complete: list[Step] = [("headers", [_OK], False), ("data", b"done\n", True)]
    # WINDOW_UPDATE of 0 on the connection: a connection error (RFC 9113 section 6.9).
    broken: list[Step] = [("raw", b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00", False)]
    async with sibling_h2_server(
        [*complete, ("ping",), *broken] if second_read else [*complete, *broken],
        after_reset=True,
    ) as seen:
        scripted, sibling = await send_all(
            endpoint({80: seen.port}, http="2", total_s=0.3),
            [get("http://app.example.com/scripted"), get("http://app.example.com/sibling")],
        )

    assert (scripted.failure, scripted.status, scripted.body) == (None, 200, b"done\n")
    # The sibling went down with the connection (and, being safe, was sent again in vain).
    assert sibling.failure is not None


_FIELD_BYTES = st.binary(max_size=12) | st.sampled_from(
    [b":status", b"200", b"grpc-message", b"Content-Length", b"te", b"connection", b"\r\n", b" "]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_FIELD_BYTES, _FIELD_BYTES), max_size=6), st.booleans())
def test_any_header_block_ends_its_own_stream_and_never_a_sibling(
    fields: list[tuple[bytes, bytes]], status_first: bool
) -> None:
    block = [_OK, *fields] if status_first else fields
    scripted, sibling, later, _ = asyncio.run(
        send_beside([("headers", block, True)], after_reset=False)
    )

    assert_fine(sibling, later)
    if scripted.failure is None:
        assert scripted.status is not None
    else:
        assert scripted.failure.error_class == "malformed_response", scripted.failure


class _SettingsThenBroken(H2Server):
    """Its SETTINGS and a connection error (WINDOW_UPDATE of 0 on the connection) in one write,
    as the connection opens: the connection is ready and dead in the same read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.conn.initiate_connection()
        broken = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
        self.transport.write(self.conn.data_to_send() + broken)

    def data_received(self, data: bytes) -> None:
        pass


async def test_a_connection_broken_as_it_opens_is_the_servers_fault_not_a_request_not_sent() -> (
    None
):
    async with serving(_SettingsThenBroken) as port:
        answers = await send_all(
            endpoint({80: port}, http="2", total_s=2.0),
            [get(f"http://app.example.com/{n}") for n in range(3)],
        )

    for answer in answers:
        assert answer.failure is not None
        assert answer.failure.error_class == "malformed_response", answer.failure.message


def test_a_field_http2_forbids_on_a_request_that_may_go_over_it_is_a_located_error(
    tmp_path: Path,
) -> None:
    """Connection, Keep-Alive, TE other than trailers... on a request sent over HTTP/2 (or
    `auto` over TLS, on either side) would be refused by the transport at run time, and the
    pair compared nothing: the loader says so, once per header, with its line."""
    path = tmp_path / "h2.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            targets:
              baseline: {address: 127.0.0.1}
              candidate: {address: 127.0.0.1, http: auto, headers: {Keep-Alive: timeout=5}}
            defaults:
              headers: {Connection: close}
            requests:
              - {name: a, url: 'https://app.example.com/'}
              - {name: b, url: 'https://app.example.com/b', headers: {TE: gzip}}
              - {name: c, url: 'https://app.example.com/c', http: "2", headers: {TE: trailers}}
            """
        )
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, environ={})
    lines = str(raised.value).splitlines()

    assert [line.split(": ")[1] for line in lines] == [
        "targets.candidate.headers.Keep-Alive",
        "defaults.headers.Connection",
        "requests[1].headers.TE",
    ], lines
    assert all("HTTP/2 forbids" in line for line in lines)


def test_http_1_1_and_plain_http_requests_may_carry_connection_fields(tmp_path: Path) -> None:
    path = tmp_path / "h1.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 127.0.0.1}\n"
        "  candidate: {address: 127.0.0.1, http: auto}\n"
        "defaults: {headers: {Connection: close}}\n"
        "requests:\n  - {name: a, url: 'http://app.example.com/'}\n"
        "  - {name: b, url: 'https://app.example.com/', http: '1.1', headers: {TE: gzip}}\n"
    )
    assert [r.name for r in load_scenario(path, environ={}).requests] == ["a", "b"]


def test_a_matrix_over_http2_meets_the_same_rule_once(tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 127.0.0.1, http: '2'}\n"
        "  candidate: {address: 127.0.0.1}\n"
        "defaults: {headers: {Connection: close}}\n"
        "matrix:\n  - {name: m, hosts: [a.example.com, b.example.com], paths: [/, /x]}\n"
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, environ={})
    lines = str(raised.value).splitlines()

    assert len(lines) == 1 and "defaults.headers.Connection: Connection is connection" in lines[0]


async def test_a_compressed_body_past_body_capture_has_its_content_hashed() -> None:
    page = b"".join(b"row %d of a long page\n" % n for n in range(20_000))
    body = gzip.compress(page, 1)
    head = Encoder().encode([_OK, (b"content-encoding", b"gzip")], huffman=False)
    chunks = [body[at : at + 16_384] for at in range(0, len(body), 16_384)]
    script = HeadersFrame(1, data=head, flags=["END_HEADERS"]).serialize() + b"".join(
        DataFrame(1, data=chunk, flags=["END_STREAM"] if last else []).serialize()
        for last, chunk in ((i == len(chunks) - 1, c) for i, c in enumerate(chunks))
    )
    async with scripted_h2_server(script) as port:
        (answer,) = await send_all(
            endpoint({80: port}, http="2", capture=4096), [get("http://app.example.com/")]
        )

    assert answer.failure is None and answer.body_truncated and len(body) > 4096
    assert answer.content_sha256 == hashlib.sha256(page).hexdigest()


class _Answering(H2Server):
    """An h2c server answering every request with `body` and `x-served: served`."""

    def __init__(self, body: bytes, served: bytes) -> None:
        super().__init__()
        self.body, self.served = body, served

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived) and event.stream_id is not None:
                head = [_OK, (b"content-type", b"text/plain"), (b"x-served", self.served)]
                self.conn.send_headers(event.stream_id, head)
                self.conn.send_data(event.stream_id, self.body, end_stream=True)
        self.transport.write(self.conn.data_to_send())


async def test_an_h2c_candidate_that_answers_otherwise_shows_in_the_report(
    tmp_path: Path,
) -> None:
    # h2c with prior knowledge on both sides (`http: "2"` over plain HTTP): the candidate's
    # planted body and header show as differences, over the one protocol both served.
    async with (
        serving(lambda: _Answering(b"catalogue v1\n", b"blue")) as baseline,
        serving(lambda: _Answering(b"catalogue v2\n", b"green")) as candidate,
    ):
        report = await run_text(
            tmp_path,
            textwrap.dedent(
                f"""\
                version: 1
                name: h2c
                targets:
                  baseline: {{address: {ADDRESS}, ports: {{http: {baseline}}}, http: "2"}}
                  candidate: {{address: {ADDRESS}, ports: {{http: {candidate}}}, http: "2"}}
                tls_probe: {{probe: false}}
                compare: {{noise: {{share: 0}}}}
                requests:
                  - {{name: catalogue, url: "http://shop.example.com/catalogue", repeat: 2}}
                """
            ),
        )

    found = {(s["kind"], s["field"]) for s in report["signatures"]}
    assert found == {("body", "body"), ("header_changed", "x-served")}, found
    (entry,) = report["requests"]
    assert entry["status"]["baseline"] == entry["status"]["candidate"] == {"200": 2}
    assert report["totals"]["pairs_with_differences"] == 2
    console = Console(width=200, record=True)
    console.print(render_report(report))
    shown = console.export_text()
    assert "header changed: x-served" in shown and "blue → green" in shown, shown
