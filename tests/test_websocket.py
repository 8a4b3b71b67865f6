"""The WebSocket probe: an upgrade and one echoed message through each side, against real
aiohttp WebSocket servers on loopback (a candidate that answers differently in planted ways)
and raw servers that misbehave on the wire (a wrong accept key, resets, stalls, huge or bad
frames, a compression bomb): differences the report shows, and classified failures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import os
import signal
import struct
import subprocess
import textwrap
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from shadowdiff.compare.websocket import compare_websocket
from shadowdiff.endpoint import ClientTls, Endpoint, HeadLimits
from shadowdiff.errors import ScenarioError
from shadowdiff.observation import Observation
from shadowdiff.render.html import plots, render_html
from shadowdiff.render.markdown import markdown_text, render_markdown
from shadowdiff.render.terminal import render_report
from shadowdiff.report.schema import Report
from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario
from shadowdiff.spec import RequestSpec, WebSocketProbe
from shadowdiff.transport import open_transport
from shadowdiff.transport.lean_connection import Failure
from shadowdiff.transport.websocket import _Echo, _feed, _framing, _Socket
from shadowdiff.transport.websocket_handshake import (
    HandshakeRefused,
    Upgrade,
    accept_for,
    check_upgrade,
    new_key,
)

from .fault_servers import fault_server, read_head, reset
from .lab import free_port, nginx_binary, wait_listening

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_HOST = "chat.example.com"


def _websocket_app(candidate: bool) -> web.Application:
    """An echo service. The baseline echoes every path alike; the candidate breaks in the way
    its path names (as a Gateway without upgrade support, or another backend, would)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path if candidate else "/ws"
        if path == "/ws-404":
            return web.Response(status=404, text="no route\n")
        if path == "/ws-200":
            return web.Response(text="hello\n")  # the upgrade ignored, as without support
        protocols = () if path == "/ws-nosub" else ("chat.v2", "chat.v1")
        socket = web.WebSocketResponse(protocols=protocols, compress=path != "/ws-nodeflate")
        await socket.prepare(request)
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                text = str(message.data)
                if path == "/ws-shout":
                    await socket.send_str(text.upper())
                elif path == "/ws-binary":
                    await socket.send_bytes(text.encode())
                else:
                    await socket.send_str(text)
        return socket

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    return app


@pytest.fixture(scope="module")
def echo_pair() -> Iterator[tuple[int, int]]:
    """The baseline's and the candidate's ports, shared by the module: both servers run on an
    event loop of their own in a thread (each test has its own loop, which ends with it)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="echo-pair", daemon=True)
    thread.start()
    runners: list[web.AppRunner] = []

    async def start() -> tuple[int, int]:
        for side in (False, True):
            runner = web.AppRunner(_websocket_app(side), access_log=None)
            runners.append(runner)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runners[0].addresses[0][1], runners[1].addresses[0][1]

    async def stop() -> None:
        for runner in runners:
            await runner.cleanup()

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _scenario(tmp_path: Path, ports: tuple[int, int], requests: str, extra: str = "") -> Path:
    path = tmp_path / "ws.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            targets:
              baseline: {{address: 127.0.0.1, ports: {{http: {ports[0]}}}}}
              candidate: {{address: 127.0.0.1, ports: {{http: {ports[1]}}}}}
            tls_probe: {{probe: false}}
            """
        )
        + extra
        + "requests:\n"
        + textwrap.indent(textwrap.dedent(requests), "  ")
    )
    return path


def _probe(path: str, repeat: int = 1) -> str:
    return (
        f"- name: socket {path}\n"
        f"  url: http://{_HOST}{path}\n"
        f"  repeat: {repeat}\n"
        "  allow_unsafe: true\n"
        "  websocket: {subprotocols: [chat.v2, chat.v1], extensions: [permessage-deflate], "
        "message: hello}\n"
    )


async def test_the_same_echo_on_both_sides_is_no_difference_across_repeats(
    echo_pair: tuple[int, int], tmp_path: Path
) -> None:
    path = _scenario(tmp_path, (echo_pair[0], echo_pair[0]), _probe("/ws", repeat=6))
    report = await run_scenario(load_scenario(path, environ={}))

    assert report["signatures"] == []
    assert report["outcome"]["exit_code"] == 0
    assert report["totals"]["pairs"] == 6
    assert report["totals"]["unsafe_pairs_sent"] == 6


