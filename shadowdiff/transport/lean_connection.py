"""One HTTP/1.1 connection of the lean transport: the request written on an asyncio protocol,
the response parsed by httptools (llhttp) into an `Exchange`, with `defaults.response_limits`
enforced as the bytes arrive. Pooling and timeouts are `lean`'s. Also what every protocol of
the lean transport (HTTP/1.1, HTTP/2, the WebSocket probe) shares: its `Failure`, and the
timings and failed observations it builds.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Final, Protocol, cast

import httptools

from shadowdiff.content_coding import ContentDigest, past_capture
from shadowdiff.endpoint import HeadLimits
from shadowdiff.observation import ErrorClass, Observation, Timings, TlsSession, TransportFailure
from shadowdiff.spec import Side

# Copied for each response: creating a hash object makes OpenSSL 3 look the algorithm up under
# a lock every time, which showed as several percent of a replay's CPU.
_SHA256: Final = hashlib.sha256()


class Failure(Exception):
    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.failure = TransportFailure(error_class, message)
        # A reused connection ended before any byte of the answer (see `may_retry`).
        self.before_answer = False
        # It happened on a connection opened before this request (HTTP/2 sets it).
        self.reused = False


class Awaited(Protocol):
    """What waits for an answer until a deadline: an HTTP/1.1 connection or an HTTP/2 stream.
    The transport's sweeper fails it when its deadline passes, and close() cuts it."""

    deadline_ns: int

    def fail(self, failure: Failure) -> None: ...

    def abort(self) -> None: ...


