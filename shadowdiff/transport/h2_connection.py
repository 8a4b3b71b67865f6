"""One HTTP/2 connection of the lean transport: python-hyper's `h2` state machine (framing,
HPACK, stream states, flow control) driven on an asyncio protocol, several streams at once,
each answer gathered into a `Stream` with the body capture and `defaults.response_limits` as
on HTTP/1.1. Whatever the server sends ends as a classified `Failure`, never an exception out
of the event loop. Pooling, timeouts and observations are `lean_h2`'s.

Failure classes (the rest of the table is `failures.py`'s):

    a stream reset by the server (RST_STREAM), GOAWAY above    reset
    the stream, the connection closed mid-answer
    a frame h2 rejects (protocol, flow control, a header       malformed_response
    block over response_limits, endless CONTINUATION), bytes
    that are not HTTP/2, a server that does not read
    a malformed answer (h2_state.answer_problem): its stream   malformed_response
    alone, the others on the connection go on
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import Final, cast

import h2.config
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from shadowdiff.content_coding import ContentDigest, past_capture
from shadowdiff.endpoint import HeadLimits
from shadowdiff.observation import TlsSession
from shadowdiff.transport.h2_state import H2State, StreamMalformed
from shadowdiff.transport.lean_connection import Failure

_SHA256: Final = hashlib.sha256()
# The windows granted to the server: memory does not grow with them (DATA is hashed and
# dropped past the capture as it arrives, and acknowledged at once), and a window larger than
# the protocol's 64 KiB default lets a large body come without waiting for WINDOW_UPDATEs.
_STREAM_WINDOW_BYTES: Final = 1024 * 1024
_CONNECTION_WINDOW_BYTES: Final = 16 * 1024 * 1024
# Streams this client asks for at most on one connection, whatever the server allows.
_MAX_STREAMS: Final = 1000
# Stream IDs are 31 bits and never reused: a connection near the end of them takes no more.
_LAST_STREAM_ID: Final = 2**31 - 1000
# Bytes waiting to go out beyond which a server is deemed not to read what it asks for (every
# PING and SETTINGS it sends is answered): request bodies wait for the buffer to drain, so
# only a flood of those answers reaches this.
_MAX_UNSENT_BYTES: Final = 4 * 1024 * 1024


class Stream:
    """One request on an HTTP/2 connection, and what came back for it."""

    __slots__ = (
        "body",
        "body_bytes",
        "capture",
        "connection",
        "content",
        "deadline_ns",
        "digest",
        "done",
        "ended_ns",
        "first_byte_ns",
        "header_bytes",
        "headers",
        "received_bytes",
        "status",
        "stream_id",
        "trailers",
        "window",
    )

    def __init__(self, capture: int, loop: asyncio.AbstractEventLoop) -> None:
        self.capture = capture
        self.connection: H2Connection | None = None
        self.stream_id = 0
        self.done: asyncio.Future[None] = loop.create_future()
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        # The trailer block after the body, if any (gRPC's status lives there); counted
        # against response_limits together with the head.
        self.trailers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.first_byte_ns: int | None = None
        self.ended_ns = 0
        self.body = bytearray()
        self.body_bytes = 0
        self.digest = _SHA256.copy()
        self.content: ContentDigest | None = None  # begun past `capture` (content_coding)
        self.received_bytes = 0  # every byte of the answer: 0 means none began
        self.deadline_ns = 0
        # Set when the server opens flow-control room or the socket drains (request bodies).
        self.window = asyncio.Event()

    def settle(self, failure: Failure | None) -> None:
        """End the wait for this stream: answered (None) or failed. A body still being sent
        stops too."""
        if not self.done.done():
            if failure is None:
                self.ended_ns = time.perf_counter_ns()
                self.done.set_result(None)
            else:
                self.done.set_exception(failure)
        self.window.set()

    # What the transport's deadline sweeper and its close() call on anything busy.
    def fail(self, failure: Failure) -> None:
        if self.connection is not None:
            self.connection.end_stream(self, failure)

    def abort(self) -> None:
        if self.connection is not None:
            self.connection.abort()


class H2Connection(asyncio.Protocol):
    """One HTTP/2 connection: streams started by `start`, answers read from h2's events."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: HeadLimits) -> None:
        self.loop = loop
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.tls: TlsSession | None = None
        self.h2 = H2State(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                # h2_state checks each answer's fields instead: a malformed answer fails its
                # stream alone, where h2's check fails every stream on the connection.
                validate_inbound_headers=False,
                # lean_h2 writes each request's fields ready for the wire (lower-case names,
                # no connection-specific field, values that passed shadowdiff.wire, secrets
                # never indexed) once per request: checking and normalising them again on
                # every send was a fifth of a request's CPU over HTTP/2.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        # The HPACK decoder's own bound (name + value + 32 per field, RFC 7541 section 4.1)
        # stops a header bomb before it is decoded; the exact limits are checked after.
        header_list_bytes = limits.header_bytes + 32 * limits.header_fields
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: header_list_bytes,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW_BYTES,
            },
        )
        # h2 applies our settings only once the server acknowledges them.
        self.h2.decoder.max_header_list_size = header_list_bytes
        self.streams: dict[int, Stream] = {}
        self.active = 0  # streams taken from the pool and not yet given back
        self.closed = False
        self.going_away = False  # a GOAWAY came: no new stream here
        # What ended the connection, once something did: a request handed this connection in
        # the same read that broke it fails for that reason, not as one never sent.
        self.failed: Failure | None = None
        self.paused = False  # the socket's write buffer is full
        # Resolved by the server's first SETTINGS frame: the connection is usable.
        self.ready: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONNECTION_WINDOW_BYTES - 65_535)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        message = f"connection closed before the response was complete ({exc or 'EOF'})"
        self._fail_all(Failure("reset", message))

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in self.streams.values():
            stream.window.set()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
            refused = None
        except Exception as exc:
            # Anything h2 (or HPACK under it) refuses in the server's bytes, for the whole
            # connection: what the frames before it brought still counts.
            events, refused = self.h2.received, exc
        for event in events:
            try:
                self._handle(event)
            except Exception as exc:
                # A limit refused the answer, or h2 refused what handling it needed.
                failure = (
                    exc
                    if isinstance(exc, Failure)
                    else Failure("malformed_response", f"HTTP/2 answer refused: {exc!r}")
                )
                self._flush()
                self._fail_all(failure)
                self.abort()
                return
        if refused is not None:
            self._protocol_error(refused)
            return
        self._flush()
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size() > _MAX_UNSENT_BYTES:
            self._fail_all(
                Failure(
                    "malformed_response",
                    "the server does not read what it asks to be answered (PING or SETTINGS flood)",
                )
            )
            self.abort()

    # streams
    def has_room(self) -> bool:
        limit = min(self.h2.remote_settings.max_concurrent_streams, _MAX_STREAMS)
        return (
            not self.closed
            and not self.going_away
            and self.ready.done()
            and self.ready.exception() is None
            and self.transport is not None
            and not self.transport.is_closing()
            and self.active < limit
            and self.h2.highest_outbound_stream_id < _LAST_STREAM_ID
        )

    def start(self, stream: Stream, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        """Send the request's head on a new stream (and end it when there is no body)."""
        stream_id = self.h2.get_next_available_stream_id()
        stream.connection, stream.stream_id = self, stream_id
        self.h2.send_headers(stream_id, headers, end_stream=end)
        self.streams[stream_id] = stream
        self._flush()

    async def send_body(self, stream: Stream, body: bytes) -> None:
        """Send `body` on `stream` as flow control and the socket allow, then end the stream.
        An answer that comes first (a 413 before the body is through) stops the sending."""
        view = memoryview(body)
        try:
            while view and not stream.done.done():
                room = min(
                    self.h2.local_flow_control_window(stream.stream_id),
                    self.h2.max_outbound_frame_size,
                    len(view),
                )
                if room <= 0 or self.paused:
                    stream.window.clear()
                    await stream.window.wait()
                    continue
                self.h2.send_data(stream.stream_id, view[:room].tobytes())
                view = view[room:]
                self._flush()
            if not stream.done.done():
                self.h2.end_stream(stream.stream_id)
            elif view and not self.closed:
                # Answered before the body was through: the rest is not wanted (RFC 9113
                # section 8.1), and the stream must not stay open on h2's count.
                self.h2.reset_stream(stream.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.H2Error as exc:
            stream.settle(Failure("reset", f"the stream closed while its body was sent: {exc}"))
        self._flush()

    def end_stream(self, stream: Stream, failure: Failure | None) -> None:
        """Stop `stream`: its answer failed with `failure` (a timeout, a cancel), so the server
        is told to stop sending it (RST_STREAM CANCEL)."""
        if failure is not None:
            stream.settle(failure)
        if self.streams.pop(stream.stream_id, None) is not None and not self.closed:
            with contextlib.suppress(h2.exceptions.H2Error):  # closed on h2's side already
                self.h2.reset_stream(stream.stream_id, h2.errors.ErrorCodes.CANCEL)
            self._flush()
        self._close_if_spent()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close the socket politely."""
        if self.transport is not None and not self.closed:
            try:
                self.h2.close_connection()
                self._flush()
            except h2.exceptions.H2Error:
                pass
            self.closed = True
            self.transport.close()

    # events
    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            assert event.stream_id is not None and event.flow_controlled_length is not None
            # Acknowledged as consumed: the data is hashed (and captured) right here.
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self.streams.get(event.stream_id)
            if stream is not None and event.data:
                data = event.data
                stream.received_bytes += len(data)
                stream.digest.update(data)
                stream.body_bytes += len(data)
                room = stream.capture - len(stream.body)
                if len(data) <= room:
                    stream.body += data
                else:
                    stream.content = past_capture(
                        stream.content, stream.headers, stream.body, data, room
                    )
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.first_byte_ns = time.perf_counter_ns()
                self._read_head_of(stream, event.headers or [], stream.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                self._read_head_of(stream, event.headers or [], stream.trailers)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.pop(event.stream_id or 0, None)
            if stream is not None:
                stream.settle(None)
            self._close_if_spent()
        elif isinstance(event, StreamMalformed):
            # h2_state reset this stream alone (RST_STREAM PROTOCOL_ERROR).
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.settle(Failure("malformed_response", event.detail))
            self._close_if_spent()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id or 0, None)
            if stream is not None:
                code = _code_name(event.error_code)
                failure = Failure("reset", f"the server reset the stream (RST_STREAM {code})")
                # RFC 9113 section 8.7: a refused stream was not processed at all.
                failure.before_answer = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
                stream.settle(failure)
            self._close_if_spent()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._going_away(event)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            if not self.ready.done():
                self.ready.set_result(None)
            for stream in self.streams.values():
                stream.window.set()
        elif isinstance(event, h2.events.WindowUpdated):
            streams = (
                self.streams.values()
                if not event.stream_id
                else [s for s in (self.streams.get(event.stream_id),) if s is not None]
            )
            for stream in streams:
                stream.window.set()
        # PING, SETTINGS acknowledgements, PRIORITY, ALTSVC and unknown frames need nothing.

    def _read_head_of(
        self, stream: Stream, headers: list[tuple[bytes, bytes]], into: list[tuple[str, str]]
    ) -> None:
        """Read one header block of `stream`. A block over response_limits fails that stream
        alone (RST_STREAM): h2 decoded it, so the connection's HPACK state is sound, and the
        other calls in flight on it (a gRPC call beside one whose grpc-message is too long)
        are not failed for another request's answer."""
        try:
            self._read_head(stream, headers, into)
        except Failure as failure:
            self.end_stream(stream, failure)

    def _read_head(
        self, stream: Stream, headers: list[tuple[bytes, bytes]], into: list[tuple[str, str]]
    ) -> None:
        limits = self.limits
        for name, value in headers:
            line_bytes = len(name) + len(value) + 4  # as an HTTP/1.1 line: ": " and CRLF
            if name == b":status":
                if len(value) != 3 or not value.isdigit():
                    raise Failure("malformed_response", "HTTP/2 :status is not a 3-digit code")
                stream.status = int(value)
                continue
            if line_bytes > limits.header_line_bytes:
                raise Failure(
                    "malformed_response",
                    f"a {line_bytes}-byte header field ({name[:40]!r}) exceeds "
                    f"header_line_bytes ({limits.header_line_bytes})",
                )
            if len(stream.headers) + len(stream.trailers) >= limits.header_fields:
                raise Failure(
                    "malformed_response",
                    f"more than header_fields ({limits.header_fields}) header fields",
                )
            stream.header_bytes += line_bytes
            if stream.header_bytes > limits.header_bytes:
                raise Failure(
                    "malformed_response",
                    f"response head over header_bytes ({limits.header_bytes} bytes)",
                )
            into.append((name.decode("latin-1"), value.decode("latin-1")))

    def _going_away(self, event: h2.events.ConnectionTerminated) -> None:
        self.going_away = True
        last = event.last_stream_id or 0
        code = _code_name(event.error_code)
        for stream_id in [i for i in self.streams if i > last]:
            stream = self.streams.pop(stream_id)
            failure = Failure(
                "reset", f"the server closed the connection (GOAWAY {code}) before the stream"
            )
            # RFC 9113 section 6.8: streams above the last ID were not processed.
            failure.before_answer = True
            stream.settle(failure)
        if not self.ready.done():
            self.ready.set_exception(
                Failure("reset", f"the server closed the connection (GOAWAY {code})")
            )
            self.ready.exception()  # retrieved: nobody may be waiting on it
        self._close_if_spent()

    # internals
    def _close_if_spent(self) -> None:
        if self.going_away and not self.streams and self.transport is not None:
            self.closed = True
            self.transport.close()

    def _protocol_error(self, exc: Exception) -> None:
        self._flush()  # h2's GOAWAY with the error, when it prepared one
        if not self.ready.done():
            message = f"the server does not answer in HTTP/2: {exc or type(exc).__name__}"
        else:
            message = f"HTTP/2 protocol error: {type(exc).__name__}: {exc}"
        self._fail_all(Failure("malformed_response", message))
        self.abort()

    def _fail_all(self, failure: Failure) -> None:
        if self.failed is None:
            self.failed = failure
        streams, self.streams = list(self.streams.values()), {}
        for stream in streams:
            each = Failure(failure.failure.error_class, failure.failure.message)
            each.before_answer = stream.received_bytes == 0
            stream.settle(each)
        if not self.ready.done():
            self.ready.set_exception(failure)
            self.ready.exception()  # retrieved: nobody may be waiting on it

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def _code_name(code: object) -> str:
    return code.name if isinstance(code, h2.errors.ErrorCodes) else str(code)
