"""Hostile HTTP/2 servers for the tests: h2c with prior knowledge on loopback, written with the
`h2` library (the server side of the same state machine the transport drives), and raw frames
from `hyperframe` where a server breaks the protocol on purpose. Each answers every request
the same way, by its `behaviour`:

    goaway_mid_stream   the head and part of the body, then GOAWAY (INTERNAL_ERROR) and close
    goaway_before       GOAWAY with last stream 0 (the request was never processed), and close
    reset               RST_STREAM (INTERNAL_ERROR) instead of an answer
    reset_second        answers stream 1 and every stream but the second, which it resets
    no_end              the head and a body, never END_STREAM
    endless_data        DATA frames, one after another, until the client goes
    endless_continuation  a HEADERS frame without END_HEADERS, then CONTINUATION frames forever
    oversized_frame     a DATA frame longer than the client's SETTINGS_MAX_FRAME_SIZE
    uppercase_header    a response with a header name in upper case (malformed in HTTP/2)
    huge_header         a 100 KB header field (over response_limits.header_line_bytes)
    bad_status          `:status: 2x0`
    window_overflow     WINDOW_UPDATEs that take the client's send window past 2^31-1
    cut_mid_stream      the head and part of the body, then a TCP reset
    ok                  200 with a small body
    trailers            200 with the same body, then a trailer block (`x-trailer: 1`)
    two_streams         200 after 50 ms, allowing two streams at once (SETTINGS)
    no_streams          SETTINGS_MAX_CONCURRENT_STREAMS 0: no stream at all

`sibling_h2_server` answers one request with scripted frames (any header block, written as
it is) while another waits beside it on the same connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    WindowUpdateFrame,
)


class _Server(asyncio.Protocol):
    def __init__(self, behaviour: str, tasks: set[asyncio.Task[None]]) -> None:
        self.behaviour = behaviour
        self.tasks = tasks
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.transport: asyncio.Transport | None = None
        self.requests = 0
        self.open_streams = 0
        self.most_open_streams = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.behaviour in ("two_streams", "no_streams"):
            allowed = 2 if self.behaviour == "two_streams" else 0
            self.conn.local_settings = h2.settings.Settings(
                client=False,
                initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: allowed},
            )
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            # What the client sends after a hostile answer (RST_STREAM, GOAWAY) may not fit
            # the state this server left; it is going anyway.
            self._close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived) and event.stream_id is not None:
                self.requests += 1
                self._answer(event.stream_id)
        self._flush()

    def _answer(self, stream_id: int) -> None:
        behaviour = self.behaviour
        head = [(b":status", b"200"), (b"content-type", b"text/plain")]
        conn = self.conn
        if behaviour == "two_streams":
            self.open_streams += 1
            self.most_open_streams = max(self.most_open_streams, self.open_streams)
            asyncio.get_running_loop().call_later(0.05, self._answer_later, stream_id)
        elif behaviour == "ok" or (behaviour == "reset_second" and self.requests != 2):
            conn.send_headers(stream_id, head)
            conn.send_data(stream_id, b"fine\n", end_stream=True)
        elif behaviour == "trailers":
            conn.send_headers(stream_id, head)
            conn.send_data(stream_id, b"fine\n")
            conn.send_headers(stream_id, [(b"x-trailer", b"1")], end_stream=True)
        elif behaviour in ("reset", "reset_second"):
            conn.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif behaviour == "goaway_mid_stream":
            conn.send_headers(stream_id, head)
            conn.send_data(stream_id, b"partial")
            conn.close_connection(h2.errors.ErrorCodes.INTERNAL_ERROR, last_stream_id=stream_id)
            self._flush()
            self._close()
        elif behaviour == "goaway_before":
            conn.close_connection(h2.errors.ErrorCodes.NO_ERROR, last_stream_id=0)
            self._flush()
            self._close()
        elif behaviour == "no_end":
            conn.send_headers(stream_id, head)
            conn.send_data(stream_id, b"and then nothing")
        elif behaviour == "uppercase_header":
            conn.send_headers(stream_id, [*head, (b"X-Upper", b"1")], end_stream=True)
        elif behaviour == "bad_status":
            conn.send_headers(stream_id, [(b":status", b"2x0")], end_stream=True)
        elif behaviour == "huge_header":
            # Written without Huffman coding: hpack's pure-Python encoder takes seconds over
            # 100 KB, and this server shares the test's event loop.
            block = Encoder().encode([*head, (b"x-big", b"a" * 100_000)], huffman=False)
            chunks = [block[i : i + 16_384] for i in range(0, len(block), 16_384)]
            frames: list[Frame] = [HeadersFrame(stream_id, data=chunks[0], flags=["END_STREAM"])]
            frames += [ContinuationFrame(stream_id, data=chunk) for chunk in chunks[1:]]
            frames[-1].flags.add("END_HEADERS")
            self._raw(b"".join(frame.serialize() for frame in frames))
        elif behaviour == "window_overflow":
            self._flush()
            update = WindowUpdateFrame(0)
            update.window_increment = 2**31 - 1
            self._raw(update.serialize() * 2)
        elif behaviour == "cut_mid_stream":
            conn.send_headers(stream_id, head)
            conn.send_data(stream_id, b"partial")
            self._flush()
            if self.transport is not None:
                self.transport.abort()
        elif behaviour == "oversized_frame":
            conn.send_headers(stream_id, head)
            self._flush()
            self._raw(DataFrame(stream_id, data=b"x" * 20_000).serialize())
        elif behaviour == "endless_data":
            conn.send_headers(stream_id, head)
            self._flush()
            self._spawn(self._endless_data(stream_id))
        elif behaviour == "endless_continuation":
            block = Encoder().encode(head)
            self._raw(HeadersFrame(stream_id, data=block).serialize())
            self._spawn(self._endless_continuation(stream_id))

    def _answer_later(self, stream_id: int) -> None:
        self.open_streams -= 1
        if self.transport is not None:
            self.conn.send_headers(stream_id, [(b":status", b"200")])
            self.conn.send_data(stream_id, b"later\n", end_stream=True)
            self._flush()

    async def _endless_data(self, stream_id: int) -> None:
        # Past the flow-control window, as a hostile server would: the client acknowledges
        # what it consumes, so the window is never what stops it.
        frame = DataFrame(stream_id, data=b"y" * 16_384).serialize()
        while self.transport is not None and not self.transport.is_closing():
            self._raw(frame * 4)
            await asyncio.sleep(0.001)

    async def _endless_continuation(self, stream_id: int) -> None:
        frame = ContinuationFrame(stream_id, data=b"\x00" * 1024).serialize()
        while self.transport is not None and not self.transport.is_closing():
            self._raw(frame * 16)
            await asyncio.sleep(0.001)

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _raw(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flush(self) -> None:
        self._raw(self.conn.data_to_send())

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


@dataclass
class HostileServer:
    port: int
    connections: list[_Server] = field(default_factory=list)


@asynccontextmanager
async def hostile_h2_server(behaviour: str) -> AsyncIterator[HostileServer]:
    """An h2c server on 127.0.0.1 answering every request by `behaviour`."""
    tasks: set[asyncio.Task[None]] = set()
    connections: list[_Server] = []

    def accept() -> _Server:
        connections.append(_Server(behaviour, tasks))
        return connections[-1]

    server = await asyncio.get_running_loop().create_server(accept, "127.0.0.1", 0)
    try:
        yield HostileServer(int(server.sockets[0].getsockname()[1]), connections)
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abort()
        await server.wait_closed()


class H2Server(asyncio.Protocol):
    """The server side of an h2c connection (prior knowledge): h2's state, its settings sent
    as the connection opens. Subclasses answer in `data_received`."""

    def __init__(self) -> None:
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())


class _Scripted(H2Server):
    """Answers the first request with `script`, bytes as they are (any frames, or none)."""

    def __init__(self, script: bytes) -> None:
        super().__init__()
        self.script = script

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.script is None:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            events = []
        self.transport.write(self.conn.data_to_send())
        if any(isinstance(event, h2.events.RequestReceived) for event in events):
            self.transport.write(self.script)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


@asynccontextmanager
async def serving(make: Callable[[], H2Server]) -> AsyncIterator[int]:
    """Serve a `make()` per connection on a loopback port (yielded); every connection is cut
    when the block ends."""
    connections: list[H2Server] = []

    def accept() -> H2Server:
        connections.append(make())
        return connections[-1]

    server = await asyncio.get_running_loop().create_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abort()
        await server.wait_closed()


@asynccontextmanager
async def scripted_h2_server(script: bytes) -> AsyncIterator[int]:
    """An h2c server that answers a request with `script`; yields its port."""
    async with serving(lambda: _Scripted(script)) as port:
        yield port


# One frame of a scripted answer: ("headers", fields, end_stream) HPACK-coded by the server's
# own encoder (so its later answers stay in step), ("data", bytes, end_stream), both written as
# they are whatever HTTP/2 says of them; ("raw", bytes, False) as they are; or ("ping",): what
# follows waits until the client acknowledged a PING, that is until it has read everything
# before (a second read).
Step = tuple[str, list[tuple[bytes, bytes]], bool] | tuple[str, bytes, bool] | tuple[str]


# The opaque data of the PING that follows a whole script (RFC 9113 section 6.7: 8 bytes).
_READ_ALL = b"read-all"


class _Siblings(H2Server):
    """Answers the request for `/scripted` with `script`, and the others with 200 "fine".
    The script waits until another request is in flight beside it on this connection, so that
    one is a sibling of whatever the script does; with `after_reset` the others are answered
    only once the client has reset the scripted stream or read the whole script (readiness
    signals, not a sleep)."""

    def __init__(self, script: list[Step], after_reset: bool, seen: Siblings) -> None:
        super().__init__()
        self.script = script
        self.after_reset = after_reset
        self.seen = seen
        self.scripted: int | None = None
        self.waiting: list[int] = []
        self.rest: list[Step] = []
        self.released = False

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.seen.refused = True
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived) and event.stream_id is not None:
                path = dict(event.headers or []).get(b":path", b"")
                if path == b"/scripted":
                    self.scripted = event.stream_id
                else:
                    self.waiting.append(event.stream_id)
                if self.scripted is not None and self.waiting and not self.script_started:
                    self._play(self.script)
            elif isinstance(event, h2.events.StreamReset) and event.stream_id is not None:
                self.seen.resets[event.stream_id] = event.error_code
                if event.stream_id == self.scripted:
                    self.released = True
            elif isinstance(event, h2.events.PingAckReceived):
                if event.ping_data == _READ_ALL:
                    self.released = True
                else:
                    self._play(self.rest)
        if self.released or (self.script_started and not self.after_reset and not self.rest):
            for stream_id in self.waiting:
                self.conn.send_headers(stream_id, [(b":status", b"200")])
                self.conn.send_data(stream_id, b"fine\n", end_stream=True)
            self.waiting = []
        self._write(self.conn.data_to_send())

    @property
    def script_started(self) -> bool:
        return not self.script

    def _play(self, steps: list[Step]) -> None:
        stream_id = self.scripted
        assert stream_id is not None
        self.script, self.rest = [], []
        written = self.conn.data_to_send()
        for at, step in enumerate(steps):
            if step[0] == "ping":
                self.conn.ping(b"scripted")
                written += self.conn.data_to_send()
                self.rest = steps[at + 1 :]
                break
            _, payload, end = cast(tuple[str, Any, bool], step)
            flags = ["END_STREAM"] if end else []
            if step[0] == "headers":
                block = self.conn.encoder.encode(payload)
                written += HeadersFrame(
                    stream_id, data=block, flags=[*flags, "END_HEADERS"]
                ).serialize()
            elif step[0] == "data":
                written += DataFrame(stream_id, data=payload, flags=flags).serialize()
            else:
                written += payload
        if self.after_reset and not self.rest:
            # The whole script is out: once the client has read it (the PING is acknowledged
            # after it), the siblings are answered even if it reset nothing.
            self.conn.ping(_READ_ALL)
            written += self.conn.data_to_send()
        self._write(written)

    def _write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


@dataclass
class Siblings:
    """What a sibling server saw: the streams the client reset (by stream ID, with the error
    code), whether the client broke the protocol, and how many connections it opened."""

    port: int = 0
    resets: dict[int, int] = field(default_factory=dict)
    refused: bool = False
    connections: int = 0


@asynccontextmanager
async def sibling_h2_server(script: list[Step], *, after_reset: bool) -> AsyncIterator[Siblings]:
    """An h2c server answering `/scripted` with `script` and every other path with 200 "fine"
    (see `_Siblings`); yields what it saw."""
    seen = Siblings()

    def make() -> _Siblings:
        seen.connections += 1
        return _Siblings(script, after_reset, seen)

    async with serving(make) as port:
        seen.port = port
        yield seen