async def test_an_upgrade_without_a_message_is_calibrated_and_alike(
    echo_pair: tuple[int, int], tmp_path: Path
) -> None:
    """No message: the upgrade alone, a GET, safe to send again (noise calibration does)."""
    requests = (
        f"- name: upgrade only\n  url: http://{_HOST}/ws\n  repeat: 4\n"
        "  websocket: {subprotocols: [chat.v2]}\n"
    )
    report = await run_scenario(
        load_scenario(_scenario(tmp_path, (echo_pair[0], echo_pair[0]), requests), environ={})
    )
    assert report["signatures"] == []
    assert report["totals"]["unsafe_pairs_sent"] == 0


def _shown(report: Report) -> dict[str, list[str]]:
    """What the terminal's Differences table shows, by request: the lines of each row's
    difference cell (kind and field, `baseline → candidate`, the trace, a body's diff)."""
    console = Console(width=200, record=True)
    console.print(render_report(report))
    rows: dict[str, list[str]] = {}
    cell: list[str] = []
    for line in console.export_text().partition("\nDifferences")[2].splitlines():
        if not line.startswith("│"):
            continue
        severity, where, difference, _ = (part.strip() for part in line[1:-1].split("│"))
        if severity:
            cell = rows.setdefault(where, [])
        cell.append(difference)
    return rows


