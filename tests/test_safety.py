"""Nothing is sent that the scenario did not allow: no header injection, no text that cannot be
written, no unsafe request multiplied, and the same rules for requests built through the
library as for scenario files. Each test failed on the code before the safety work."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from shadowdiff.endpoint import TransportName
from shadowdiff.errors import RequestRefused, ScenarioError
from shadowdiff.grpc import GrpcCall, frame
from shadowdiff.run import run_scenario
from shadowdiff.scenario import Scenario, load_scenario, parse_scenario
from shadowdiff.spec import RequestSpec, WebSocketProbe
from shadowdiff.transport import TRANSPORT_NAMES, open_transport

from .wire_server import WireServer, wire_server

INJECTION = "a\r\n\r\nDELETE /orders/7 HTTP/1.1\r\nHost: shop.example.com"


def scenario_text(baseline: WireServer, candidate: WireServer, body: str) -> str:
    return (
        "targets:\n"
        f"  baseline: {{address: {baseline.address}, ports: {{http: {baseline.port}, https: 1}}}}\n"
        f"  candidate: {{address: {candidate.address}, ports: {{http: {candidate.port}, https: 1}}}}\n"
        + textwrap.dedent(body)
    )


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    try:
        parse_scenario(text, "s.yaml", base_dir=Path("."), environ=environ or {})
    except ScenarioError as exc:
        return [str(p) for p in exc.problems]
    return []


TARGETS = "targets:\n  baseline: {address: 127.0.0.1}\n  candidate: {address: 127.0.0.2%s}\n"


@pytest.mark.parametrize(
    ("candidate_extra", "body", "environ", "where"),
    [
        (
            "",
            "requests:\n  - {name: a, url: 'http://x.example.com/', headers: {X-Note: %s}}\n",
            {},
            "s.yaml:5:",
        ),
        (
            "",
            "defaults: {headers: {X-Note: %s}}\nrequests:\n  - {name: a, url: 'http://x.example.com/'}\n",
            {},
            "s.yaml:4:",
        ),
        (
            ", headers: {X-Note: %s}",
            "requests:\n  - {name: a, url: 'http://x.example.com/'}\n",
            {},
            "s.yaml:3:",
        ),
        (
            "",
            "matrix:\n  - {name: m, hosts: [x.example.com], paths: [/], header_sets: [{X-Note: %s}]}\n",
            {},
            "s.yaml:5:",
        ),
        (
            "",
            "requests:\n  - {name: a, url: 'http://x.example.com/', headers: {X-Note: '${NOTE}'}}\n",
            {"NOTE": INJECTION},
            "s.yaml:5:",
        ),
    ],
    ids=[
        "request-headers",
        "defaults-headers",
        "target-headers",
        "matrix-header-sets",
        "environment",
    ],
)
def test_crlf_in_a_header_value_is_a_located_error(
    candidate_extra: str, body: str, environ: dict[str, str], where: str
) -> None:
    quoted = '"a\\r\\n\\r\\nDELETE /orders/7 HTTP/1.1\\r\\nHost: shop.example.com"'
    text = TARGETS % (candidate_extra % quoted if "%s" in candidate_extra else candidate_extra)
    text += body % quoted if "%s" in body else body
    lines = problems(text, environ)
    assert len(lines) == 1, lines
    assert lines[0].startswith(where) and "control character (CR)" in lines[0], lines
    assert "DELETE" not in lines[0]  # the value itself is never quoted


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a\\u0000b"', "control character (NUL)"),
        ('"a\\u001bb"', "control character (U+001B)"),
        ('"a\\u007fb"', "control character (DEL)"),
        ('"Ω"', "non-ASCII character (U+03A9)"),
        ('"price in €"', "non-ASCII character (U+20AC)"),
        ('" padded"', "whitespace"),
    ],
    ids=["nul", "escape", "del", "omega", "euro", "padding"],
)
def test_header_values_hold_only_what_http_allows(value: str, expected: str) -> None:
    text = (
        TARGETS % ""
        + f"requests:\n  - {{name: a, url: 'http://x.example.com/', headers: {{X-Note: {value}}}}}\n"
    )
    lines = problems(text)
    assert len(lines) == 1 and expected in lines[0], lines


def test_a_tab_inside_a_header_value_is_allowed() -> None:
    text = (
        TARGETS % ""
        + "requests:\n  - {name: a, url: 'http://x.example.com/', headers: {X-Note: \"a\\tb\"}}\n"
    )
    assert problems(text) == []


@pytest.mark.parametrize(
    "url",
    [
        '"http://x.example.com/a\\r\\nX: y"',
        '"http://x.example.com/\\n"',
        '"http://x.example.com/a\\u0000"',
    ],
    ids=["crlf-in-path", "lf-at-end", "nul"],
)
def test_control_characters_in_a_url_are_a_located_error_not_dropped(url: str) -> None:
    lines = problems(TARGETS % "" + f"requests:\n  - {{name: a, url: {url}}}\n")
    assert len(lines) == 1 and lines[0].startswith("s.yaml:5:") and "control character" in lines[0]


def test_a_header_injection_sends_nothing_through_the_cli(tmp_path: Path) -> None:
    """Before: `validate` passed and `run` sent a DELETE to both entry points, exit 0."""
    import subprocess
    import sys

    path = tmp_path / "s.yaml"
    path.write_text(
        TARGETS % ""
        + "requests:\n  - {name: a, url: 'http://x.example.com/', headers: {X-Note: '${NOTE}'}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "validate", str(path)],
        capture_output=True,
        text=True,
        env={"NOTE": INJECTION, "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    assert result.returncode == 2
    assert "requests[0].headers.X-Note" in result.stderr and "DELETE" not in result.stderr


async def test_non_ascii_urls_are_percent_encoded_and_hosts_sent_as_idna(tmp_path: Path) -> None:
    async with wire_server() as baseline, wire_server("127.0.0.2") as candidate:
        path = tmp_path / "s.yaml"
        path.write_text(
            scenario_text(
                baseline,
                candidate,
                """\
                compare: {noise: {share: 0}}
                requests:
                  - {name: euro, url: 'http://shop.example.com/café/a//b/../%zz?q=€ x'}
                  - {name: idna, url: 'http://bücher.example/'}
                matrix:
                  - {name: m, schemes: [http], hosts: [straße.example], paths: ['/Ω']}
                """,
            ),
            encoding="utf-8",
        )
        scenario = load_scenario(path, environ={})
        report = await run_scenario(scenario)
    assert report["outcome"]["exit_code"] == 0, report["outcome"]
    for server in (baseline, candidate):
        seen = {(r.target, {n.lower(): v for n, v in r.headers}[b"host"]) for r in server.requests}
        assert seen == {
            (b"/caf%C3%A9/a//b/../%zz?q=%E2%82%AC%20x", b"shop.example.com"),
            (b"/", b"xn--bcher-kva.example"),
            (b"/%CE%A9", b"xn--strae-oqa.example"),  # UTS #46 non-transitional, as browsers
        }, seen
        assert server.protocol_errors == []


def test_a_host_that_idna_refuses_is_a_located_error() -> None:
    lines = problems(TARGETS % "" + "requests:\n  - {name: a, url: 'http://a\u200db.example/'}\n")
    assert len(lines) == 1 and lines[0].startswith("s.yaml:5:") and "internationalised" in lines[0]


async def test_an_allowed_post_is_sent_once_under_load_and_counted(tmp_path: Path) -> None:
    """Before: with a `load` section an allowed POST with repeat 1 went out thousands of times."""
    async with wire_server() as baseline, wire_server("127.0.0.2") as candidate:
        path = tmp_path / "s.yaml"
        path.write_text(
            scenario_text(
                baseline,
                candidate,
                """\
                load: {model: closed, concurrency: 4, max_pairs: 200}
                requests:
                  - {name: home, url: 'http://shop.example.com/'}
                  - {name: order, method: POST, allow_unsafe: true, url: 'http://shop.example.com/order', body: {json: {dry_run: true}}}
                """,
            )
        )
        report = await run_scenario(load_scenario(path, environ={}))
    for server in (baseline, candidate):
        methods = [r.method for r in server.requests]
        assert methods.count(b"POST") == 1, methods.count(b"POST")
    assert methods.count(b"GET") >= 199 - 1  # the rest of the run cycles the safe request
    assert report["totals"]["unsafe_pairs_sent"] == 1


async def test_repeat_under_load_lets_an_allowed_post_be_cycled(tmp_path: Path) -> None:
    async with wire_server() as baseline, wire_server("127.0.0.2") as candidate:
        path = tmp_path / "s.yaml"
        path.write_text(
            scenario_text(
                baseline,
                candidate,
                """\
                load: {model: closed, concurrency: 2, max_pairs: 10}
                requests:
                  - {name: order, method: POST, allow_unsafe: true, repeat_under_load: true, url: 'http://shop.example.com/order'}
                """,
            )
        )
        report = await run_scenario(load_scenario(path, environ={}))
    assert [r.method for r in baseline.requests] == [b"POST"] * 10
    assert report["totals"]["unsafe_pairs_sent"] == 10


def test_repeat_under_load_needs_allow_unsafe() -> None:
    lines = problems(
        TARGETS % ""
        + "requests:\n  - {name: a, method: POST, repeat_under_load: true, url: 'http://x.example.com/'}\n"
    )
    assert any("repeat_under_load needs allow_unsafe" in line for line in lines), lines


@pytest.mark.parametrize(
    ("request_yaml", "field"),
    [
        ("{name: a, url: 'http://x.example.com/', body: {text: hi}}", "requests[0].body"),
        (
            "{name: a, url: 'http://x.example.com/', headers: {X-HTTP-Method-Override: DELETE}}",
            "requests[0].headers",
        ),
        (
            "{name: a, url: 'http://x.example.com/', headers: {X-Method-Override: PUT}}",
            "requests[0].headers",
        ),
    ],
    ids=["get-with-body", "x-http-method-override", "x-method-override"],
)
def test_a_get_that_can_act_as_another_method_is_unsafe(request_yaml: str, field: str) -> None:
    lines = problems(TARGETS % "" + f"requests:\n  - {request_yaml}\n")
    assert len(lines) == 1 and f": {field}: " in lines[0] and "allow_unsafe" in lines[0], lines
    allowed = request_yaml[:-1] + ", allow_unsafe: true}"
    assert problems(TARGETS % "" + f"requests:\n  - {allowed}\n") == []


async def _library_scenario(
    tmp_path: Path, baseline: WireServer, candidate: WireServer, spec: RequestSpec
) -> Scenario:
    path = tmp_path / "s.yaml"
    path.write_text(
        scenario_text(
            baseline, candidate, "requests:\n  - {name: a, url: 'http://x.example.com/'}\n"
        )
    )
    return dataclasses.replace(load_scenario(path, environ={}), requests=(spec,))


@pytest.mark.parametrize(
    "spec",
    [
        RequestSpec("delete", "DELETE", "http://x.example.com/orders/7", (), None),
        RequestSpec("get with body", "GET", "http://x.example.com/", (), b"{}"),
        RequestSpec(
            "override",
            "GET",
            "http://x.example.com/",
            (("X-HTTP-Method-Override", "DELETE"),),
            None,
        ),
        RequestSpec("injection", "GET", "http://x.example.com/", (("X-Note", INJECTION),), None),
        RequestSpec("url", "GET", "http://x.example.com/a\r\nb", (), None),
        RequestSpec("non-ascii", "GET", "http://x.example.com/", (("X-Note", "Ω"),), None),
        RequestSpec(
            "websocket message",
            "GET",
            "http://x.example.com/ws",
            (),
            None,
            websocket=WebSocketProbe(message="post this twice"),
        ),
        RequestSpec(
            "websocket subprotocol injection",
            "GET",
            "http://x.example.com/ws",
            (),
            None,
            websocket=WebSocketProbe(subprotocols=("chat\r\nX-Evil: 1",)),
        ),
        # A call flagged as the health check whose method is not the health check: the flag
        # alone made it safe, so it went out without allow_unsafe (and calibration sent it
        # to the baseline twice).
        RequestSpec(
            "grpc delete flagged as health",
            "POST",
            "http://x.example.com/orders.v1.Orders/Delete",
            (("content-type", "application/grpc"), ("te", "trailers")),
            frame(b"\x0a\x017"),
            grpc=GrpcCall("/orders.v1.Orders/Delete", b"\x0a\x017", health=True),
        ),
    ],
    ids=lambda spec: spec.name,
)
async def test_the_library_refuses_what_the_loader_would_before_sending_anything(
    tmp_path: Path, spec: RequestSpec
) -> None:
    """Before: `run_scenario` with a DELETE spec sent it; the check lived in the loader only."""
    async with wire_server() as baseline, wire_server("127.0.0.2") as candidate:
        scenario = await _library_scenario(tmp_path, baseline, candidate, spec)
        with pytest.raises(RequestRefused) as refused:
            await run_scenario(scenario)
        assert refused.value.reasons[0].startswith(f"{spec.name}: ")
        assert baseline.connections == candidate.connections == 0


async def test_an_allowed_delete_from_the_library_is_sent_once(tmp_path: Path) -> None:
    spec = RequestSpec(
        "delete", "DELETE", "http://x.example.com/orders/7", (), None, allow_unsafe=True
    )
    async with wire_server() as baseline, wire_server("127.0.0.2") as candidate:
        scenario = await _library_scenario(tmp_path, baseline, candidate, spec)
        await run_scenario(scenario)
    assert [r.method for r in baseline.requests] == [b"DELETE"]
    assert [r.method for r in candidate.requests] == [b"DELETE"]


@pytest.mark.parametrize("transport", TRANSPORT_NAMES)
@pytest.mark.parametrize(
    "spec",
    [
        RequestSpec("injection", "GET", "http://x.example.com/", (("X-Note", INJECTION),), None),
        RequestSpec("url", "GET", "http://x.example.com/a\nb", (), None),
        RequestSpec("non-latin-1", "GET", "http://x.example.com/", (("X-Note", "Ω"),), None),
        RequestSpec("delete", "DELETE", "http://x.example.com/", (), None),
    ],
    ids=lambda spec: spec.name,
)
async def test_each_transport_refuses_to_write_an_unsendable_request(
    tmp_path: Path, transport: TransportName, spec: RequestSpec
) -> None:
    """The last line of defence: before, the lean transport wrote the CR/LF as is and the
    aiohttp transport raised out of the run."""
    async with wire_server() as baseline, wire_server("127.0.0.2") as candidate:
        scenario = await _library_scenario(tmp_path, baseline, candidate, spec)
        sender = open_transport(scenario.endpoint("baseline"), 1, transport)
        try:
            observation = await sender.send(spec)
        finally:
            await sender.close()
    assert observation.failure is not None and observation.failure.error_class == "not_sent"
    assert baseline.connections == 0


def test_unsafe_reason_covers_overrides_even_when_repeats_are_allowed() -> None:
    from shadowdiff.wire import unsafe_reason

    assert unsafe_reason("GET", (), None) is None
    assert unsafe_reason("GET", (("x-http-method", "PUT"),), None) is not None
    assert RequestSpec(
        "p", "POST", "http://x/", (), None, allow_unsafe=True, repeat_under_load=True
    ).unsafe_reason


async def test_noise_calibration_skips_unsafe_requests(tmp_path: Path) -> None:
    async with wire_server() as baseline, wire_server("127.0.0.2") as candidate:
        path = tmp_path / "s.yaml"
        path.write_text(
            scenario_text(
                baseline,
                candidate,
                """\
                compare: {noise: {share: 1.0}}
                requests:
                  - {name: order, method: POST, allow_unsafe: true, repeat: 3, url: 'http://x.example.com/o'}
                  - {name: home, repeat: 3, url: 'http://x.example.com/'}
                """,
            )
        )
        await run_scenario(load_scenario(path, environ={}))
    methods = [r.method for r in baseline.requests]
    assert methods.count(b"POST") == 3 and methods.count(b"GET") == 6


# --- Found by trying the safety work as an attacker would -----------------------------------


async def test_a_freed_spec_never_lends_its_bytes_to_a_new_one(tmp_path: Path) -> None:
    """The lean transport cached serialised requests by id(); a freed spec's id is reused by
    the next one, which then went out as the old request (a DELETE instead of a GET)."""
    async with wire_server() as baseline, wire_server("127.0.0.2") as candidate:
        delete = RequestSpec(
            "d", "DELETE", "http://x.example.com/orders/7", (), None, allow_unsafe=True
        )
        scenario = await _library_scenario(tmp_path, baseline, candidate, delete)
        sender = open_transport(scenario.endpoint("baseline"), 1, "lean")
        try:
            await sender.send(delete)
            del delete
            for index in range(3):
                await sender.send(
                    RequestSpec("g", "GET", f"http://x.example.com/items/{index}", (), None)
                )
        finally:
            await sender.close()
    assert [r.method for r in baseline.requests] == [b"DELETE", b"GET", b"GET", b"GET"]


def test_a_method_override_cannot_be_a_target_header() -> None:
    lines = problems(
        TARGETS % ", headers: {X-HTTP-Method-Override: DELETE}"
        + "requests:\n  - {name: a, url: 'http://x.example.com/', allow_unsafe: true}\n"
    )
    assert len(lines) == 1 and "targets.candidate.headers.X-HTTP-Method-Override" in lines[0], lines


@pytest.mark.parametrize(
    "spec",
    [
        RequestSpec("host", "GET", "http://x.example.com/", (("Host", "other.example.com"),), None),
        RequestSpec("length", "GET", "http://x.example.com/", (("Content-Length", "5"),), None),
        RequestSpec("ftp", "GET", "ftp://x.example.com/", (), None),
        RequestSpec("relative", "GET", "/orders", (), None),
        RequestSpec("userinfo", "GET", "http://alice:pw@x.example.com/", (), None),
        RequestSpec(
            "underscore override",
            "GET",
            "http://x.example.com/",
            (("X_HTTP_Method_Override", "DELETE"),),
            None,
        ),
    ],
    ids=lambda spec: spec.name,
)
async def test_the_library_refuses_what_no_transport_should_write(
    tmp_path: Path, spec: RequestSpec
) -> None:
    async with wire_server() as baseline, wire_server("127.0.0.2") as candidate:
        scenario = await _library_scenario(tmp_path, baseline, candidate, spec)
        with pytest.raises(RequestRefused):
            await run_scenario(scenario)
    assert baseline.connections == candidate.connections == 0


def test_an_environment_value_that_is_not_utf8_is_named_never_shown(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "s.yaml"
    path.write_text(
        TARGETS % ""
        + "requests:\n  - {name: a, url: 'http://x.example.com/', headers: {Authorization: 'Bearer ${TOKEN}'}}\n"
    )
    environment = {**os.environb, b"TOKEN": b"P\xe4sswort-2024"}
    result = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "validate", str(path)],
        capture_output=True,
        env=environment,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"TOKEN is not valid UTF-8" in result.stderr
    assert b"sswort" not in result.stderr and b"Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("request_yaml", "secret"),
    [
        (
            "{name: a, url: 'http://x.example.com/', headers: {X-Api-Key: 8472019365512}}",
            "8472019365512",
        ),
        (
            "{name: a, url: 'http://x.example.com/', headers: ['Authorization: Bearer sk_live_1']}",
            "sk_live_1",
        ),
        ("{name: a, url: 'htps://admin:Sup3rS3cret@x.example.com/'}", "Sup3rS3cret"),
    ],
    ids=["number-header", "headers-as-list", "url-password"],
)
def test_validation_messages_never_quote_headers_or_url_credentials(
    request_yaml: str, secret: str
) -> None:
    lines = problems(TARGETS % "" + f"requests:\n  - {request_yaml}\n")
    assert lines and not any(secret in line for line in lines), lines


@pytest.mark.parametrize("transport", TRANSPORT_NAMES)
async def test_no_transport_sends_an_allowed_delete_twice(
    tmp_path: Path, transport: TransportName
) -> None:
    """aiohttp sent an idempotent request again (DELETE included) when the server closed
    without answering: the backend saw two DELETEs where the report counted one."""
    import asyncio

    seen: list[bytes] = []

    async def close_after_reading(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b" ", 1)[0])
        writer.close()

    server = await asyncio.start_server(close_after_reading, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with wire_server("127.0.0.2") as candidate:
        path = tmp_path / "s.yaml"
        path.write_text(
            "targets:\n"
            f"  baseline: {{address: 127.0.0.1, ports: {{http: {port}, https: 1}}}}\n"
            f"  candidate: {{address: 127.0.0.2, ports: {{http: {candidate.port}, https: 1}}}}\n"
            f"defaults: {{transport: {transport}}}\n"
            "requests:\n  - {name: d, method: DELETE, allow_unsafe: true, url: 'http://x.example.com/orders/7'}\n"
        )
        report = await run_scenario(load_scenario(path, environ={}))
    server.close()
    await server.wait_closed()
    assert seen == [b"DELETE"]
    assert report["totals"]["unsafe_pairs_sent"] == 1
