"""The gRPC probe: grpc.health.v1.Health/Check and a raw unary method sent over HTTP/2 to real
grpcio servers on loopback (h2c and TLS), compared by status, message, trailers and answer;
hostile answers (a lying length prefix, no grpc-status, a stall...) as classified failures;
the call's safety and wire checks as located errors; the codec against protobuf's own."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]  # no stubs are published
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from shadowdiff.compare.observations import compare
from shadowdiff.endpoint import ClientTls, Endpoint, HeadLimits
from shadowdiff.errors import RequestRefused, ScenarioError
from shadowdiff.grpc import (
    HEALTH_CHECK_METHOD as HEALTH,
)
from shadowdiff.grpc import (
    GrpcAnswer,
    GrpcCall,
    answer_outcome,
    decode_health_status,
    encode_health_request,
    frame,
    read_answer,
)
from shadowdiff.observation import Observation
from shadowdiff.render.html import render_html
from shadowdiff.render.terminal import render_report
from shadowdiff.replay.engine import refuse_unsendable
from shadowdiff.report.collect import GRPC_OUTCOMES_PER_REQUEST, OTHER_GRPC_OUTCOMES, RequestTally
from shadowdiff.report.state_read import read_state
from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario
from shadowdiff.spec import RequestSpec
from shadowdiff.transport import open_transport

from .grpc_servers import GrpcBehaviour, grpc_server, hostile_grpc_server, http11_only_server

HOST = "127.0.0.1"
ORDERS = "orders.v1.Orders"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    """A baseline, an identical candidate, and two candidates with planted differences."""
    planted = GrpcBehaviour(
        not_serving=frozenset({ORDERS}),
        answer_prefix=b"ORDER:",
        trailers=(("x-served-by", "candidate"),),
    )
    with (
        grpc_server(GrpcBehaviour()) as baseline,
        grpc_server(GrpcBehaviour()) as same,
        grpc_server(planted) as differs,
        grpc_server(GrpcBehaviour(has_get=False)) as no_get,
    ):
        yield {"baseline": baseline, "same": same, "differs": differs, "no_get": no_get}


def scenario(
    baseline_port: int, candidate_port: int, requests: str, *, scheme: str = "http", tls: str = ""
) -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        name: grpc
        targets:
          baseline: {{address: {HOST}, ports: {{{scheme}: {baseline_port}}}{tls}}}
          candidate: {{address: {HOST}, ports: {{{scheme}: {candidate_port}}}{tls}}}
        tls_probe: {{probe: false}}
        requests:
        """
    ) + textwrap.indent(textwrap.dedent(requests), "  ")


HEALTH_AND_GET = """\
- {name: orders health, url: "http://api.example.com/", grpc: {health: orders.v1.Orders}}
- name: orders get
  url: http://api.example.com/
  allow_unsafe: true
  grpc: {method: /orders.v1.Orders/Get, message_base64: CgMxMjM=}
"""