class Exchange:
    """The state of one request on one connection, filled in by the parser callbacks."""

    __slots__ = (
        "body",
        "body_bytes",
        "bytes_after_end",
        "capture",
        "content",
        "digest",
        "done",
        "ended_ns",
        "first_byte_ns",
        "head_bytes",
        "head_only",
        "header_bytes",
        "headers",
        "keep_alive",
        "reason",
        "received_bytes",
        "started_ns",
        "status",
        "trailers",
        "version",
    )

    def __init__(
        self, capture: int, head_only: bool, started_ns: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.capture = capture
        self.head_only = head_only
        self.started_ns = started_ns
        self.done: asyncio.Future[None] = loop.create_future()
        self.headers: list[tuple[str, str]] = []
        # The trailer section of a chunked body (RFC 9112 section 7.1.2): fields apart from the
        # head, which no recipient may merge into it (RFC 9110 section 6.5.1).
        self.trailers: list[tuple[str, str]] = []
        self.status: int | None = None
        self.reason: str | None = None
        self.version: str | None = None
        self.first_byte_ns: int | None = None
        # When the parser finished the message: the response's end as the wire saw it, not
        # when the awaiting coroutine got its turn on the event loop (wrk times it the same way).
        self.ended_ns = 0
        self.body = bytearray()
        self.body_bytes = 0
        # Bytes that arrived with the response, after its end (another response, or junk):
        # no request asked for them, so the response itself is suspect.
        self.bytes_after_end = False
        self.head_bytes = 0  # bytes received before the head was complete
        self.received_bytes = 0  # every byte received for it: 0 means no answer began
        self.header_bytes = 0  # header lines parsed, trailers included
        self.digest = _SHA256.copy()
        # The content's digest, begun once the body outgrows `capture` (see `ContentDigest`).
        self.content: ContentDigest | None = None
        # llhttp forgets keep-alive once the message ends, so it is read at that moment.
        self.keep_alive = False


def _note_bytes_after_end(exchange: Exchange) -> None:
    """A parser error after `exchange` ended: bytes no request asked for that are no response
    make the answer malformed, except after a 101 Switching Protocols, where they are the new
    protocol's."""
    if exchange.done.done() and exchange.status != 101:
        exchange.bytes_after_end = True


def _ends_at_close(exchange: Exchange) -> bool:
    names = {name.lower() for name, _ in exchange.headers}
    return "content-length" not in names and "transfer-encoding" not in names


# Decoded header lines, with their size on the wire, by their raw bytes; cleared when full
# (Date changes every second). Only short lines are kept: the lines that repeat are short, and
# 4096 lines of 64 KiB (response_limits allows them) would hold half a gigabyte.
_HEADER_LINES: dict[tuple[bytes, bytes], tuple[tuple[str, str], int]] = {}
_HEADER_LINES_KEPT: Final = 4096
_HEADER_LINE_CACHED_BYTES: Final = 256


def _header_line(name: bytes, value: bytes) -> tuple[tuple[str, str], int]:
    """A header line decoded, and its bytes on the wire (with ": " and CRLF)."""
    known = ((name.decode("latin-1"), value.decode("latin-1")), len(name) + len(value) + 4)
    if known[1] <= _HEADER_LINE_CACHED_BYTES:
        if len(_HEADER_LINES) >= _HEADER_LINES_KEPT:
            _HEADER_LINES.clear()
        _HEADER_LINES[(name, value)] = known
    return known


def _response_parser(protocol: object) -> httptools.HttpResponseParser:
    """llhttp as lenient as aiohttp's client makes it for responses (and as browsers are):
    control characters in header values, LF without CR, spaces after a chunk size. Both
    transports then call the same answers malformed."""
    parser = httptools.HttpResponseParser(protocol)
    parser.set_dangerous_leniencies(
        lenient_headers=True,
        lenient_optional_cr_before_lf=True,
        lenient_spaces_after_chunk_size=True,
    )
    return parser


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: writes a request, parses the response with httptools."""

    __slots__ = (
        "closed",
        "deadline_ns",
        "exchange",
        "limits",
        "loop",
        "lost",
        "parser",
        "tls",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: HeadLimits) -> None:
        self.loop = loop
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self.parser = _response_parser(self)
        self.exchange: Exchange | None = None
        self.deadline_ns = 0
        self.closed = False
        self.tls: TlsSession | None = None
        # Resolved once the loop has closed the socket: `closed` is set as soon as a close is
        # asked for, the socket goes later (after TLS's close_notify, or a loop turn).
        self.lost: asyncio.Future[None] = loop.create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP connection's transport reads and writes: asyncio types it as the base class.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            # Bytes nobody asked for: the connection is no longer in a known state.
            self.abort()
            return
        exchange.received_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # llhttp stops at the end of a 101's head: what follows is the new protocol's.
            self.upgraded(data[upgrade.args[0] :])
            self._finish()
        except httptools.HttpParserCallbackError as exc:
            # A callback refused the head (response_limits); llhttp wraps what it raised.
            _note_bytes_after_end(exchange)  # when it was a response nobody asked for
            cause = exc.__context__
            self.fail(
                cause
                if isinstance(cause, Failure)
                else Failure("malformed_response", f"invalid HTTP response: {exc}")
            )
            return
        except httptools.HttpParserError as exc:
            _note_bytes_after_end(exchange)  # e.g. llhttp's "Data after Connection: close"
            self.fail(Failure("malformed_response", f"invalid HTTP response: {exc}"))
            return
        if exchange.status is None:
            # llhttp buffers a line until it ends: count what it holds, so that one endless
            # header line cannot grow it past the limit.
            # The status line is not a header: allow one line more than the headers' total.
            limits = self.limits
            exchange.head_bytes += len(data)
            if exchange.head_bytes > limits.header_bytes + limits.header_line_bytes:
                self.fail(_head_too_large(self.limits))
                return
        if exchange.head_only and exchange.status is not None and not exchange.done.done():
            # A response to HEAD has no body whatever its Content-Length says; the parser cannot
            # know the request was HEAD, so the message ends here and a fresh parser takes over.
            self.parser = _response_parser(self)
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        exchange = self.exchange
        if exchange is not None and not exchange.done.done():
            if exchange.status is not None and not exchange.head_only and _ends_at_close(exchange):
                # RFC 9112 section 6.3: with neither Content-Length nor chunked framing, the
                # body is whatever arrived before the server closed the connection.
                exchange.keep_alive = False
                exchange.ended_ns = time.perf_counter_ns()
                exchange.done.set_result(None)
            else:
                message = f"connection closed before the response was complete ({exc or 'EOF'})"
                exchange.done.set_exception(Failure("reset", message))

    # httptools callbacks
    def on_message_begin(self) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.done.done():
            # A second response in the same read, which no request asked for: it goes to an
            # exchange of its own, not over the first one's status and headers, and the
            # connection is not reused. Well-formed, it is dropped (as aiohttp's client does);
            # malformed, the parser error marks the first response (data_received).
            exchange.keep_alive = False
            stray = Exchange(0, False, 0, self.loop)
            # Resolved from the start: nothing awaits it, so it must never hold an exception
            # (asyncio would print "Future exception was never retrieved").
            stray.done.set_result(None)
            self.exchange = stray

    def on_status(self, status: bytes) -> None:
        assert self.exchange is not None
        if len(status) > self.limits.header_line_bytes:
            raise Failure("malformed_response", "status line longer than header_line_bytes")
        self.exchange.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        # Most header lines repeat from one response to the next: each is decoded and
        # measured once.
        known = _HEADER_LINES.get((name, value))
        if known is None:
            known = _header_line(name, value)
        line, line_bytes = known
        limits = self.limits
        if line_bytes > limits.header_line_bytes:
            raise Failure(
                "malformed_response",
                f"a {line_bytes}-byte header line ({name[:40]!r}) exceeds header_line_bytes "
                f"({limits.header_line_bytes})",
            )
        # llhttp calls on_header for the trailer section too, once the head is complete.
        headers = exchange.headers if exchange.status is None else exchange.trailers
        if len(exchange.headers) + len(exchange.trailers) >= limits.header_fields:
            raise Failure(
                "malformed_response",
                f"more than header_fields ({limits.header_fields}) header fields",
            )
        exchange.header_bytes += line_bytes
        if exchange.header_bytes > limits.header_bytes:
            raise _head_too_large(limits)
        headers.append(line)

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.first_byte_ns = time.perf_counter_ns()
        exchange.status = self.parser.get_status_code()
        exchange.version = self.parser.get_http_version()
        exchange.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.digest.update(body)
        exchange.body_bytes += len(body)
        room = exchange.capture - len(exchange.body)
        if len(body) <= room:
            exchange.body += body
        else:
            exchange.content = past_capture(
                exchange.content, exchange.headers, exchange.body, body, room
            )

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is not None:
            if (
                exchange.status is not None
                and 100 <= exchange.status < 200
                and exchange.status != 101
            ):
                # An interim answer (100 Continue, 103 Early Hints): the final one follows on
                # the same connection (RFC 9110 section 15.2), as aiohttp's client reads it.
                exchange.status = exchange.reason = exchange.version = None
                exchange.headers = []
                exchange.trailers = []
                exchange.head_bytes = exchange.header_bytes = 0
                return
            exchange.keep_alive = self.parser.should_keep_alive()
        self._finish()

    # internals
    def upgraded(self, after_head: bytes) -> None:
        """The server switched protocols (101 with Upgrade): `after_head` is what arrived after
        the head in the same read. HTTP has nothing more to read on this connection; the
        WebSocket probe takes the bytes over."""

    def _finish(self) -> None:
        exchange = self.exchange
        if exchange is not None and not exchange.done.done():
            exchange.ended_ns = time.perf_counter_ns()
            exchange.done.set_result(None)

    def fail(self, failure: Failure) -> None:
        exchange = self.exchange
        if exchange is not None and not exchange.done.done():
            exchange.done.set_exception(failure)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _head_too_large(limits: HeadLimits) -> Failure:
    return Failure(
        "malformed_response", f"response head over header_bytes ({limits.header_bytes} bytes)"
    )


def answer_timings(
    started_ns: int,
    timings: dict[str, int],
    first_byte_ns: int | None = None,
    ended_ns: int | None = None,
) -> Timings:
    """An answer's phases from the moments the lean transport noted (`timings` holds the
    connection's opening, when it was opened for this request); `ended_ns` None is now."""
    return Timings(
        started_ns=started_ns,
        connect_ns=timings.get("connect_ns"),
        tls_ns=timings.get("tls_ns"),
        first_byte_ns=None if first_byte_ns is None else first_byte_ns - started_ns,
        total_ns=(time.perf_counter_ns() if ended_ns is None else ended_ns) - started_ns,
    )


def failed_observation(
    side: Side,
    failure: TransportFailure,
    started_ns: int,
    timings: dict[str, int],
    *,
    retried: bool = False,
) -> Observation:
    """The failure that took the place of an answer, timed until now."""
    return Observation(
        side=side,
        failure=failure,
        retried=retried,
        timings=answer_timings(started_ns, timings),
    )
