"""python-hyper's `h2` client state machine as the lean transport drives it, with the faults
RFC 9113 makes the error of one stream kept to that stream. No I/O: `h2_connection` feeds it
bytes and reads its events.

h2 raises a connection error (every stream on the connection fails) for faults that concern
one answer alone. Here:

- A malformed answer (RFC 9113 sections 8.1.1, 8.2.1, 8.2.2, 8.3): a field name or value
  HTTP/2 forbids, a connection-specific field, a pseudo-header field that is unknown,
  repeated, after a regular field or in trailers, a head without `:status`, trailers without
  END_STREAM, an informational head with END_STREAM, a Content-Length that is no number or
  that the body does not match, DATA before the head. Each header block is checked once
  HPACK has decoded it (so the connection's HPACK state stays sound) and before h2's stream
  state takes it: the stream alone is reset (RST_STREAM PROTOCOL_ERROR) and a
  `StreamMalformed` event says why. h2's own check of inbound fields is off
  (`validate_inbound_headers`), this one replaces it.
- A HEADERS frame on a stream whose answer was complete (END_STREAM seen): RST_STREAM
  STREAM_CLOSED, the answer stays as it was (h2 already does this for DATA). RFC 9113 section
  5.1 lets an endpoint call this a connection error; failing the other answers in flight for
  one server's late frame would report failures no request of theirs caused.
- A stream made to depend on itself (by PRIORITY, or HEADERS with PRIORITY; RFC 9113 section
  5.3.1) and a WINDOW_UPDATE of 0 on a stream (section 6.9): stream errors of PROTOCOL_ERROR,
  reported as a `StreamMalformed` of that stream.
- A GOAWAY spares the streams up to its last stream ID (see `H2State`).

What remains a connection error (a frame HPACK cannot decode, flow control broken, bytes
that are not HTTP/2, HEADERS on a stream the server opened) still fails every stream, but the
events of the frames before it in the same read are kept (`H2State.received`): what completed
before the fault does not depend on how the bytes were split into reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.stream
import hpack
from hyperframe.frame import (
    DataFrame,
    Frame,
    HeadersFrame,
    PriorityFrame,
    RstStreamFrame,
    WindowUpdateFrame,
)

# RFC 9113 section 8.2.1: no control character, space, upper case, DEL or non-ASCII byte in a
# field name, and no colon but a pseudo-header field's first.
_BAD_NAME: Final = re.compile(rb"[\x00-\x20A-Z:\x7f-\xff]")
_BAD_VALUE: Final = re.compile(rb"[\x00\r\n]")
# RFC 9113 section 8.2.2: connection-specific fields make a message malformed.
_CONNECTION_SPECIFIC: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
# The states in which the server may still send on a stream this client opened.
_RECEIVING: Final = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_LOCAL)
_Header = tuple[bytes, bytes]
# The statuses of an answer defined to have no content (RFC 9110 section 6.4.1; a response to
# HEAD too, which h2 knows of itself).
_NO_CONTENT: Final = frozenset({b"204", b"304"})
# No answer is 10^19 bytes or more; a longer Content-Length could also pass Python's limit on
# the digits it turns into an int (4300), which h2 would meet as a connection error.
_LENGTH_DIGITS: Final = 19


def _shown(name: bytes) -> str:
    return ascii(name[:40].decode("latin-1"))


def answer_problem(headers: list[_Header], *, trailers: bool, end_stream: bool) -> str | None:
    """What makes this decoded header block of an answer malformed (RFC 9113), or None.
    `trailers`: a final head came before it; `end_stream`: its HEADERS frame ends the stream.
    Field values are never quoted: a server may reflect a credential in one."""
    seen_regular = False
    status: bytes | None = None
    length: bytes | None = None
    for name, value in headers:
        if not name:
            return "an empty field name (RFC 9110 section 5.1)"
        if name[0] == 0x3A:  # a pseudo-header field
            if trailers:
                return f"pseudo-header field {_shown(name)} in trailers (RFC 9113 section 8.1)"
            if seen_regular:
                return (
                    f"pseudo-header field {_shown(name)} after a regular field "
                    "(RFC 9113 section 8.3)"
                )
            if name != b":status":
                return (
                    f"pseudo-header field {_shown(name)}, which no response holds "
                    "(RFC 9113 section 8.3.2)"
                )
            if status is not None:
                return "a second :status (RFC 9113 section 8.3.2)"
            status = value
            continue
        seen_regular = True
        bad = _BAD_NAME.search(name)
        if bad is not None:
            what = "upper case" if bad.group().isupper() else f"the byte {bad.group()!r}"
            return f"{what} in the field name {_shown(name)} (RFC 9113 section 8.2.1)"
        if name in _CONNECTION_SPECIFIC or (name == b"te" and value.lower() != b"trailers"):
            return f"the connection-specific field {_shown(name)} (RFC 9113 section 8.2.2)"
        if value:
            if _BAD_VALUE.search(value) is not None:
                return f"CR, LF or NUL in the value of {_shown(name)} (RFC 9113 section 8.2.1)"
            if value[0] in b" \t" or value[-1] in b" \t":
                return f"white space around the value of {_shown(name)} (RFC 9113 section 8.2.1)"
        if name == b"content-length":
            # h2 reads it to check the body's length: refused here first, for this stream.
            if not value.isdigit() or not value.isascii():
                return "a content-length that is no number (RFC 9110 section 8.6)"
            if len(value) > _LENGTH_DIGITS:
                return (
                    f"a content-length of more than {_LENGTH_DIGITS} digits, longer than any "
                    "answer (RFC 9110 section 8.6)"
                )
            if length is not None and int(value) != int(length):
                return "two content-length fields that differ (RFC 9110 section 8.6)"
            length = value
    if trailers:
        if not end_stream:
            return "trailers without END_STREAM (RFC 9113 section 8.1)"
    elif status is None:
        return "a head without :status (RFC 9113 section 8.3.2)"
    elif status[:1] == b"1" and end_stream:
        return "an informational (1xx) head with END_STREAM (RFC 9113 section 8.1)"
    return None


class StreamMalformed(h2.events.Event):
    """The answer on `stream_id` was malformed; that stream alone was reset."""

    def __init__(self, stream_id: int, detail: str) -> None:
        self.stream_id = stream_id
        self.detail = detail


class _Malformed(Exception):
    """Raised from the decoder, past HPACK (whose state is updated) and before h2's stream
    state, so that only the stream is reset."""


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding for the request's fields. They are few, short and ASCII,
    the ones that repeat are indexed after the first request, and the one that changes (the
    traceparent) would be Huffman-coded in pure Python on every send for a dozen bytes."""

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return super().encode(headers, huffman=False)