async def run_text(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "grpc.yaml"
    path.write_text(text)
    return await run_scenario(load_scenario(path, environ={}))


def shown(report: Any) -> str:
    console = Console(width=200, record=True)
    console.print(render_report(report))
    return console.export_text()


def outcomes(report: Any) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    return {r["name"]: (r["grpc"]["baseline"], r["grpc"]["candidate"]) for r in report["requests"]}


def table_row(text: str, name: str) -> list[str]:
    """The cells of request `name`'s row in the Requests table."""
    line = next(line for line in text.splitlines() if line.startswith(f"│{name} "))
    return [cell.strip() for cell in line.split("│")]


def found(report: Any) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    return {
        (s["kind"], s["field"]): (s["examples"][0]["baseline"], s["examples"][0]["candidate"])
        for s in report["signatures"]
    }


async def test_a_planted_health_answer_and_trailer_show_with_their_hints(
    servers: dict[str, int], tmp_path: Path
) -> None:
    report = await run_text(
        tmp_path, scenario(servers["baseline"], servers["differs"], HEALTH_AND_GET)
    )

    differences = found(report)
    assert differences[("grpc", "health")] == ("SERVING", "NOT_SERVING")
    before, after = differences[("grpc", "answer")]
    assert before is not None and after is not None
    assert "b'order:\\n\\x03123'" in before and "b'ORDER:\\n\\x03123'" in after
    assert differences[("grpc_trailer", "x-served-by")] == (None, "candidate")
    assert len(differences) == 3, "status, message and headers are alike"
    hints = {s["field"]: s.get("hint") for s in report["signatures"] if s["kind"] == "grpc"}
    assert hints["health"] is not None and "backendRef" in hints["health"]["fix"]
    assert report["outcome"]["exit_code"] == 1
    text = shown(report)
    assert "grpc: health" in text and "SERVING → NOT_SERVING" in text
    # The Requests table shows what each call came to, not the HTTP 200 every call carries.
    assert outcomes(report) == {
        "orders health": ({"SERVING": 1}, {"NOT_SERVING": 1}),
        "orders get": ({"OK": 1}, {"OK": 1}),
    }
    assert table_row(text, "orders health")[3:5] == ["SERVING ×1", "NOT_SERVING ×1"]
    assert table_row(text, "orders get")[3:5] == ["OK ×1", "OK ×1"]
    html = render_html(report)
    assert "<td>SERVING ×1</td>" in html and "<td>NOT_SERVING ×1</td>" in html


async def test_a_method_the_candidate_does_not_route_is_unimplemented_with_the_grpcroute_hint(
    servers: dict[str, int], tmp_path: Path
) -> None:
    report = await run_text(
        tmp_path, scenario(servers["baseline"], servers["no_get"], HEALTH_AND_GET)
    )

    (signature,) = report["signatures"]
    assert (signature["kind"], signature["field"]) == ("grpc", "status")
    example = signature["examples"][0]
    assert (example["baseline"], example["candidate"]) == ("0 OK", "12 UNIMPLEMENTED")
    assert "GRPCRoute" in signature["hint"]["fix"]
    assert outcomes(report)["orders get"] == ({"OK": 1}, {"UNIMPLEMENTED": 1})
    assert table_row(shown(report), "orders get")[3:5] == ["OK ×1", "UNIMPLEMENTED ×1"]
    # A merge reads the outcomes back from the report's state.
    (tally,) = [
        t
        for name, t in read_state(report["state"]).collector.requests.items()
        if name == "orders get"
    ]
    assert (dict(tally.grpc["baseline"]), dict(tally.grpc["candidate"])) == (
        {"OK": 1},
        {"UNIMPLEMENTED": 1},
    )


async def test_identical_grpc_servers_report_nothing_across_repeats(
    servers: dict[str, int], tmp_path: Path
) -> None:
    requests = (
        HEALTH_AND_GET
        + """\
- {name: server health, url: "http://api.example.com/", repeat: 5, grpc: {health: ""}}
- {name: unknown service, url: "http://api.example.com/", grpc: {health: nope.v1.Nope}}
- name: no such method
  url: http://api.example.com
  allow_unsafe: true
  repeat: 2
  grpc: {method: /orders.v1.Orders/Missing, message_hex: ""}
"""
    )
    report = await run_text(tmp_path, scenario(servers["baseline"], servers["same"], requests))

    assert report["signatures"] == []
    assert report["outcome"]["exit_code"] == 0
    statuses = {r["name"]: r["status"]["candidate"] for r in report["requests"]}
    assert statuses["server health"] == {"200": 5}
    called = {name: candidate for name, (_, candidate) in outcomes(report).items()}
    assert called["server health"] == {"SERVING": 5}
    assert called["unknown service"] == {"NOT_FOUND": 1}
    assert called["no such method"] == {"UNIMPLEMENTED": 2}
    assert sum(r["noise_samples"] for r in report["requests"]) > 0, "the health check calibrates"


async def test_grpc_over_tls_speaks_h2_by_alpn(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("api.example.com")
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    key_and_chain = (
        certificate.private_key_pem.bytes(),
        b"".join(blob.bytes() for blob in certificate.cert_chain_pems),
    )
    with (
        grpc_server(GrpcBehaviour(), tls=key_and_chain) as baseline,
        grpc_server(GrpcBehaviour(not_serving=frozenset({ORDERS})), tls=key_and_chain) as candidate,
    ):
        report = await run_text(
            tmp_path,
            scenario(
                baseline,
                candidate,
                """\
                - {name: orders health, url: "https://api.example.com/", grpc: {health: orders.v1.Orders}}
                """,
                scheme="https",
                tls=f", tls: {{ca: {ca_file}}}",
            ),
        )

    assert found(report) == {("grpc", "health"): ("SERVING", "NOT_SERVING")}


def endpoint(port: int, *, total_s: float = 2.0, capture: int = 65_536) -> Endpoint:
    return Endpoint(
        side="candidate",
        address=HOST,
        port_map={80: port},
        tls=ClientTls(),
        headers=(),
        connect_timeout_s=2.0,
        total_timeout_s=total_s,
        body_capture_bytes=capture,
        limits=HeadLimits(65_536, 262_144, 500),
        any_https=False,
        http="1.1",  # a gRPC call is HTTP/2 whatever the target speaks otherwise
    )


def call(method: str, message: bytes = b"", *, health: bool = False) -> RequestSpec:
    return RequestSpec(
        name=method,
        method="POST",
        url=f"http://api.example.com{method}",
        headers=(("content-type", "application/grpc"), ("te", "trailers")),
        body=frame(message),
        allow_unsafe=not health,
        grpc=GrpcCall(method, message, health),
    )


async def send_hostile(behaviours: list[str], **limits: Any) -> list[Observation]:
    async with hostile_grpc_server() as port:
        transport = open_transport(endpoint(port, **limits), pool_size=4)
        try:
            return list(
                await asyncio.gather(
                    *(transport.send(call(f"/hostile.v1.H/{name}")) for name in behaviours)
                )
            )
        finally:
            await transport.close()


@pytest.mark.parametrize(
    ("behaviour", "error_class", "said"),
    [
        ("lying_prefix", "malformed_response", "length prefix says 100 bytes, and 10"),
        ("huge_prefix", "malformed_response", "length prefix says 4294967295 bytes"),
        ("short_prefix", "malformed_response", "shorter than its 5-byte prefix"),
        ("two_messages", "malformed_response", "a unary answer holds one message"),
        ("compressed_no_encoding", "malformed_response", "without a grpc-encoding"),
        ("no_status", "malformed_response", "without grpc-status"),
        ("status_not_number", "malformed_response", "grpc-status is not a number: 'OK'"),
        ("reset", "reset", "RST_STREAM"),
        ("stall", "timeout", ""),
    ],
)
async def test_a_hostile_grpc_answer_is_a_classified_failure(
    behaviour: str, error_class: str, said: str
) -> None:
    started = time.monotonic()
    (answer,) = await send_hostile([behaviour], total_s=0.5)

    assert answer.failure is not None
    assert (answer.failure.error_class, said in answer.failure.message) == (error_class, True)
    assert time.monotonic() - started < 3.0, "within the timeout, never a hang"


async def test_a_server_without_http2_is_a_transport_failure() -> None:
    async with http11_only_server() as port:
        transport = open_transport(endpoint(port), pool_size=1)
        try:
            answer = await transport.send(call(HEALTH, health=True))
        finally:
            await transport.close()

    # Its answer is no HTTP/2, or its close comes first (as in tests/test_http2.py).
    assert answer.failure is not None
    assert answer.failure.error_class in ("malformed_response", "reset")


async def test_answers_a_grpc_client_reads_are_observations() -> None:
    names = [
        "ok",
        "trailers_only",
        "encoded_message",
        "raw_utf8_message",
        "html_404",
        "big_message",
    ]
    answers = dict(zip(names, await send_hostile(names, capture=1024), strict=True))

    assert all(answer.failure is None for answer in answers.values())
    assert answers["ok"].trailers == (("grpc-status", "0"),)
    assert ("grpc-status", "12") in answers["trailers_only"].headers
    big = answers["big_message"]
    assert (len(big.body), big.body_bytes) == (1024, 100_005), "captured up to body_capture"
    spec = call("/hostile.v1.H/ok")
    baseline = answers["ok"]
    by_name = {
        name: [(d.kind, d.field, d.candidate) for d in compare(spec, baseline, answer)]
        for name, answer in answers.items()
    }
    assert by_name["ok"] == []
    assert by_name["trailers_only"] == [("grpc", "status", "12 UNIMPLEMENTED")]
    assert by_name["encoded_message"] == [("grpc", "status", "13 INTERNAL")]
    (difference,) = compare(spec, baseline, answers["encoded_message"])
    assert difference.detail == 'grpc-message: "" → "café ✓\\x0d\\x0ainjected\\x00"'
    # Sent raw rather than percent-encoded: read as UTF-8 all the same, the escape made text.
    (difference,) = compare(spec, baseline, answers["raw_utf8_message"])
    assert difference.detail == 'grpc-message: "" → "raw café \\x1b[31m"'
    assert ("status", "status", "404") in by_name["html_404"]
    assert ("grpc", "status", "12 UNIMPLEMENTED (from HTTP)") in by_name["html_404"]
    (answer_difference,) = by_name["big_message"]
    assert answer_difference[:2] == ("grpc", "answer")
    assert answer_difference[2] is not None and answer_difference[2].startswith("100000 bytes")


async def test_other_http2_answers_keep_their_trailers_apart_from_their_headers() -> None:
    async with hostile_grpc_server() as port:
        transport = open_transport(endpoint(port), pool_size=1)
        try:
            plain = dataclasses.replace(call("/hostile.v1.H/ok"), grpc=None, http="2")
            answer = await transport.send(plain)
        finally:
            await transport.close()

    # RFC 9110 section 6.5.1: trailers are not merged into the head, gRPC call or not.
    assert answer.failure is None and answer.trailers[-1] == ("grpc-status", "0")
    assert "grpc-status" not in {name for name, _ in answer.headers}


_FIELDS = st.lists(
    st.tuples(
        st.sampled_from(["grpc-status", "grpc-message", "x-a", "grpc-encoding", "content-type"]),
        st.text(max_size=12),
    ),
    max_size=5,
)


@settings(max_examples=120, deadline=None)
@given(
    st.tuples(st.sampled_from([200, 404, 503]), _FIELDS, _FIELDS, st.binary(max_size=24)),
    st.tuples(st.sampled_from([200, 404, 503]), _FIELDS, _FIELDS, st.binary(max_size=24)),
    st.booleans(),
)
def test_any_two_answers_compare_without_an_exception(
    baseline_parts: tuple[int, Any, Any, bytes],
    candidate_parts: tuple[int, Any, Any, bytes],
    health: bool,
) -> None:
    def observation(side: Any, parts: tuple[int, Any, Any, bytes]) -> Observation:
        status, headers, trailers, body = parts
        return Observation(
            side=side,
            status=status,
            http_version="2",
            headers=tuple(headers),
            trailers=tuple(trailers),
            body=body,
            body_bytes=len(body),
            body_sha256=hashlib.sha256(body).hexdigest(),
        )

    spec = call(HEALTH if health else "/a.B/C", health=health)
    baseline = observation("baseline", baseline_parts)
    differences = compare(spec, baseline, observation("candidate", candidate_parts))
    assert all(d.baseline != d.candidate for d in differences)
    assert compare(spec, baseline, baseline) == [], "an answer never differs from itself"


def write(tmp_path: Path, requests: str, defaults: str = "") -> Path:
    path = tmp_path / "grpc.yaml"
    path.write_text(
        "version: 1\nname: g\ntargets:\n  baseline: {address: 127.0.0.1}\n"
        f"  candidate: {{address: 127.0.0.1}}\n{defaults}requests:\n{requests}"
    )
    return path


@pytest.mark.parametrize(
    ("request_text", "defaults", "error"),
    [
        (
            '  - {name: g, url: "http://a.example/", grpc: {method: /a.B/C}}\n',
            "",
            "requests[0].grpc: the gRPC method '/a.B/C' may change state",
        ),
        (
            '  - {name: g, url: "http://a.example/", grpc: {method: "/a.B/C\\r\\nX: y"}}\n',
            "",
            r"requests[0].grpc: the gRPC method '/a.B/C\r\nX: y' may change state",
        ),
        (
            '  - {name: g, url: "http://a.example/", allow_unsafe: true, grpc: {method: "/a.B/C\\r\\nX: y"}}\n',
            "",
            "requests[0].grpc.method: expected a method path such as /package.Service/Method",
        ),
        (
            '  - {name: g, url: "http://a.example/", allow_unsafe: true, grpc: {method: "a.B/C"}}\n',
            "",
            "requests[0].grpc.method: expected a method path",
        ),
        (
            '  - {name: g, url: "http://a.example/", http: "1.1", grpc: {health: ""}}\n',
            "",
            'requests[0].http: gRPC speaks HTTP/2 only: leave http out or write "2"',
        ),
        (
            '  - {name: g, url: "http://a.example/x", grpc: {health: ""}}\n',
            "",
            "requests[0].url: a gRPC call's URL names the host only (path /)",
        ),
        (
            '  - {name: g, url: "http://a.example/", method: GET, grpc: {health: ""}}\n',
            "",
            "requests[0].method: a gRPC call is a POST",
        ),
        (
            '  - {name: g, url: "http://a.example/", allow_unsafe: true, grpc: {method: /a.B/C, message_hex: zz}}\n',
            "",
            "requests[0].grpc.message_hex: not hex",
        ),
        (
            '  - {name: g, url: "http://a.example/", grpc: {health: "", method: /a.B/C}}\n',
            "",
            "requests[0].grpc: a gRPC call has exactly one of health or method",
        ),
        (
            '  - {name: g, url: "http://a.example/", grpc: {health: ""}}\n',
            "defaults: {transport: aiohttp}\n",
            "requests[0].grpc: gRPC (HTTP/2) needs the lean transport",
        ),
        (
            '  - {name: g, url: "http://a.example/", headers: {TE: gzip}, grpc: {health: ""}}\n',
            "",
            "requests[0].headers.TE: TE is connection-specific, which HTTP/2 forbids",
        ),
        (
            '  - {name: g, url: "http://a.example/", grpc: {health: ""}}\n',
            "defaults: {headers: {Connection: keep-alive}}\n",
            "defaults.headers.Connection: Connection is connection-specific",
        ),
    ],
    ids=[
        "method-without-allow-unsafe",
        "crlf-in-method-without-allow-unsafe",
        "crlf-in-method",
        "method-without-slash",
        "http-1.1",
        "url-with-path",
        "explicit-get",
        "bad-hex",
        "health-and-method",
        "aiohttp",
        "te-not-trailers",
        "default-connection-header",
    ],
)
def test_a_grpc_call_that_cannot_be_sent_is_a_located_error(
    tmp_path: Path, request_text: str, defaults: str, error: str
) -> None:
    with pytest.raises(ScenarioError) as raised:
        load_scenario(write(tmp_path, request_text, defaults), environ={})

    assert error in str(raised.value)
    # Each problem is one line: no value from the file breaks it.
    assert all(line.startswith(str(tmp_path)) for line in str(raised.value).splitlines())


def test_a_target_header_a_grpc_call_cannot_carry_is_a_located_error(tmp_path: Path) -> None:
    """Target headers go on every request: one that HTTP/2 forbids would leave every gRPC
    pair unsent on that side."""
    path = tmp_path / "grpc.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 127.0.0.1}\n"
        "  candidate: {address: 127.0.0.1, headers: {Connection: close, TE: trailers}}\n"
        'requests:\n  - {name: g, url: "http://a.example/", grpc: {health: ""}}\n'
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, environ={})

    assert "targets.candidate.headers.Connection: Connection is connection-specific" in str(
        raised.value
    )
    assert "TE" not in str(raised.value)  # TE: trailers is what gRPC sends


def test_the_health_check_alone_goes_without_allow_unsafe(tmp_path: Path) -> None:
    loaded = load_scenario(
        write(tmp_path, '  - {name: g, url: "https://a.example", grpc: {health: x.v1.X}}\n'),
        environ={},
    )
    (spec,) = loaded.requests
    assert (spec.method, spec.url, spec.http) == (
        "POST",
        "https://a.example/grpc.health.v1.Health/Check",
        "2",
    )
    assert spec.body == frame(b"\x0a\x06x.v1.X") and spec.unsafe_reason is None
    refuse_unsendable(loaded)  # sent as written
    # A library caller's method without allow_unsafe is refused before anything is sent.
    lookup = dataclasses.replace(call("/a.B/C"), allow_unsafe=False)
    with pytest.raises(RequestRefused, match="POST may change state"):
        refuse_unsendable(dataclasses.replace(loaded, requests=(lookup,)))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_the_health_request_is_what_protobuf_writes(service: str) -> None:
    try:
        expected = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    except (UnicodeError, ValueError):
        return  # a lone surrogate: protobuf refuses it too (the loader says so)
    assert encode_health_request(service) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**31), max_value=2**31 - 1), st.binary(max_size=40))
