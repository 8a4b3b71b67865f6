"""An entry point that sends 103 Early Hints (or 100 Continue) before its answer is alike to one
that does not: interim answers are skipped, on both transports, run after run. Debian's nginx
1.22 cannot send 103, so a raw loopback server plays the candidate here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from shadowdiff.endpoint import TransportName
from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario
from shadowdiff.transport import TRANSPORT_NAMES

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload; as=style\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@asynccontextmanager
async def raw_server(address: str, answer: Callable[[bytes], bytes]) -> AsyncIterator[int]:
    """Answers each request on a kept-alive connection with `answer(its head)`, as written."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                writer.write(answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, address, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("transport", TRANSPORT_NAMES)
@pytest.mark.parametrize(
    "interim", [EARLY_HINTS, CONTINUE + EARLY_HINTS], ids=["103", "100-and-103"]
)
async def test_interim_answers_are_never_a_difference(
    tmp_path: Path, transport: TransportName, interim: bytes
) -> None:
    async with (
        raw_server("127.0.0.1", lambda head: ANSWER) as baseline,
        raw_server("127.0.0.2", lambda head: interim + ANSWER) as candidate,
    ):
        path = tmp_path / "s.yaml"
        path.write_text(
            "targets:\n"
            f"  baseline: {{address: 127.0.0.1, ports: {{http: {baseline}, https: 1}}}}\n"
            f"  candidate: {{address: 127.0.0.2, ports: {{http: {candidate}, https: 1}}}}\n"
            f"defaults: {{transport: {transport}, concurrency: 4}}\n"
            "requests:\n  - {name: page, url: 'http://shop.example.com/', repeat: 20}\n"
        )
        for run in range(3):
            report = await run_scenario(load_scenario(path, environ={}), seed=run)
            assert report["totals"]["pairs_with_differences"] == 0, report["signatures"]
            assert [s for s in report["signatures"] if s["status"] == "reported"] == []
            assert report["requests"][0]["status"]["candidate"] == {"200": 20}
