"""Trailer fields after a body are not headers (RFC 9110 section 6.5): an answer with a
trailer is alike to one without, on both transports and over HTTP/2, and a security header
sent only as a trailer (where no browser applies it) is still a header lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shadowdiff.compare import compare
from shadowdiff.endpoint import TransportName
from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario
from shadowdiff.transport import TRANSPORT_NAMES

from .test_compare import REQUEST
from .test_http2 import send_hostile
from .test_interim import raw_server

PLAIN = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Frame-Options: DENY\r\n"
    b"Content-Length: 5\r\n\r\nhello"
)
# The same answer chunked, with chunk extensions and a trailer section.
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Frame-Options: DENY\r\n"
    b"Transfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n"
    b"3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: 1\r\n\r\n"
)
# X-Frame-Options moved from the head to the trailer section: lost for every browser.
MOVED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Frame-Options: DENY\r\n\r\n"
)


def by_path(answers: dict[bytes, bytes]) -> Callable[[bytes], bytes]:
    return lambda head: answers[head.split(b" ", 2)[1]]


@pytest.mark.parametrize("transport", TRANSPORT_NAMES)
async def test_a_trailer_is_no_header_on_either_transport(
    tmp_path: Path, transport: TransportName
) -> None:
    async with (
        raw_server("127.0.0.1", by_path({b"/trailer": PLAIN, b"/moved": PLAIN})) as baseline,
        raw_server("127.0.0.2", by_path({b"/trailer": CHUNKED, b"/moved": MOVED})) as candidate,
    ):
        path = tmp_path / "s.yaml"
        path.write_text(
            "targets:\n"
            f"  baseline: {{address: 127.0.0.1, ports: {{http: {baseline}, https: 1}}}}\n"
            f"  candidate: {{address: 127.0.0.2, ports: {{http: {candidate}, https: 1}}}}\n"
            f"defaults: {{transport: {transport}}}\n"
            "requests:\n"
            "  - {name: trailer, url: 'http://shop.example.com/trailer'}\n"
            "  - {name: moved, url: 'http://shop.example.com/moved'}\n"
        )
        report = await run_scenario(load_scenario(path, environ={}), seed=1)
    found = {
        entry["name"]: {(d["kind"], d["field"], d["severity"]) for d in entry["differences"]}
        for entry in report["requests"]
    }
    assert found == {
        "trailer": set(),
        "moved": {("header_missing", "x-frame-options", "error")},
    }


async def test_an_http2_trailer_is_kept_apart_and_not_compared() -> None:
    (plain,), _ = await send_hostile("ok")
    (trailed,), _ = await send_hostile("trailers")
    assert trailed.trailers == (("x-trailer", "1"),)
    assert "x-trailer" not in {name for name, _ in trailed.headers}
    assert compare(REQUEST, plain, trailed) == []