def test_the_health_status_is_read_as_protobuf_reads_it(status: int, unknown: bytes) -> None:
    message = health_pb2.HealthCheckResponse(status=status).SerializeToString()
    names = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    assert decode_health_status(message) == names.get(status, str(status))
    # An unknown length-delimited field before it (a newer server's) is skipped.
    extra = b"\x12" + bytes([len(unknown)]) + unknown
    assert decode_health_status(extra + message) == names.get(status, str(status))


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=64),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.sampled_from([None, "0", "12", "x", "", "999999"]),
    st.sampled_from([200, 404, 503]),
)
def test_any_answer_reads_as_an_answer_or_a_reason(
    data: bytes, declared: int, status: str | None, http_status: int
) -> None:
    for body in (data, b"\x00" + declared.to_bytes(4, "big") + data):
        trailers = () if status is None else (("grpc-status", status),)
        answer = read_answer(http_status, (), trailers, body[:32], len(body))
        assert isinstance(answer, GrpcAnswer | str)
        if isinstance(answer, GrpcAnswer) and body and not answer.status_from_http:
            assert answer.payload_bytes == len(body) - 5
            assert answer.payload is None or len(answer.payload) == answer.payload_bytes
    with contextlib.suppress(ValueError):  # the one way a message may be refused
        decode_health_status(data)