def _html_rows(report: Report, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The HTML report's Differences rows, by request. Without its plots: drawn with
    matplotlib they cost over a second here (tests/test_html.py draws them), and the rows
    are filled by the same template either way."""
    for name in ("latency_cdf_svg", "difference_svg", "timeline_svg"):
        monkeypatch.setattr(plots, name, lambda *_: None)
    rows = render_html(report).split('<tr class="signature')[1:]
    return {html.unescape(row.split("<td>")[3].split("</td>")[0]): row for row in rows}


# What the report shows for each planted breakage: the request, `kind: field`, and the two
# values as the terminal and the HTML show them (None: absent on that side).
_PLANTED = [
    ("socket /ws-nosub", "websocket: subprotocol", "chat.v2", None),
    ("socket /ws-nodeflate", "websocket: extensions", "permessage-deflate", None),
    ("socket /ws-404", "status", "101", "404"),
    ("socket /ws-200", "status", "101", "200"),
]


async def test_planted_candidate_breakages_show_as_differences(
    echo_pair: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = "".join(
        _probe(p) for p in ("/ws-nosub", "/ws-nodeflate", "/ws-shout", "/ws-404", "/ws-200")
    )
    report = await run_scenario(load_scenario(_scenario(tmp_path, echo_pair, requests), {}))
    by_kind = {(s["kind"], s["field"]): s for s in report["signatures"]}
    found = {
        (s["kind"], s["field"], s["examples"][0]["baseline"], s["examples"][0]["candidate"])
        for s in report["signatures"]
    }

    assert ("websocket", "subprotocol", "chat.v2", None) in found
    assert by_kind[("websocket", "subprotocol")]["severity"] == "error"
    subprotocol_hint = by_kind[("websocket", "subprotocol")]["hint"]
    assert subprotocol_hint is not None and "Sec-WebSocket-Protocol" in subprotocol_hint["cause"]
    extensions = by_kind[("websocket", "extensions")]
    assert extensions["severity"] == "warning"
    assert str(extensions["examples"][0]["baseline"]).startswith("permessage-deflate")
    assert extensions["examples"][0]["candidate"] is None
    statuses = {
        (s["examples"][0]["baseline"], s["examples"][0]["candidate"])
        for s in report["signatures"]
        if s["kind"] == "status"
    }
    assert statuses == {("101", "404"), ("101", "200")}
    status_hint = by_kind[("status", "status")]["hint"]
    assert status_hint is not None and "does not upgrade the WebSocket" in status_hint["cause"]
    assert ("body", "body") in by_kind, "HELLO echoed instead of hello"
    # Sec-WebSocket-Accept answers each side's own key: never a difference.
    assert not any("sec-websocket" in s["field"] for s in report["signatures"])
    assert report["outcome"]["exit_code"] == 1
    terminal, page, markdown = _assert_shown(report, monkeypatch, _PLANTED)
    # The echo shouted back: the terminal and the HTML show the two messages as a diff; the
    # Markdown (a CI step summary) only their sizes and digests, as for any body.
    assert terminal["socket /ws-shout"][0] == "body"
    assert {"-hello", "+HELLO"} <= set(terminal["socket /ws-shout"])
    assert "\n-hello\n+HELLO\n" in page["socket /ws-shout"]
    (row,) = [line for line in markdown if "| socket /ws-shout |" in line]
    example = by_kind[("body", "body")]["examples"][0]
    assert f"| body | socket /ws-shout | 1/1 | {example['baseline']} → {example['candidate']}" in (
        row
    )


def _assert_shown(
    report: Report,
    monkeypatch: pytest.MonkeyPatch,
    planted: Sequence[tuple[str, str, str | None, str | None]],
) -> tuple[dict[str, list[str]], dict[str, str], list[str]]:
    """Each planted breakage reads in the terminal, HTML and Markdown reports as its kind and
    field with both values, in the row of its own request. Returns the three as read."""
    terminal, page = _shown(report), _html_rows(report, monkeypatch)
    markdown = render_markdown(report).splitlines()
    for request, what, before, after in planted:
        shown_before, shown_after = before or "(absent)", after or "(absent)"
        assert terminal[request][:2] == [what, f"{shown_before} → {shown_after}"], terminal
        assert f"<td>{what}</td>" in page[request]
        assert (
            f'<span class="value side-baseline">{shown_before}</span> → '
            f'<span class="value side-candidate">{shown_after}</span>'
        ) in page[request]
        (row,) = [line for line in markdown if f"| {request} |" in line]
        expected = f"| {markdown_text(what)} | {request} | 1/1 | {shown_before} → {shown_after}"
        assert f"{expected} (trace " in row, row
    return terminal, page, markdown


async def test_binary_echo_of_a_text_message_is_a_message_type_difference(
    echo_pair: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = await run_scenario(
        load_scenario(_scenario(tmp_path, echo_pair, _probe("/ws-binary")), environ={})
    )
    found = {(s["kind"], s["field"], s["severity"]) for s in report["signatures"]}
    assert found == {("websocket", "message_type", "error")}
    planted = [("socket /ws-binary", "websocket: message_type", "text", "binary")]
    _assert_shown(report, monkeypatch, planted)


async def test_wss_is_http11_by_alpn_even_where_the_targets_say_http_auto(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    async def upgrade(request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(protocols=("chat.v2",))
        await socket.prepare(request)
        async for message in socket:
            await socket.send_str(str(message.data))
        return socket

    baseline = await start_entry_point(handler=upgrade)
    candidate = await start_entry_point("127.0.0.2", handler=upgrade)
    body = (
        "tls_probe: {probe: false}\n"
        "requests:\n"
        "  - name: wss\n"
        "    url: https://app.example.com/ws\n"
        "    repeat: 2\n"
        "    allow_unsafe: true\n"
        "    websocket: {subprotocols: [chat.v2], message: hello}\n"
    )
    path = write_scenario(baseline, candidate, body, ca_file)
    path.write_text(path.read_text().replace("    tls: {ca:", "    http: auto\n    tls: {ca:"))
    assert path.read_text().count("http: auto") == 2
    report = await run_scenario(load_scenario(path, environ={}))
    assert report["signatures"] == []
    assert report["requests"][0]["status"] == {"baseline": {"101": 2}, "candidate": {"101": 2}}
    assert [r.tls for r in baseline.requests] == [True, True]


# --- The transport on its own, against raw servers ---------------------------------------


def _endpoint(port: int, total_s: float = 2.0, capture: int = 65_536) -> Endpoint:
    return Endpoint(
        side="candidate",
        address="127.0.0.1",
        port_map={80: port},
        tls=ClientTls(),
        headers=(),
        connect_timeout_s=1.0,
        total_timeout_s=total_s,
        body_capture_bytes=capture,
        limits=HeadLimits(65_536, 262_144, 500),
    )


def _request(message: str | None = "hello", **probe: Any) -> RequestSpec:
    return RequestSpec(
        name="ws",
        method="GET",
        url=f"http://{_HOST}/ws",
        headers=(("Authorization", "Bearer s3cret-token"),),
        body=None,
        allow_unsafe=message is not None,
        websocket=WebSocketProbe(message=message, **probe),
    )


async def _send(port: int, request: RequestSpec | None = None, **endpoint: Any) -> Observation:
    transport = open_transport(_endpoint(port, **endpoint), pool_size=4)
    try:
        return await transport.send(request or _request(extensions=("permessage-deflate",)))
    finally:
        await transport.close()


def _accept(head: bytes) -> str:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    return base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()


def _frame(payload: bytes, opcode: int = 0x1, fin: bool = True, rsv1: bool = False) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if len(payload) < 126:
        return bytes([first, len(payload)]) + payload
    if len(payload) < 65_536:
        return bytes([first, 126]) + struct.pack("!H", len(payload)) + payload
    return bytes([first, 127]) + struct.pack("!Q", len(payload)) + payload


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[None]]


def _upgrading(script: Script, extra_headers: str = "") -> Any:
    """A raw server that answers the upgrade with a correct 101, then runs `script`."""

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        if not head:
            return
        accept = _accept(head)
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{extra_headers}\r\n"
            ).encode()
        )
        await script(reader, writer, accept)
        await writer.drain()

    return behave


async def _echo_in_pieces(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str
) -> None:
    """A ping first, then the echo in three fragments with a ping between them."""
    await reader.read(64)  # the client's masked text frame
    writer.write(_frame(b"are you there", opcode=0x9))
    writer.write(_frame(b"he", opcode=0x1, fin=False))
    writer.write(_frame(b"", opcode=0x9))
    writer.write(_frame(b"ll", opcode=0x0, fin=False))
    writer.write(_frame(b"o", opcode=0x0, fin=True))
    await writer.drain()
    await reader.read(64)  # the pong(s) and the close


async def test_fragments_and_pings_are_read_as_one_echo() -> None:
    async with fault_server(_upgrading(_echo_in_pieces)) as port:
        answer = await _send(port)
    assert answer.failure is None
    assert (answer.status, answer.body, answer.websocket_message) == (101, b"hello", "text")


async def test_an_echo_past_body_capture_is_kept_in_part_and_hashed_whole(
    echo_pair: tuple[int, int],
) -> None:
    answer = await _send(
        echo_pair[0], _request("hello world", subprotocols=("chat.v1",)), capture=5
    )
    assert answer.failure is None
    assert (answer.body, answer.body_bytes, answer.body_truncated) == (b"hello", 11, True)
    assert answer.body_sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert answer.header_values("Sec-WebSocket-Protocol") == ["chat.v1"]
    assert answer.timings.first_byte_ns is not None
    assert answer.timings.first_byte_ns <= answer.timings.total_ns


async def _closes_when_idle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str
) -> None:
    """A greeting, then a proxy's idle timeout of 0.3 s: a close frame (1001) when nothing
    came, else the echo (unmasked by hand: the client masks what it sends)."""
    writer.write(_frame(b"welcome"))
    try:
        head = await asyncio.wait_for(reader.readexactly(2), 0.3)
    except TimeoutError:
        writer.write(_frame(struct.pack("!H", 1001), opcode=0x8))
        return
    mask = await reader.readexactly(4)
    payload = await reader.readexactly(head[1] & 0x7F)
    writer.write(_frame(bytes(b ^ mask[i % 4] for i, b in enumerate(payload))))
    await reader.read(64)


@pytest.mark.parametrize(("idle_s", "echoed"), [(0.05, True), (0.6, False)])
async def test_a_side_whose_idle_timeout_is_shorter_than_idle_s_fails_with_reset(
    idle_s: float, echoed: bool
) -> None:
    async with fault_server(_upgrading(_closes_when_idle)) as port:
        answer = await _send(port, _request(idle_s=idle_s))
    if echoed:
        assert answer.failure is None, answer.failure
        assert answer.body == b"hello", "the greeting is not the echo"
    else:
        assert answer.failure is not None and answer.failure.error_class == "reset"
        assert "code 1001" in answer.failure.message and "s idle" in answer.failure.message


async def _stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
    await asyncio.sleep(10)


async def _huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
    await reader.read(64)
    header = bytes([0x82, 127]) + struct.pack("!Q", 1 << 40)  # a frame of a terabyte
    writer.write(header)
    chunk = b"x" * 65_536
    try:
        for _sent in range(400):  # 26 MB: over the cap
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass


def _bomb_frame() -> bytes:
    """One compressed text frame of 20 MiB of zeros (about 20 KB on the wire), past the cap."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = b"\0" * (1024 * 1024)
    payload = b"".join(compressor.compress(zeros) for _ in range(20))
    payload += compressor.flush(zlib.Z_SYNC_FLUSH)
    return _frame(payload[:-4], opcode=0x1, rsv1=True)


async def _bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
    await reader.read(64)
    writer.write(_bomb_frame())
    await writer.drain()
    await asyncio.sleep(2)


async def _bad_opcode(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
    await reader.read(64)
    writer.write(bytes([0x83, 0]))  # opcode 3 is reserved
    await writer.drain()
    await asyncio.sleep(2)


async def _closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> None:
    await reader.read(64)
    writer.write(_frame(struct.pack("!H", 1011) + b"boom", opcode=0x8))
    await writer.drain()
    await reader.read(64)


async def _reset_after_upgrade(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str
) -> None:
    await reader.read(64)
    await writer.drain()
    reset(writer)


async def _reset_mid_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs")
    await writer.drain()
    reset(writer)


async def _wrong_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    await writer.drain()
    await asyncio.sleep(2)


@pytest.mark.parametrize(
    ("behaviour", "error_class", "words"),
    [
        (_wrong_accept, "malformed_response", "does not answer the key"),
        (_reset_mid_handshake, "reset", "closed before the response was complete"),
        (_upgrading(_stall), "timeout", "within 0.5 s"),
        (_upgrading(_huge), "malformed_response", "over 16777216 bytes"),
        (
            _upgrading(_bomb, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            "malformed_response",
            "over 16777216 bytes",
        ),
        (_upgrading(_bad_opcode), "malformed_response", "invalid WebSocket frames"),
        (_upgrading(_closes), "reset", "code 1011"),
        (_upgrading(_reset_after_upgrade), "reset", "before the echo was complete"),
    ],
    ids=[
        "wrong-accept",
        "reset-mid-handshake",
        "stall",
        "huge-frame",
        "bomb",
        "bad-opcode",
        "close",
        "reset-after-upgrade",
    ],
)
async def test_hostile_servers_are_classified_failures(
    behaviour: Any, error_class: str, words: str
) -> None:
    async with fault_server(behaviour) as port:
        answer = await _send(port, total_s=0.5 if error_class == "timeout" else 5.0)
    assert answer.failure is not None, answer
    assert answer.failure.error_class == error_class
    assert words in answer.failure.message
    assert "s3cret" not in answer.failure.message


async def test_a_message_without_allow_unsafe_is_not_sent() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_head(reader))

    request = RequestSpec(
        name="ws",
        method="GET",
        url=f"http://{_HOST}/ws",
        headers=(),
        body=None,
        websocket=WebSocketProbe(message="hello"),
    )
    async with fault_server(record) as port:
        answer = await _send(port, request)
    assert answer.failure is not None and answer.failure.error_class == "not_sent"
    assert "allow_unsafe" in answer.failure.message
    assert seen == []


async def test_the_aiohttp_transport_does_not_send_a_probe_built_through_the_library() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_head(reader))

    async with fault_server(record) as port:
        transport = open_transport(_endpoint(port), pool_size=1, name="aiohttp")
        try:
            answer = await transport.send(_request())
        finally:
            await transport.close()
    assert answer.failure is not None and answer.failure.error_class == "not_sent"
    assert "lean transport" in answer.failure.message
    assert seen == []


@pytest.mark.parametrize(
    ("fragment", "field", "words"),
    [
        ("websocket: {message: hi}", "websocket.message", "set allow_unsafe: true"),
        ("websocket: {}\n    http: 2", "http", "HTTP/1.1"),
        ("websocket: {}\n    method: POST\n    allow_unsafe: true", "method", "is a GET"),
        ("websocket: {subprotocols: ['chat v2']}", "websocket.subprotocols[0]", "token"),
        ("websocket: {subprotocols: [a, b, a]}", "websocket.subprotocols", "offered twice: a"),
        ('websocket: {extensions: ["x\\r\\nEvil: 1"]}', "websocket.extensions[0]", "offer"),
        ("websocket: {}\n    headers: {Sec-WebSocket-Key: abc}", "headers", "set by the"),
        ("websocket: {idle_s: 30}", "websocket.idle_s", "shorter than defaults.timeouts"),
    ],
    ids=[
        "message-unsafe",
        "http2",
        "post",
        "subprotocol",
        "subprotocol-twice",
        "extension-crlf",
        "own-header",
        "idle-too-long",
    ],
)
def test_bad_websocket_settings_are_located_errors(
    tmp_path: Path, fragment: str, field: str, words: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 10.0.0.1}\n  candidate: {address: 10.0.0.2}\n"
        f"requests:\n  - name: ws\n    url: http://{_HOST}/ws\n    {fragment}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, environ={})
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{path}:") and f"requests[0].{field}" in str(problem)
    assert words in str(problem)


def test_the_aiohttp_transport_refuses_the_probe_as_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 10.0.0.1}\n  candidate: {address: 10.0.0.2}\n"
        "defaults: {transport: aiohttp}\n"
        f"requests:\n  - {{name: ws, url: 'http://{_HOST}/ws', websocket: {{}}}}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, environ={})
    (problem,) = caught.value.problems
    assert "requests[0].websocket" in str(problem) and "lean transport" in str(problem)


