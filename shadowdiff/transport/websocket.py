"""The WebSocket probe of the lean transport: a new connection per probe, never pooled; the
upgrade written as an HTTP/1.1 GET and its answer read with the HTTP/1.1 connection's parser
and `response_limits`; after a 101 that passes the client's checks, wsproto's framing on the
same socket: the request's one text message sent, the first data message back read as the
echo, then a close handshake. Never raises for what happens on the wire.

wsproto (python-hyper, as h2) does the framing: masking, fragments, control frames, UTF-8
checks, the close handshake and permessage-deflate. What it does not bound is bounded here:
bytes are fed to it in small slices and each slice's output counted, so a compressed frame
inflates at most `_FEED_SLICE_BYTES` times zlib's ratio (about 1030:1) before the cap on a
message (`_MESSAGE_CAP_BYTES`) stops it, and a socket whose bytes wait to be read is paused.
Framing costs CPU per frame, not per byte (a flood of 2-byte empty frames is the worst case),
so the event loop gets a turn every `_TURN_S` of framing: the probe's timeout
and the other probes run however a server floods. Pongs are written only while the socket's
write buffer is short, so a server that pings without reading cannot grow it.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import time
from collections.abc import Callable
from typing import Final, Literal

from wsproto.connection import Connection as Framing
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate

from shadowdiff.endpoint import Endpoint, HeadLimits
from shadowdiff.observation import Observation, TransportFailure
from shadowdiff.spec import RequestSpec
from shadowdiff.transport.dial import checked_target, dial, head_lines, sni
from shadowdiff.transport.lean_connection import (
    Connection,
    Exchange,
    Failure,
    answer_timings,
    failed_observation,
)
from shadowdiff.transport.tls import ClientContexts, tls_session
from shadowdiff.transport.websocket_handshake import (
    HandshakeRefused,
    Upgrade,
    check_upgrade,
    new_key,
    upgrade_headers,
)
from shadowdiff.wire import websocket_refusal

# The largest echo read, decompressed: past it the answer is `malformed_response`. A body
# past `body_capture` is hashed whole and kept in part, as any body; this bounds the time.
_MESSAGE_CAP_BYTES: Final = 16 * 1024 * 1024
_FEED_SLICE_BYTES: Final = 4096
# Read bytes not yet framed: past this the socket stops reading until they are.
_PENDING_PAUSE_BYTES: Final = 256 * 1024
# Framed at a time: at most 512 frames, about 15 ms of wsproto on a loaded machine; past
# `_TURN_S` since the event loop's last turn, the next read gives it one.
_READ_BYTES: Final = 1024
_TURN_S: Final = 0.005
# Unsent bytes past which a ping goes unanswered (RFC 6455 section 5.5.3 lets a client answer
# only the latest ping): a server that pings without reading the pongs cannot grow the buffer.
_PONG_BACKLOG_BYTES: Final = 64 * 1024
# How long the close handshake may take after the echo (it is not part of the answer).
_CLOSE_GRACE_S: Final = 1.0
# After a first reply that is not the echo (a greeting), how long the echo may still come:
# a few handshake times, at least the first, at most the second. The answer is timed at its
# own end, so a wait that finds nothing is in no latency.
_ECHO_GRACE_MIN_S: Final = 0.05
_ECHO_GRACE_S: Final = 0.5
# Replies read at most while looking for the echo.
_REPLIES_READ: Final = 16
# What the close handshake reads at most (a server still sending frames is cut).
_CLOSE_READ_BYTES: Final = 1024 * 1024

MessageType = Literal["text", "binary"]


class _Socket(Connection):
    """The connection the upgrade goes out on: HTTP/1.1 until a 101, then raw bytes kept
    for the framing (`read`)."""

    __slots__ = ("paused", "pending", "turn_started_s", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: HeadLimits) -> None:
        super().__init__(loop, limits)
        self.pending: bytearray | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.turn_started_s = 0.0

    def upgraded(self, after_head: bytes) -> None:
        self.pending = bytearray(after_head)

    def data_received(self, data: bytes) -> None:
        if self.pending is None:
            super().data_received(data)
            return
        self.pending += data
        if len(self.pending) > _PENDING_PAUSE_BYTES and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self) -> bytes:
        """At most `_READ_BYTES` of what arrived and is not read yet; empty once the
        connection is closed and all is read. Gives the event loop a turn once `_TURN_S` has
        passed since the last: a server that never stops sending must not keep the timeout
        and the other probes from running."""
        if self.pending and time.perf_counter() - self.turn_started_s > _TURN_S:
            await asyncio.sleep(0)
            self.turn_started_s = time.perf_counter()
        while not self.pending and not self.closed:
            self.waiter = self.loop.create_future()
            await self.waiter
            self.turn_started_s = time.perf_counter()
        if self.pending is None:
            self.pending = bytearray()
        data = bytes(self.pending[:_READ_BYTES])
        del self.pending[:_READ_BYTES]
        if (
            self.paused
            and len(self.pending) <= _PENDING_PAUSE_BYTES
            and self.transport is not None
            and not self.closed
        ):
            self.transport.resume_reading()
            self.paused = False
        return data


class _Echo:
    """The first data message the server sends after the probe's: hashed whole, kept up to
    `capture` bytes, refused past the cap."""

    def __init__(self, capture: int) -> None:
        self.capture = capture
        self.body = bytearray()
        self.size_bytes = 0
        self.digest = hashlib.sha256()  # one per echo: no need to copy a prepared one
        self.kind: MessageType | None = None
        self.finished = False

    def add(self, data: bytes, kind: MessageType, finished: bool) -> None:
        if self.finished:
            return  # a message after the echo (in the same read): not part of it
        self.kind = self.kind or kind
        self.size_bytes += len(data)
        if self.size_bytes > _MESSAGE_CAP_BYTES:
            raise Failure(
                "malformed_response",
                f"a WebSocket message over {_MESSAGE_CAP_BYTES} bytes (decompressed)",
            )
        self.digest.update(data)
        room = self.capture - len(self.body)
        if room > 0:
            self.body += data[:room]
        self.finished = finished


class _Replies:
    """The data messages after the probe's own: the first, and the first equal to what was
    sent. A greeting the server writes after the 101 may arrive after the probe's message
    left, and would be taken for the echo; when the first reply is not an echo, the echo that
    follows it (within `_ECHO_GRACE_S`) is. A server that answers with something else keeps
    its first reply."""

    def __init__(self, capture: int, sent: bytes) -> None:
        self.capture = capture
        self.sent_bytes = len(sent)
        self.sent_digest = hashlib.sha256(sent).digest()
        self.current = _Echo(capture)
        self.first: _Echo | None = None
        self.echo: _Echo | None = None
        self.ended_ns = 0  # when the answer (the echo, or else the first reply) ended
        self.seen = 0

    def add(self, data: bytes, kind: MessageType, finished: bool) -> None:
        if self.echo is not None or self.seen >= _REPLIES_READ:
            return  # decided: later messages (in the same read) are not the answer
        try:
            self.current.add(data, kind, finished)
        except Failure:
            if self.first is None:
                raise
            self.seen = _REPLIES_READ  # a later message over the cap: the first stays
            return
        if not self.current.finished:
            return
        self.seen += 1
        reply = self.current
        if self.first is None:
            self.first, self.ended_ns = reply, time.perf_counter_ns()
        if reply.size_bytes == self.sent_bytes and reply.digest.digest() == self.sent_digest:
            self.echo, self.ended_ns = reply, time.perf_counter_ns()
        self.current = _Echo(self.capture)

    @property
    def answer(self) -> _Echo | None:
        return self.echo or self.first


def _framing(upgrade: Upgrade) -> Framing:
    """wsproto's client framing with the extensions the server accepted that it implements
    (permessage-deflate); another accepted extension is compared, not spoken."""
    extensions: list[Extension] = []
    for accepted in upgrade.extensions:
        if accepted.split(";", 1)[0].strip().lower() == PerMessageDeflate.name:
            deflate = PerMessageDeflate()
            try:
                # wsproto refuses a window outside 2^9-2^15 bytes, as zlib does, by ValueError.
                deflate.finalize(accepted)
            except (ValueError, IndexError):
                raise Failure(
                    "malformed_response", "101 with permessage-deflate parameters not understood"
                ) from None
            extensions.append(deflate)
    return Framing(ConnectionType.CLIENT, extensions=extensions)


def _feed(
    socket: _Socket,
    framing: Framing,
    data: bytes,
    on_message: Callable[[bytes, MessageType, bool], None],
) -> None:
    """Feed `data` to `framing` slice by slice, answering pings and passing data messages to
    `on_message(data, kind, finished)`. Raises `Failure` for frames wsproto refuses and for a
    close from the server."""
    for start in range(0, len(data), _FEED_SLICE_BYTES):
        framing.receive_data(data[start : start + _FEED_SLICE_BYTES])
        for event in framing.events():
            if isinstance(event, TextMessage):
                on_message(event.data.encode("utf-8"), "text", event.message_finished)
            elif isinstance(event, BytesMessage):
                on_message(bytes(event.data), "binary", event.message_finished)
            elif isinstance(event, Ping):
                if socket.transport is None or (
                    socket.transport.get_write_buffer_size() < _PONG_BACKLOG_BYTES
                ):
                    _write(socket, framing.send(event.response()))
            elif isinstance(event, CloseConnection):
                if framing.state is ConnectionState.OPEN:
                    # wsproto reports frames it refuses as a close it did not receive.
                    raise Failure("malformed_response", f"invalid WebSocket frames: {event.reason}")
                if framing.state is ConnectionState.REMOTE_CLOSING:
                    _write(socket, framing.send(event.response()))
                raise Failure(
                    "reset",
                    f"the server closed the WebSocket (code {event.code}) before it echoed "
                    "the message",
                )


def _cut(sockets: list[_Socket]) -> None:
    for socket in sockets:
        socket.abort()


def _write(socket: _Socket, data: bytes) -> None:
    if socket.transport is not None and not socket.closed:
        socket.transport.write(data)


# wsproto's framing holds itself in a reference cycle (its frame parser is a generator that
# refers back to it), as does each probe's socket with its HTTP parser: a probe's garbage,
# with permessage-deflate's zlib state (hundreds of KiB a side), waits for a full collection,
# which Python starts rarely once objects have lived through a few. Without one every so
# many probes, 4,000 probes held 550 MB.
_COLLECT_EVERY_PROBES: Final = 64
_probes_since_collection = 0


def _probe_done() -> None:
    global _probes_since_collection
    _probes_since_collection += 1
    if _probes_since_collection >= _COLLECT_EVERY_PROBES:
        _probes_since_collection = 0
        gc.collect()


class WebSocketProber:
    """Sends WebSocket probes to one target, each on a connection of its own."""

    def __init__(
        self,
        endpoint: Endpoint,
        contexts: ClientContexts,
        adopt: Callable[[_Socket], None],
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.endpoint = endpoint
        self.contexts = contexts
        self.adopt = adopt

    async def send(
        self, request: RequestSpec, started_ns: int, traceparent: str | None
    ) -> Observation:
        try:
            return await self._send(request, started_ns, traceparent)
        finally:
            _probe_done()

    async def _send(
        self, request: RequestSpec, started_ns: int, traceparent: str | None
    ) -> Observation:
        endpoint = self.endpoint
        timings: dict[str, int] = {}
        sockets: list[_Socket] = []
        try:
            async with asyncio.timeout(endpoint.total_timeout_s):
                observation, framing = await self._probe(
                    request, started_ns, traceparent, timings, sockets
                )
        except asyncio.CancelledError:
            _cut(sockets)  # stopped mid-probe (Ctrl-C, the end of a timed load)
            raise
        except Failure as refused:
            _cut(sockets)
            return _failed(endpoint, refused.failure, started_ns, timings)
        except TimeoutError:
            _cut(sockets)
            message = f"no complete WebSocket exchange within {endpoint.total_timeout_s} s"
            return _failed(endpoint, TransportFailure("timeout", message), started_ns, timings)
        except Exception as exc:
            _cut(sockets)
            other = TransportFailure("other", f"{type(exc).__name__}: {exc}")
            return _failed(endpoint, other, started_ns, timings)
        if framing is not None:
            await _close(sockets[0], framing)
        elif sockets[0].transport is not None:
            sockets[0].transport.close()  # an HTTP answer: the connection is never pooled
        return observation

    async def _probe(
        self,
        request: RequestSpec,
        started_ns: int,
        traceparent: str | None,
        timings: dict[str, int],
        sockets: list[_Socket],
    ) -> tuple[Observation, Framing | None]:
        endpoint, probe = self.endpoint, request.websocket
        assert probe is not None
        target = checked_target(request, endpoint.headers)
        reason = websocket_refusal(
            request.method,
            (*request.headers, *endpoint.headers),
            request.body,
            probe.subprotocols,
            probe.extensions,
            probe.message,
            allow_unsafe=request.allow_unsafe,
        )
        if reason is not None:
            raise Failure("not_sent", f"not sent: {reason}")
        key = new_key()
        lines, _ = head_lines("GET", target, (*request.headers, *endpoint.headers))
        lines += [f"{name}: {value}" for name, value in upgrade_headers(probe, key)]
        if traceparent is not None:
            lines.append(f"traceparent: {traceparent}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

        socket = _Socket(self.loop, endpoint.limits)
        sockets.append(socket)
        tls = request.tls if target.scheme == "https" else None
        socket.transport = await dial(
            self.loop,
            endpoint.address,
            endpoint.port_map.get(target.port, target.port),
            socket,
            tls=(self.contexts.get(tls), sni(target.scheme, target.host, tls))
            if target.scheme == "https"
            else None,
            host=target.host,
            timeout_s=endpoint.connect_timeout_s,
            timings=timings,
            on_connected=lambda: self.adopt(socket),
        )
        if target.scheme == "https":
            socket.tls = tls_session(socket.transport)
        exchange = Exchange(endpoint.body_capture_bytes, False, started_ns, self.loop)
        socket.exchange = exchange
        socket.transport.write(head)
        await exchange.done
        if exchange.status != 101:
            # Not upgraded: an HTTP answer like any other, compared as such.
            if exchange.bytes_after_end:
                raise Failure(
                    "malformed_response", "bytes after the end of the response (no request asked)"
                )
            return _observation(endpoint, socket, exchange, started_ns, timings), None
        try:
            upgrade = check_upgrade(probe, key, exchange.headers)
        except HandshakeRefused as refused:
            raise Failure("malformed_response", str(refused)) from None
        framing = _framing(upgrade)
        echo = _Echo(endpoint.body_capture_bytes)
        # Messages before the probe's own (a greeting) are not its echo.
        # Those that came with the 101 are framed here, a slice per loop turn.
        greeting_bytes = len(socket.pending or b"")
        while greeting_bytes > 0:
            data = await socket.read()
            if not data:
                break
            greeting_bytes -= len(data)
            _feed(socket, framing, data, _ignore)
        if probe.idle_s > 0:
            await _stay_idle(socket, framing, probe.idle_s)
        ended_ns = None
        if probe.message is not None:
            replies = _Replies(endpoint.body_capture_bytes, probe.message.encode("utf-8"))
            _write(socket, framing.send(Message(data=probe.message)))
            while replies.first is None:
                data = await socket.read()
                if not data:
                    raise Failure("reset", "connection closed before the echo was complete")
                _feed(socket, framing, data, replies.add)
            if replies.echo is None:
                handshake_s = ((exchange.first_byte_ns or started_ns) - started_ns) / 1e9
                await _echo_after(socket, framing, replies, handshake_s)
            echo, ended_ns = replies.answer or echo, replies.ended_ns
        observation = _observation(
            endpoint, socket, exchange, started_ns, timings, echo, ended_ns=ended_ns
        )
        return observation, framing


async def _echo_after(
    socket: _Socket, framing: Framing, replies: _Replies, handshake_s: float
) -> None:
    """Read on, briefly, for an echo after a first reply that was not one: a few times what
    the handshake took (a round trip and the server's turn), within `_ECHO_GRACE_S`. What
    ends the wait early (a close, frames wsproto refuses) leaves the first reply the answer."""
    grace_s = min(_ECHO_GRACE_S, max(_ECHO_GRACE_MIN_S, 4 * handshake_s))
    try:
        async with asyncio.timeout(grace_s):
            while replies.echo is None and replies.seen < _REPLIES_READ:
                data = await socket.read()
                if not data:
                    return
                _feed(socket, framing, data, replies.add)
    except (TimeoutError, Failure):
        return


def _ignore(data: bytes, kind: MessageType, finished: bool) -> None:
    """A data message that is not the echo: read (pings answered), not kept."""


async def _stay_idle(socket: _Socket, framing: Framing, idle_s: float) -> None:
    """Send nothing for `idle_s` (pings are still answered, as clients do): a side whose idle
    timeout is shorter closes the socket, which is `reset`, named as such."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + idle_s
    while (left := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                data = await socket.read()
        except TimeoutError:
            return
        idle_for = f"after {idle_s - (deadline - loop.time()):.1f} s idle (of idle_s {idle_s:g})"
        if not data:
            raise Failure("reset", f"connection closed {idle_for}: an idle timeout?")
        try:
            _feed(socket, framing, data, _ignore)
        except Failure as failure:
            if failure.failure.error_class != "reset":
                raise
            raise Failure("reset", f"{failure.failure.message}, {idle_for}") from None


async def _close(socket: _Socket, framing: Framing) -> None:
    """The close handshake (RFC 6455 section 7): a close frame, then the server's, for at most
    `_CLOSE_GRACE_S`; the socket goes either way. Not part of the answer."""
    read_bytes = 0
    try:
        async with asyncio.timeout(_CLOSE_GRACE_S):
            if framing.state is ConnectionState.OPEN:
                _write(socket, framing.send(CloseConnection(code=1000)))
            while framing.state is not ConnectionState.CLOSED and read_bytes < _CLOSE_READ_BYTES:
                data = await socket.read()
                if not data:
                    break
                read_bytes += len(data)
                try:
                    _feed(socket, framing, data, _ignore)
                except Failure:
                    break
    except asyncio.CancelledError:
        socket.abort()
        raise
    except Exception:
        # No close frame within the grace (TimeoutError), or frames wsproto refuses: the
        # answer is complete already, so the socket is only cut.
        socket.abort()
        return
    if socket.transport is not None:
        socket.transport.close()


def _observation(
    endpoint: Endpoint,
    socket: _Socket,
    exchange: Exchange,
    started_ns: int,
    timings: dict[str, int],
    echo: _Echo | None = None,
    *,
    ended_ns: int | None = None,
) -> Observation:
    if echo is None:
        body, body_bytes, digest = bytes(exchange.body), exchange.body_bytes, exchange.digest
    else:
        body, body_bytes, digest = bytes(echo.body), echo.size_bytes, echo.digest
    return Observation(
        side=endpoint.side,
        status=exchange.status,
        reason=exchange.reason,
        http_version=exchange.version,
        headers=tuple(exchange.headers),
        body=body,
        body_bytes=body_bytes,
        body_sha256=digest.hexdigest(),
        timings=answer_timings(started_ns, timings, exchange.first_byte_ns, ended_ns),
        tls=socket.tls,
        websocket_message=None if echo is None else echo.kind,
    )


def _failed(
    endpoint: Endpoint, failure: TransportFailure, started_ns: int, timings: dict[str, int]
) -> Observation:
    return failed_observation(endpoint.side, failure, started_ns, timings)
