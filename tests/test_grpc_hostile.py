"""The gRPC probe against answers and scenario values an attacker chooses: secrets a server
reflects where shadowdiff cuts what it shows, and the other hostile cases found by trying
(tests/grpc_servers.py serves the answers)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from shadowdiff.compare.observations import compare
from shadowdiff.errors import ScenarioError
from shadowdiff.grpc import GrpcCall, frame
from shadowdiff.observation import Observation
from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario
from shadowdiff.spec import RequestSpec, Side

from .grpc_servers import hostile_grpc_server
from .test_grpc import send_hostile

SECRETS = {"TOKEN": "b4se-s3cr3t-token-value-42", "TOKEN2": "cand-s3cr3t-token-value-77"}


async def run_against_hostile(tmp_path: Path, requests: str) -> Any:
    """`requests` sent to two hostile gRPC servers, each target with its own token."""
    async with (
        hostile_grpc_server() as port,
        hostile_grpc_server(host="127.0.0.2", port=port),
    ):
        text = textwrap.dedent(
            f"""\
            version: 1
            name: grpc hostile
            targets:
              baseline:
                address: 127.0.0.1
                ports: {{http: {port}}}
                headers: {{authorization: "Bearer ${{TOKEN}}"}}
              candidate:
                address: 127.0.0.2
                ports: {{http: {port}}}
                headers: {{authorization: "Bearer ${{TOKEN2}}"}}
            defaults: {{timeouts: {{connect_s: 2, total_s: 2}}}}
            tls_probe: {{probe: false}}
            requests:
            """
        ) + textwrap.indent(textwrap.dedent(requests), "  ")
        path = tmp_path / "hostile.yaml"
        path.write_text(text)
        return await run_scenario(load_scenario(path, environ=SECRETS))


async def test_a_secret_echoed_where_the_report_cuts_is_hidden_by_its_beginning(
    tmp_path: Path,
) -> None:
    report = await run_against_hostile(
        tmp_path,
        """\
        - name: answer
          url: http://api.example.com/
          allow_unsafe: true
          grpc: {method: /hostile.v1.H/echo_cut_answer}
        - name: message
          url: http://api.example.com/
          allow_unsafe: true
          grpc: {method: /hostile.v1.H/echo_cut_message}
        """,
    )

    shown = {
        (s["kind"], s["field"]): (s["examples"][0]["baseline"], s["examples"][0]["candidate"])
        for s in report["signatures"]
    }
    assert set(shown) == {("grpc", "answer"), ("grpc", "message")}
    # Each value is cut inside the token: its first characters are all that could show.
    cut = [value for pair in shown.values() for value in pair]
    assert all(v.endswith("…") and "[redacted " in v for v in cut), shown
    written = json.dumps(report)
    for secret in SECRETS.values():
        assert secret[:8] not in written


def answer(
    side: Side, headers: tuple[tuple[str, str], ...], trailers: tuple[tuple[str, str], ...]
) -> Observation:
    return Observation(
        side=side,
        status=200,
        http_version="2",
        headers=(("content-type", "application/grpc"), *headers),
        trailers=trailers,
        body_sha256=hashlib.sha256(b"").hexdigest(),
    )


def test_trailing_metadata_compares_alike_whether_trailers_only_or_not() -> None:
    lookup = RequestSpec(
        name="g",
        method="POST",
        url="http://api.example.com/a.B/C",
        headers=(),
        body=frame(b""),
        allow_unsafe=True,
        grpc=GrpcCall("/a.B/C", b""),
    )
    metadata = (("grpc-status", "5"), ("grpc-message", "no order"), ("x-request-cost", "3"))
    # One data plane passes the backend's trailers-only error on as it came, the other as a
    # head and a trailer block: the same status, message and metadata.
    trailers_only = answer("baseline", (("server", "envoy"), *metadata), ())
    with_block = answer("candidate", (("server", "envoy"),), metadata)

    assert compare(lookup, trailers_only, with_block) == []
    assert compare(lookup, dataclasses.replace(with_block, side="baseline"), trailers_only) == []
    # Metadata one side lacks is still found, wherever the other sent it.
    lacking = answer("candidate", (), metadata[:2])
    assert [d.field for d in compare(lookup, trailers_only, lacking)] == [
        "server",
        "x-request-cost",
    ]


def test_a_grpc_message_is_compared_whole_and_cut_only_where_long() -> None:
    lookup = RequestSpec(
        name="g",
        method="POST",
        url="http://api.example.com/a.B/C",
        headers=(),
        body=frame(b""),
        allow_unsafe=True,
        grpc=GrpcCall("/a.B/C", b""),
    )

    def failed(side: Side, message: str) -> Observation:
        return answer(side, (), (("grpc-status", "9"), ("grpc-message", message)))

    # Alike for 300 characters: the quota that differs comes after.
    prefix = "order rejected: " + "precondition " * 25
    differences = compare(
        lookup, failed("baseline", prefix + "quota 5"), failed("candidate", prefix + "quota 7")
    )
    assert [(d.kind, d.field) for d in differences] == [("grpc", "message")]
    shown = [v for d in differences for v in (d.baseline, d.candidate)]
    assert all(v is not None and v.endswith("…") for v in shown), shown
    # 150 characters written as 450 percent-escapes are short: shown whole, not cut.
    (short,) = compare(lookup, failed("baseline", "%41" * 150), failed("candidate", "B"))
    assert short.baseline == "A" * 150


def test_a_long_secret_in_a_method_is_hidden_where_the_error_cuts_it(tmp_path: Path) -> None:
    path = tmp_path / "method.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: method from the environment
            targets: {baseline: {address: 127.0.0.1}, candidate: {address: 127.0.0.2}}
            requests:
              - name: lookup
                url: http://api.example.com/
                allow_unsafe: true
                grpc: {method: "/a.B/${METHOD_KEY}"}
            """
        )
    )
    secret = "key-" + "k7" * 60  # a '-' no method name holds, and longer than the quote

    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, environ={"METHOD_KEY": secret})

    assert "requests[0].grpc.method: expected a method path" in str(raised.value)
    assert "'/a.B/${METHOD_KEY}'…" in str(raised.value)
    assert secret[:8] not in str(raised.value)


async def test_an_answer_over_the_limits_fails_its_own_call_not_the_others_in_flight() -> None:
    # Both calls share one HTTP/2 connection: the stalled one is still waiting when the other
    # answers with a grpc-message over header_line_bytes.
    stalled, refused = await send_hostile(["stall", "long_message"], total_s=0.5)

    assert refused.failure is not None and stalled.failure is not None
    assert refused.failure.error_class == "malformed_response"
    assert "exceeds header_line_bytes" in refused.failure.message
    assert stalled.failure.error_class == "timeout", stalled.failure


async def test_a_malformed_trailer_block_fails_its_own_call_not_the_others_in_flight() -> None:
    # As above, with a grpc-message holding CR/LF as they are: a malformed answer (RFC 9113
    # section 8.2.1), which fails its stream alone; the stalled call still waits its time.
    stalled, refused, fine = await send_hostile(["stall", "raw_crlf_message", "ok"], total_s=0.5)

    assert refused.failure is not None and stalled.failure is not None
    assert refused.failure.error_class == "malformed_response"
    assert "CR, LF or NUL in the value of 'grpc-message'" in refused.failure.message
    assert stalled.failure.error_class == "timeout", stalled.failure
    assert fine.failure is None and fine.trailers == (("grpc-status", "0"),)