def test_a_grpc_call_through_aiohttp_is_refused_unsent() -> None:
    async def send() -> Observation:
        target = dataclasses.replace(endpoint(1), transport="aiohttp")
        transport = open_transport(target, pool_size=1)
        try:
            return await transport.send(call("/grpc.health.v1.Health/Check", health=True))
        finally:
            await transport.close()

    answer = asyncio.run(send())
    assert answer.failure is not None and answer.failure.error_class == "not_sent"
    assert "gRPC needs HTTP/2" in answer.failure.message


def test_base64_messages_go_out_framed(tmp_path: Path) -> None:
    loaded = load_scenario(
        write(
            tmp_path,
            '  - {name: g, url: "http://a.example/", allow_unsafe: true, '
            "grpc: {method: /orders.v1.Orders/Get, message_base64: CgMxMjM=}}\n",
        ),
        environ={},
    )
    (spec,) = loaded.requests
    assert spec.body == frame(base64.b64decode("CgMxMjM="))
    assert dict(spec.headers)["content-type"] == "application/grpc"
    assert spec.grpc is not None and not spec.grpc.health


_OK_BODY = frame(health_pb2.HealthCheckResponse(status=1).SerializeToString())


@pytest.mark.parametrize(
    ("status", "headers", "trailers", "body", "health", "outcome"),
    [
        (200, (), (("grpc-status", "0"),), frame(b"x"), False, "OK"),
        (200, (("grpc-status", "12"),), (), b"", False, "UNIMPLEMENTED"),
        (200, (), (("grpc-status", "42"),), b"", False, "code 42"),
        (404, (("content-type", "text/html"),), (), b"<h1>", False, "UNIMPLEMENTED (HTTP 404)"),
        (503, (), (), b"", True, "UNAVAILABLE (HTTP 503)"),
        (200, (), (("grpc-status", "0"),), _OK_BODY, True, "SERVING"),
        (200, (), (("grpc-status", "0"),), frame(b"\x08\x07"), True, "OK (health 7)"),
        (200, (), (("grpc-status", "0"),), frame(b"\x0f"), True, "OK"),
        (200, (), (("grpc-status", "5"),), b"", True, "NOT_FOUND"),
        (200, (), (), b"", False, "not gRPC (HTTP 200)"),
    ],
    ids=[
        "ok",
        "trailers-only",
        "code-without-name",
        "from-http",
        "health-from-http",
        "serving",
        "health-value-without-name",
        "not-a-health-message",
        "health-unknown-service",
        "no-grpc-status",
    ],
)
def test_each_answer_shows_what_the_call_came_to(
    status: int,
    headers: tuple[tuple[str, str], ...],
    trailers: tuple[tuple[str, str], ...],
    body: bytes,
    health: bool,
    outcome: str,
) -> None:
    assert answer_outcome(status, headers, trailers, body, len(body), health=health) == outcome


def test_outcomes_past_the_limit_are_pooled() -> None:
    tally = RequestTally(call("/a.B/C"))
    for code in range(100, 100 + GRPC_OUTCOMES_PER_REQUEST + 10):
        tally.count_grpc("candidate", f"code {code}")
    assert len(tally.grpc["candidate"]) == GRPC_OUTCOMES_PER_REQUEST + 1
    assert tally.grpc["candidate"][OTHER_GRPC_OUTCOMES] == 10
