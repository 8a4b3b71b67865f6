"""The WebSocket probe against servers that flood or crowd the socket: a flood of tiny frames
must not starve the event loop (the probe's own timeout and the other side's probe keep
running), pings sent without reading the pongs must not grow the write buffer, and what the
server sends after the echo is not part of it."""

from __future__ import annotations

import asyncio
import gc
import socket as sockets
import time

from wsproto.connection import Connection as Framing
from wsproto.connection import ConnectionType

from shadowdiff.endpoint import HeadLimits
from shadowdiff.transport.websocket import _feed, _ignore, _Socket

from .fault_servers import fault_server
from .test_websocket import _frame, _send, _upgrading


async def _echo_then_more(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str
) -> None:
    """The echo and two more messages in one write, as a proxy may coalesce them."""
    await reader.read(64)
    writer.write(_frame(b"hello") + _frame(b"and more") + _frame(b"\x00\x01", opcode=0x2))
    await writer.drain()
    await reader.read(64)


async def test_messages_after_the_echo_are_not_part_of_it() -> None:
    async with fault_server(_upgrading(_echo_then_more)) as port:
        answer = await _send(port)
    assert answer.failure is None, answer.failure
    assert (answer.body, answer.body_bytes, answer.websocket_message) == (b"hello", 5, "text")


async def _floods_empty_fragments(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str
) -> None:
    """A message begun and never finished: empty continuation frames, 2 bytes each, without end
    (the cheapest bytes for the server, the dearest for the client's framing)."""
    writer.write(_frame(b"", opcode=0x1, fin=False))
    flood = _frame(b"", opcode=0x0, fin=False) * 4096
    while True:
        writer.write(flood)
        await writer.drain()


async def test_a_flood_of_tiny_frames_neither_starves_the_loop_nor_outlasts_total_s() -> None:
    longest_gap_s = 0.0

    async def heartbeat() -> None:
        nonlocal longest_gap_s
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            longest_gap_s = max(longest_gap_s, time.perf_counter() - before)

    async with fault_server(_upgrading(_floods_empty_fragments)) as port:
        beating = asyncio.create_task(heartbeat())
        started = time.perf_counter()
        answer = await _send(port, total_s=0.5)
        took_s = time.perf_counter() - started
        beating.cancel()
    assert answer.failure is not None and answer.failure.error_class == "timeout"
    assert took_s < 2.0, f"a 0.5 s probe took {took_s:.2f} s"
    assert longest_gap_s < 0.5, f"the event loop stalled {longest_gap_s:.2f} s"


async def test_pings_whose_pongs_are_never_read_do_not_grow_the_write_buffer() -> None:
    """A server that pings without reading: once the socket's buffers are full, pings go
    unanswered (RFC 6455 section 5.5.3) instead of queueing pongs in memory."""
    loop = asyncio.get_running_loop()
    never_reads = sockets.socket()
    never_reads.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)  # before listen
    never_reads.bind(("127.0.0.1", 0))
    never_reads.listen(1)
    never_reads.setblocking(False)
    accepting = loop.create_task(loop.sock_accept(never_reads))
    transport, socket = await loop.create_connection(
        lambda: _Socket(loop, HeadLimits(65_536, 262_144, 500)), *never_reads.getsockname()
    )
    peer, _ = await accepting
    try:
        transport.get_extra_info("socket").setsockopt(sockets.SOL_SOCKET, sockets.SO_SNDBUF, 4096)
        pings = _frame(b"p" * 125, opcode=0x9) * 4096  # 512 KiB of pings, as many pongs
        _feed(socket, Framing(ConnectionType.CLIENT), pings, _ignore)
        assert transport.get_write_buffer_size() < 128 * 1024
    finally:
        transport.abort()
        peer.close()
        never_reads.close()


async def test_many_probes_with_deflate_do_not_keep_their_compression_state() -> None:
    """wsproto's framing is a reference cycle: under the CLI's garbage-collection settings each
    probe's zlib state stayed until a rare full collection (4,000 probes: 550 MB)."""
    from aiohttp import web
    from wsproto.extensions import PerMessageDeflate

    from shadowdiff.replay.engine import tune_garbage_collection
    from shadowdiff.transport import open_transport

    from .test_websocket import _endpoint, _request, _websocket_app

    runner = web.AppRunner(_websocket_app(candidate=False), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    thresholds = gc.get_threshold()
    tune_garbage_collection()  # as the CLI runs
    try:
        transport = open_transport(_endpoint(port), pool_size=8)
        request = _request(message="hello", extensions=("permessage-deflate",))
        for _ in range(25):
            answers = await asyncio.gather(*(transport.send(request) for _ in range(8)))
            assert all(a.failure is None and a.body == b"hello" for a in answers), answers[0]
        await transport.close()
        alive = sum(isinstance(o, PerMessageDeflate) for o in gc.get_objects())
        assert alive <= 64 + 8, alive  # the probes since the last collection, at most
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        await runner.cleanup()