_UPGRADED = [("Upgrade", "websocket"), ("Connection", "Upgrade")]


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ([("Connection", "Upgrade")], "without Upgrade: websocket"),
        ([("Upgrade", "websocket")], "without Connection: Upgrade"),
        (_UPGRADED, "without Sec-WebSocket-Accept"),
        ([*_UPGRADED, ("Sec-WebSocket-Protocol", "chat.v3")], "not offered"),
        ([*_UPGRADED, ("Sec-WebSocket-Protocol", "chat.v1, chat.v2")], "at most one"),
        ([*_UPGRADED, ("Sec-WebSocket-Extensions", "x-webkit-deflate-frame")], "not offered"),
    ],
    ids=["no-upgrade", "no-connection", "no-accept", "subprotocol", "two", "extension"],
)
def test_a_101_a_client_must_refuse_is_refused(headers: list[tuple[str, str]], words: str) -> None:
    key = new_key()
    if "accept" not in words.lower():
        headers = [*headers, ("Sec-WebSocket-Accept", accept_for(key))]
    probe = WebSocketProbe(("chat.v1", "chat.v2"), ("permessage-deflate",))
    with pytest.raises(HandshakeRefused, match=words):
        check_upgrade(probe, key, headers)


@pytest.mark.parametrize(
    "parameters",
    ["server_max_window_bits=x", "client_max_window_bits=100", "server_max_window_bits"],
)
def test_permessage_deflate_parameters_not_understood_are_malformed(parameters: str) -> None:
    with pytest.raises(Failure) as caught:
        _framing(Upgrade(None, (f"permessage-deflate; {parameters}",)))
    assert caught.value.failure.error_class == "malformed_response"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_only_the_accept_of_the_key_sent_passes(forged: bytes) -> None:
    key = new_key()
    right = accept_for(key)
    assert right == base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    check_upgrade(WebSocketProbe(), key, [*headers, ("Sec-WebSocket-Accept", right)])
    wrong = base64.b64encode(forged).decode()
    if wrong != right:
        with pytest.raises(HandshakeRefused):
            check_upgrade(WebSocketProbe(), key, [*headers, ("Sec-WebSocket-Accept", wrong)])