class _CheckingDecoder(hpack.Decoder):
    """HPACK decoding that runs `check` (set for one block at a time) on what it decoded."""

    check: Callable[[list[_Header]], str | None] | None = None

    def decode(self, data: bytes, raw: bool = False) -> Any:
        headers = super().decode(data, raw=raw)
        check, self.check = self.check, None
        if check is not None:
            problem = check(cast(list[_Header], headers))  # raw: bytes, as a list
            if problem is not None:
                raise _Malformed(problem)
        return headers


class _EmptyWindowUpdate(WindowUpdateFrame):
    """A WINDOW_UPDATE of 0 on a stream. hyperframe refuses to parse one, which h2 makes a
    connection error; RFC 9113 section 6.9 makes it an error of that stream alone."""


# A frame header: a 24-bit length, a type, flags and a 31-bit stream ID (RFC 9113 section 4.1).
_WINDOW_UPDATE_TYPE: Final = 0x8
_WINDOW_UPDATE_BYTES: Final = 9 + 4


class _FrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's frame buffer, handing on a stream's WINDOW_UPDATE of 0 as `_EmptyWindowUpdate`."""

    def __next__(self) -> Frame:
        data = self._data
        if (
            len(data) >= _WINDOW_UPDATE_BYTES
            and data[3] == _WINDOW_UPDATE_TYPE
            and data[0:3] == b"\x00\x00\x04"
            and int.from_bytes(data[5:9]) & 0x7FFFFFFF
            and not int.from_bytes(data[9:13]) & 0x7FFFFFFF
        ):
            frame = _EmptyWindowUpdate(int.from_bytes(data[5:9]) & 0x7FFFFFFF)
            del data[:_WINDOW_UPDATE_BYTES]
            # Through the header-block check: between HEADERS and its CONTINUATION, any
            # other frame is still a connection error (RFC 9113 section 6.10).
            handed = self._update_header_buffer(frame)
            return handed if handed is not None else self.__next__()
        return super().__next__()


class H2State(h2.connection.H2Connection):
    """h2's client connection with the faults of one answer kept to its stream (see the module
    docstring), allowed to finish the streams a GOAWAY spares.

    RFC 9113 section 6.8: streams up to the GOAWAY's last stream ID may still complete, and
    nginx sends a graceful GOAWAY after keepalive_requests then answers the streams in flight.
    h2 closes its state machine on any GOAWAY and then refuses every later frame
    (python-hyper/h2 issue #1181): the state is kept open here, and no new stream is started
    on a connection that got one (`H2Connection.going_away`)."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config)
        self.encoder = _PlainEncoder()
        self.checking = self.decoder = _CheckingDecoder()
        self.incoming_buffer = _FrameBuffer(server=False)
        self._frame_dispatch_table[_EmptyWindowUpdate] = self._receive_empty_window_update
        # The events of the frames handled so far in the current `receive_data`.
        self.received: list[h2.events.Event] = []

    def receive_data(self, data: Any) -> list[h2.events.Event]:
        self.received = []
        return super().receive_data(data)

    def _receive_frame(self, frame: Frame) -> list[h2.events.Event]:
        try:
            events = super()._receive_frame(frame)
        except h2.exceptions.StreamClosedError as exc:
            if not (
                isinstance(frame, HeadersFrame) and self._stream_is_closed_by_end(exc.stream_id)
            ):
                raise
            # A HEADERS frame after the answer's END_STREAM: its block is decoded (the
            # HPACK state stays in step), the frame is refused for this stream alone.
            self._prepare_for_sending(
                [_reset_frame(exc.stream_id, h2.errors.ErrorCodes.STREAM_CLOSED)]
            )
            events = []
        self.received.extend(events)
        return events

    def _receive_headers_frame(
        self, frame: HeadersFrame
    ) -> tuple[list[Frame], list[h2.events.Event]]:
        stream = self.streams.get(frame.stream_id)
        if stream is None and frame.stream_id % 2 == 0:
            # h2 would take it as a request, and read (and quote) its content-length unchecked.
            raise h2.exceptions.ProtocolError(
                f"HEADERS on stream {frame.stream_id}, which a server may open by PUSH_PROMISE "
                "alone (RFC 9113 section 8.4), and push is off"
            )
        no_content = False
        if stream is not None and stream.state_machine.state in _RECEIVING:
            trailers = bool(stream.state_machine.headers_received)
            end_stream = "END_STREAM" in frame.flags
            on_itself = "PRIORITY" in frame.flags and frame.depends_on == frame.stream_id
            # h2 compares the body with the content-length on DATA frames alone: trailers
            # that end the stream would end a short body unnoticed.
            expected = stream._expected_content_length if trailers else None
            actual = stream._actual_content_length

            def check(headers: list[_Header]) -> str | None:
                nonlocal no_content
                if on_itself:
                    return _on_itself(frame.stream_id)
                problem = answer_problem(headers, trailers=trailers, end_stream=end_stream)
                if problem is None and expected is not None and expected != actual:
                    return _length_problem(expected, actual)
                if problem is None and not trailers:
                    no_content = headers[0][1] in _NO_CONTENT  # a head checked: :status first
                return problem

            self.checking.check = check
        try:
            received = super()._receive_headers_frame(frame)
        except _Malformed as malformed:
            return self._malformed(frame.stream_id, f"malformed HTTP/2 answer: {malformed}")
        finally:
            self.checking.check = None
        if no_content and stream is not None:
            # RFC 9113 section 8.1.1: an answer defined to have no content may name a
            # non-zero content-length (a 304's is the representation's); h2 would hold a body
            # ended by an empty DATA frame to it.
            stream._expected_content_length = None
        return received

    def _receive_data_frame(self, frame: DataFrame) -> tuple[list[Frame], list[h2.events.Event]]:
        stream = self.streams.get(frame.stream_id)
        if (
            stream is not None
            and stream.state_machine.state in _RECEIVING
            and not stream.state_machine.headers_received
        ):
            # h2 would fail the connection ("cannot receive data before headers"). The frame
            # counts against the connection's window as any DATA does, and is given back.
            events = self.state_machine.process_input(h2.connection.ConnectionInputs.RECV_DATA)
            length = frame.flow_controlled_length
            self._inbound_flow_control_window_manager.window_consumed(length)
            frames, malformed = self._malformed(
                frame.stream_id,
                "malformed HTTP/2 answer: DATA before the head (RFC 9113 section 8.1)",
            )
            self.acknowledge_received_data(length, frame.stream_id)
            return frames, events + malformed
        try:
            return super()._receive_data_frame(frame)
        except h2.exceptions.InvalidBodyLengthError as exc:
            # Counted against the connection's window by h2 already: given back, as for the
            # DATA of any stream that ends.
            frames, events = self._malformed(
                frame.stream_id,
                "malformed HTTP/2 answer: "
                + _length_problem(exc.expected_length, exc.actual_length),
            )
            self.acknowledge_received_data(frame.flow_controlled_length, frame.stream_id)
            return frames, events

    def _receive_priority_frame(self, frame: Frame) -> tuple[list[Frame], list[h2.events.Event]]:
        if isinstance(frame, PriorityFrame) and frame.depends_on == frame.stream_id:
            events = self.state_machine.process_input(h2.connection.ConnectionInputs.RECV_PRIORITY)
            detail = f"HTTP/2 stream error: {_on_itself(frame.stream_id)}"
            frames, failed = self._stream_error(frame.stream_id, detail)
            return frames, events + failed
        return super()._receive_priority_frame(frame)  # type: ignore[arg-type]

    def _receive_empty_window_update(
        self, frame: _EmptyWindowUpdate
    ) -> tuple[list[Frame], list[h2.events.Event]]:
        events = self.state_machine.process_input(h2.connection.ConnectionInputs.RECV_WINDOW_UPDATE)
        detail = (
            f"HTTP/2 stream error: a WINDOW_UPDATE of 0 on stream {frame.stream_id} "
            "(RFC 9113 section 6.9)"
        )
        frames, failed = self._stream_error(frame.stream_id, detail)
        return frames, events + failed

    def _stream_error(
        self, stream_id: int, detail: str
    ) -> tuple[list[Frame], list[h2.events.Event]]:
        # A frame about a stream this client is not waiting on (never opened, or done with)
        # concerns no answer: it is let go. RST_STREAM on an idle stream would itself be a
        # connection error (RFC 9113 section 5.1).
        stream = self.streams.get(stream_id)
        if stream is None or stream.state_machine.state not in _RECEIVING:
            return [], []
        return self._malformed(stream_id, detail)

    def _malformed(self, stream_id: int, detail: str) -> tuple[list[Frame], list[h2.events.Event]]:
        # RFC 9113 section 8.1.1: a malformed response is a stream error of PROTOCOL_ERROR.
        stream = self.streams.get(stream_id)
        if stream is not None and not stream.closed:
            self.reset_stream(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        else:
            self._prepare_for_sending(
                [_reset_frame(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)]
            )
        return [], [StreamMalformed(stream_id, detail)]

    def _receive_goaway_frame(self, frame: Frame) -> tuple[list[Frame], list[h2.events.Event]]:
        state = self.state_machine.state
        frames, events = super()._receive_goaway_frame(frame)  # type: ignore[arg-type]
        if state is not h2.connection.ConnectionState.CLOSED:
            self.state_machine.state = state
        return frames, events


def _on_itself(stream_id: int) -> str:
    return f"the server made stream {stream_id} depend on itself (RFC 9113 section 5.3.1)"


def _length_problem(expected: int, actual: int) -> str:
    ended = "came to" if actual < expected else "reached"
    return (
        f"content-length says {expected} bytes, the body {ended} {actual} (RFC 9113 section 8.1.1)"
    )


def _reset_frame(stream_id: int, code: h2.errors.ErrorCodes) -> RstStreamFrame:
    frame = RstStreamFrame(stream_id)
    frame.error_code = code
    return frame