# --- Through a real nginx ----------------------------------------------------------------

_NGINX_CONFIG = """
worker_processes 1;
pid {dir}/nginx.pid;
{user}
events {{ worker_connections 64; }}
http {{
    access_log off;
    error_log {dir}/error.log warn;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{baseline};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
    }}
    server {{
        listen 127.0.0.1:{candidate};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
        }}
    }}
}}
"""


@pytest.mark.nginx
async def test_nginx_without_upgrade_headers_is_the_classic_breakage(tmp_path: Path) -> None:
    """The baseline proxies the upgrade as ingress-nginx does (Upgrade and Connection passed
    on); the candidate's location forgets them, so the backend sees a plain GET."""
    nginx = nginx_binary()
    assert nginx is not None, "nginx is not installed"
    runner = web.AppRunner(_websocket_app(candidate=False), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    ports = {"baseline": free_port("127.0.0.1"), "candidate": free_port("127.0.0.1")}
    (tmp_path / "tmp").mkdir()
    config = tmp_path / "nginx.conf"
    config.write_text(
        _NGINX_CONFIG.format(
            dir=tmp_path,
            user="user root;" if os.geteuid() == 0 else "",
            backend=runner.addresses[0][1],
            **ports,
        )
    )
    arguments = ["-p", str(tmp_path), "-c", str(config), "-e", str(tmp_path / "startup.log")]
    process = subprocess.Popen(
        [nginx, *arguments, "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        for port in ports.values():
            await asyncio.to_thread(wait_listening, "127.0.0.1", port, process, "nginx")
        alike = _scenario(tmp_path, (ports["baseline"], ports["baseline"]), _probe("/ws", 3))
        same = await run_scenario(load_scenario(alike, environ={}))
        broken = _scenario(tmp_path, (ports["baseline"], ports["candidate"]), _probe("/ws"))
        report = await run_scenario(load_scenario(broken, environ={}))
    finally:
        process.send_signal(signal.SIGQUIT)
        await asyncio.to_thread(process.wait, 5)
        await runner.cleanup()

    assert same["signatures"] == [], "nginx passing the upgrade on both sides: no difference"
    (signature,) = report["signatures"]
    example = signature["examples"][0]
    assert (signature["kind"], example["baseline"], example["candidate"]) == (
        "status",
        "101",
        "400",
    )
    assert signature["hint"] is not None and "Upgrade" in signature["hint"]["cause"]


_FRAMES = st.lists(
    st.tuples(
        st.integers(0, 15),  # opcode, the reserved ones included
        st.booleans(),  # fin
        st.booleans(),  # rsv1 (compressed, when permessage-deflate was agreed)
        st.binary(max_size=200),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(_FRAMES, st.binary(max_size=64), st.booleans(), st.integers(1, 64))
def test_any_frames_after_the_upgrade_end_as_an_echo_or_a_classified_failure(
    frames: list[tuple[int, bool, bool, bytes]], junk: bytes, deflate: bool, split: int
) -> None:
    """Whatever a server sends after its 101, the probe reads an echo, waits for more, or
    fails with a class; the echo stays within its cap and capture."""
    loop = asyncio.new_event_loop()
    try:
        socket = _Socket(loop, HeadLimits(65_536, 262_144, 500))
        extensions = ("permessage-deflate",) if deflate else ()
        framing = _framing(Upgrade(None, extensions))
        echo = _Echo(capture=100)
        data = b"".join(_frame(p, opcode=o, fin=f, rsv1=r) for o, f, r, p in frames) + junk
        try:
            for start in range(0, len(data), split):
                _feed(socket, framing, data[start : start + split], echo.add)
        except Failure as failure:
            assert failure.failure.error_class in ("malformed_response", "reset")
        assert len(echo.body) <= 100 and echo.size_bytes <= len(data) * 1100
    finally:
        loop.close()


def test_extension_parameters_in_another_order_or_spacing_are_alike() -> None:
    def upgraded(extensions: str) -> Observation:
        return Observation(
            side="baseline",
            status=101,
            headers=(("Sec-WebSocket-Extensions", extensions),),
        )

    baseline = upgraded("permessage-deflate; server_no_context_takeover; client_max_window_bits=15")
    same = upgraded("permessage-deflate;client_max_window_bits = 15;server_no_context_takeover")
    other = upgraded("permessage-deflate; client_max_window_bits=10")
    assert compare_websocket(baseline, same) == []
    (difference,) = compare_websocket(baseline, other)
    assert (difference.field, difference.severity) == ("extensions", "info")


async def _greets_as_the_message_comes(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str
) -> None:
    """A greeting written after the 101 that reaches the client only once its message has
    left (the race a greeting loses under load), then the echo."""
    await reader.read(64)  # the client's masked text frame
    writer.write(_frame(b"welcome to the chat"))
    await writer.drain()
    await asyncio.sleep(0.01)  # two writes, two reads
    writer.write(_frame(b"hello"))
    await writer.drain()
    await reader.read(64)


async def _answers_otherwise(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str
) -> None:
    await reader.read(64)
    writer.write(_frame(b"HELLO"))
    await writer.drain()
    await reader.read(64)


async def test_a_greeting_that_arrives_after_the_message_is_not_taken_for_the_echo() -> None:
    async with fault_server(_upgrading(_greets_as_the_message_comes)) as port:
        answer = await _send(port, _request())
    assert answer.failure is None
    assert (answer.body, answer.websocket_message) == (b"hello", "text")


async def test_a_reply_that_is_no_echo_stays_the_answer_timed_at_its_end() -> None:
    async with fault_server(_upgrading(_answers_otherwise)) as port:
        started = time.perf_counter()
        answer = await _send(port, _request())
        waited_s = time.perf_counter() - started
    assert answer.failure is None and answer.body == b"HELLO"
    # It waited briefly (at least 50 ms) for an echo that never came, and that wait is in no
    # latency: the answer is timed at the reply's end.
    assert answer.timings.total_ns / 1e9 <= waited_s - 0.045
