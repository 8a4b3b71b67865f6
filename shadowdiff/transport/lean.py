"""The lean transport: HTTP/1.1 written directly on the event loop's protocols (uvloop when
installed), responses parsed by httptools (llhttp, the parser Node.js uses). One connection
carries one request at a time (no pipelining), pooled per target with keep-alive.

It exists because a general client library costs several times more CPU per request than the
replay needs (see benchmarks/). It records everything an observation holds, times TCP connect
and TLS handshake apart (a general client does both in one call), and classifies failures in
the same classes as the aiohttp transport.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import time
from collections import deque
from typing import Final

import httptools
from yarl import URL

from shadowdiff.observation import ErrorClass, Observation, Timings, TlsSession, TransportFailure
from shadowdiff.scenario.load import Scenario
from shadowdiff.scenario.model import ResponseLimits
from shadowdiff.spec import RequestSpec, RequestTls, Side
from shadowdiff.transport import USER_AGENT, may_retry
from shadowdiff.transport.failures import classify_os_error
from shadowdiff.transport.tls import ClientContexts, tls_session
from shadowdiff.wire import refusal

# Copied for each response: creating a hash object makes OpenSSL 3 look the algorithm up under
# a lock every time, which showed as several percent of a replay's CPU.
_SHA256: Final = hashlib.sha256()
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Connections are pooled by scheme, host, port and the request's TLS settings: a request never
# rides on a connection made with another CA, verification, versions or SNI.
_Key = tuple[str, str, int, RequestTls | None]


class _Failure(Exception):
    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.failure = TransportFailure(error_class, message)
        # A reused connection ended before any byte of the answer (see `may_retry`).
        self.before_answer = False


class _Exchange:
    """The state of one request on one connection, filled in by the parser callbacks."""

    __slots__ = (
        "body",
        "body_bytes",
        "bytes_after_end",
        "capture",
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
        # llhttp forgets keep-alive once the message ends, so it is read at that moment.
        self.keep_alive = False


def _note_bytes_after_end(exchange: _Exchange) -> None:
    """A parser error after `exchange` ended: bytes no request asked for that are no response
    make the answer malformed, except after a 101 Switching Protocols, where they are the new
    protocol's."""
    if exchange.done.done() and exchange.status != 101:
        exchange.bytes_after_end = True


def _ends_at_close(exchange: _Exchange) -> bool:
    names = {name.lower() for name, _ in exchange.headers}
    return "content-length" not in names and "transfer-encoding" not in names


# Decoded header lines by their raw bytes; cleared when full (Date changes every second).
# Only short lines are kept: the lines that repeat are short, and 4096 lines of 64 KiB
# (response_limits allows them) would hold half a gigabyte.
_HEADER_LINES: dict[tuple[bytes, bytes], tuple[str, str]] = {}
_HEADER_LINES_KEPT: Final = 4096
_HEADER_LINE_CACHED_BYTES: Final = 256


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


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: writes a request, parses the response with httptools."""

    __slots__ = ("closed", "deadline_ns", "exchange", "parser", "pool", "tls", "transport")

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = _response_parser(self)
        self.exchange: _Exchange | None = None
        self.deadline_ns = 0
        self.closed = False
        self.tls: TlsSession | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            # Bytes nobody asked for: the connection is no longer in a known state.
            self._abort()
            return
        exchange.received_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish()
        except httptools.HttpParserCallbackError as exc:
            # A callback refused the head (response_limits); llhttp wraps what it raised.
            _note_bytes_after_end(exchange)  # when it was a response nobody asked for
            cause = exc.__context__
            self._fail(
                cause
                if isinstance(cause, _Failure)
                else _Failure("malformed_response", f"invalid HTTP response: {exc}")
            )
            return
        except httptools.HttpParserError as exc:
            _note_bytes_after_end(exchange)  # e.g. llhttp's "Data after Connection: close"
            self._fail(_Failure("malformed_response", f"invalid HTTP response: {exc}"))
            return
        if exchange.status is None:
            # llhttp buffers a line until it ends: count what it holds, so that one endless
            # header line cannot grow it past the limit.
            # The status line is not a header: allow one line more than the headers' total.
            limits = self.pool.limits
            exchange.head_bytes += len(data)
            if exchange.head_bytes > limits.header_bytes + limits.header_line_bytes:
                self._fail(_head_too_large(self.pool.limits))
                return
        if exchange.head_only and exchange.status is not None and not exchange.done.done():
            # A response to HEAD has no body whatever its Content-Length says; the parser cannot
            # know the request was HEAD, so the message ends here and a fresh parser takes over.
            self.parser = _response_parser(self)
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
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
                exchange.done.set_exception(_Failure("reset", message))

    # httptools callbacks
    def on_message_begin(self) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.done.done():
            # A second response in the same read, which no request asked for: it goes to an
            # exchange of its own, not over the first one's status and headers, and the
            # connection is not reused. Well-formed, it is dropped (as aiohttp's client does);
            # malformed, the parser error marks the first response (data_received).
            exchange.keep_alive = False
            stray = _Exchange(0, False, 0, self.pool.loop)
            # Resolved from the start: nothing awaits it, so it must never hold an exception
            # (asyncio would print "Future exception was never retrieved").
            stray.done.set_result(None)
            self.exchange = stray

    def on_status(self, status: bytes) -> None:
        assert self.exchange is not None
        if len(status) > self.pool.limits.header_line_bytes:
            raise _Failure("malformed_response", "status line longer than header_line_bytes")
        self.exchange.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        limits = self.pool.limits
        line_bytes = len(name) + len(value) + 4  # ": " and CRLF
        if line_bytes > limits.header_line_bytes:
            raise _Failure(
                "malformed_response",
                f"a {line_bytes}-byte header line ({name[:40]!r}) exceeds header_line_bytes "
                f"({limits.header_line_bytes})",
            )
        if len(exchange.headers) >= limits.header_fields:
            raise _Failure(
                "malformed_response",
                f"more than header_fields ({limits.header_fields}) header fields",
            )
        exchange.header_bytes += line_bytes
        if exchange.header_bytes > limits.header_bytes:
            raise _head_too_large(limits)
        # Most header lines repeat from one response to the next: decode each line once.
        line = _HEADER_LINES.get((name, value))
        if line is None:
            line = (name.decode("latin-1"), value.decode("latin-1"))
            if line_bytes <= _HEADER_LINE_CACHED_BYTES:
                if len(_HEADER_LINES) >= _HEADER_LINES_KEPT:
                    _HEADER_LINES.clear()
                _HEADER_LINES[(name, value)] = line
        exchange.headers.append(line)

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
        if room > 0:
            exchange.body += body[:room]

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
                exchange.head_bytes = exchange.header_bytes = 0
                return
            exchange.keep_alive = self.parser.should_keep_alive()
        self._finish()

    # internals
    def _finish(self) -> None:
        exchange = self.exchange
        if exchange is not None and not exchange.done.done():
            exchange.ended_ns = time.perf_counter_ns()
            exchange.done.set_result(None)

    def _fail(self, failure: _Failure) -> None:
        exchange = self.exchange
        if exchange is not None and not exchange.done.done():
            exchange.done.set_exception(failure)
        self._abort()

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Pool:
    """Idle keep-alive connections to one target, and how to open a new one."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        address: str,
        port_map: dict[int, int],
        contexts: ClientContexts,
        connect_timeout_s: float,
        limits: ResponseLimits,
    ) -> None:
        self.loop = loop
        self.address = address
        self.port_map = port_map
        self.contexts = contexts
        self.connect_timeout_s = connect_timeout_s
        self.limits = limits
        self.idle: dict[_Key, deque[_Connection]] = {}

    def take(self, key: _Key) -> _Connection | None:
        idle = self.idle.get(key)
        while idle:
            connection = idle.pop()
            if (
                not connection.closed
                and connection.transport is not None
                and not connection.transport.is_closing()
            ):
                return connection
        return None

    def give_back(self, key: _Key, connection: _Connection) -> None:
        if not connection.closed:
            self.idle.setdefault(key, deque()).append(connection)

    async def open(self, key: _Key, timings: dict[str, int]) -> _Connection:
        """Connect (timed), then handshake TLS (timed apart) with SNI = the production host, or
        the request's `tls.sni`."""
        scheme, host, port, tls = key
        connection = _Connection(self)
        connect_port = self.port_map.get(port, port)
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                transport, _ = await self.loop.create_connection(
                    lambda: connection, self.address, connect_port
                )
                transport.get_extra_info("socket").setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
                )
                connected = time.perf_counter_ns()
                timings["connect_ns"] = connected - started
                if scheme == "https":
                    server_name = tls.sni if tls is not None and tls.sni else host
                    tls_transport = await self.loop.start_tls(
                        transport,
                        connection,
                        self.contexts.get(tls),
                        server_hostname=server_name.rstrip("."),
                    )
                    assert tls_transport is not None
                    connection.transport = tls_transport
                    timings["tls_ns"] = time.perf_counter_ns() - connected
                    connection.tls = tls_session(tls_transport)
        except (OSError, EOFError) as exc:
            # TimeoutError, ssl.SSLError and socket.gaierror are OSErrors too.
            connection._abort()
            raise _Failure(
                *_set_up_failure(exc, host, self.address, connect_port, self.connect_timeout_s)
            ) from None
        return connection


class LeanTransport:
    """Sends requests to one target over pooled HTTP/1.1 connections."""

    def __init__(self, scenario: Scenario, side: Side, *, pool_size: int) -> None:
        target = getattr(scenario.targets, side)
        self.side: Side = side
        self._loop = asyncio.get_running_loop()
        self._body_capture = scenario.defaults.body_capture
        self._total_timeout_s = scenario.defaults.timeouts.total_s
        self._extra_headers = tuple(target.headers.items())
        self._pool = _Pool(
            self._loop,
            target.address,
            scenario.port_map(side),
            ClientContexts(target.tls, scenario.resolve_path),
            scenario.defaults.timeouts.connect_s,
            scenario.defaults.response_limits,
        )
        # Built before the run when any request is HTTPS; never when none is (loading the
        # trust store is slow, and a plain HTTP run needs none).
        if scenario.https_hosts():
            self._pool.contexts.prepare(scenario.requests)
        # Total timeouts: busy connections carry a deadline that one sweeper checks, rather
        # than a timer created and cancelled for every request.
        self._total_timeout_ns = int(self._total_timeout_s * 1e9)
        self._sweep_every_s = min(max(self._total_timeout_s / 10, 0.005), 0.1)
        self._busy: set[_Connection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # Serialised requests, per request spec: built once, sent many times. Keyed by id for
        # speed, with the spec kept beside its bytes: an id is reused once its spec is freed,
        # and the bytes of a freed spec must never go out for a new one.
        self._wire: dict[int, tuple[RequestSpec, _Key, bytes, bool]] = {}

    def _serialise(self, request: RequestSpec) -> tuple[_Key, bytes, bool]:
        # The last line of defence: a CR or LF written here would end the header block and
        # let the rest of a value become a second request that nobody allowed.
        reason = refusal(
            request.method,
            request.url,
            (*request.headers, *self._extra_headers),
            request.body,
            allow_unsafe=request.allow_unsafe,
        )
        if reason is not None:
            raise _Failure("not_sent", f"not sent: {reason}")
        url = URL(request.url, encoded=True)
        scheme, host = url.scheme, url.raw_host or ""
        port = url.port or _DEFAULT_PORTS[scheme]
        host_header = (
            host if url.explicit_port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
        )
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if url.explicit_port is None else f"[{host}]:{port}"
        lines = [f"{request.method} {url.raw_path_qs or '/'} HTTP/1.1", f"Host: {host_header}"]
        sent = set()
        for name, value in (*request.headers, *self._extra_headers):
            lines.append(f"{name}: {value}")
            sent.add(name.lower())
        # The same defaults the aiohttp transport sends, so both transports look alike.
        if "user-agent" not in sent:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept" not in sent:
            lines.append("Accept: */*")
        if request.body is not None:
            lines.append(f"Content-Length: {len(request.body)}")
        elif request.method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        retry = may_retry(request, self._extra_headers)
        tls = request.tls if scheme == "https" else None
        return (scheme, host, port, tls), head + (request.body or b""), retry

    async def send(self, request: RequestSpec) -> Observation:
        started_ns = time.perf_counter_ns()
        wire = self._wire.get(id(request))
        if wire is None or wire[0] is not request:
            try:
                wire = self._wire[id(request)] = (request, *self._serialise(request))
            except _Failure as refused:
                return self._failed(refused.failure, started_ns, {})
        _, key, payload, retry = wire
        head_only = request.method == "HEAD"
        connection = self._pool.take(key)
        timings: dict[str, int] = {}
        try:
            return await self._exchange(connection, key, payload, head_only, started_ns, timings)
        except _Failure as failure:
            if not (retry and connection is not None and failure.before_answer):
                return self._failed(failure.failure, started_ns, timings)
        # The reused connection was closed under the request before any answer began: the
        # server had timed it out. Once more on a new connection, timed from the first try.
        timings = {}
        try:
            return await self._exchange(
                None, key, payload, head_only, started_ns, timings, retried=True
            )
        except _Failure as failure:
            return self._failed(failure.failure, started_ns, timings, retried=True)

    async def _exchange(
        self,
        connection: _Connection | None,
        key: _Key,
        payload: bytes,
        head_only: bool,
        started_ns: int,
        timings: dict[str, int],
        *,
        retried: bool = False,
    ) -> Observation:
        """One request on `connection` (a new one when None). Raises `_Failure`, with
        `before_answer` set when a reused connection ended before any byte came back."""
        reused = connection is not None
        exchange: _Exchange | None = None
        try:
            if connection is None:
                connection = await self._pool.open(key, timings)
            exchange = _Exchange(self._body_capture, head_only, started_ns, self._loop)
            connection.exchange = exchange
            connection.deadline_ns = started_ns + self._total_timeout_ns
            self._busy.add(connection)
            if self._sweeper is None:
                self._sweeper = self._loop.create_task(self._sweep())
            assert connection.transport is not None
            connection.transport.write(payload)
            await exchange.done
        except _Failure as failure:
            failure.before_answer = (
                reused
                and exchange is not None
                and exchange.received_bytes == 0
                and failure.failure.error_class == "reset"
            )
            raise
        except Exception as exc:
            if connection is not None:
                connection._abort()
            raise _Failure("other", f"{type(exc).__name__}: {exc}") from None
        finally:
            if connection is not None:
                self._busy.discard(connection)
        if exchange.bytes_after_end:
            # As aiohttp's client reports it ("Data after `Connection: close`"), so that both
            # transports say the same about a response followed by bytes no request asked for.
            connection._abort()
            raise _Failure(
                "malformed_response", "bytes after the end of the response (no request asked)"
            )
        ended_ns = exchange.ended_ns
        connection.exchange = None
        if exchange.keep_alive and not connection.closed:
            self._pool.give_back(key, connection)
        else:
            connection._abort()
        return Observation(
            side=self.side,
            status=exchange.status,
            reason=exchange.reason,
            http_version=exchange.version,
            headers=tuple(exchange.headers),
            body=bytes(exchange.body),
            body_bytes=exchange.body_bytes,
            body_sha256=exchange.digest.hexdigest(),
            timings=Timings(
                started_ns=started_ns,
                connect_ns=timings.get("connect_ns"),
                tls_ns=timings.get("tls_ns"),
                first_byte_ns=None
                if exchange.first_byte_ns is None
                else exchange.first_byte_ns - started_ns,
                total_ns=ended_ns - started_ns,
            ),
            tls=connection.tls,
            connection_reused=reused,
            retried=retried,
        )

    def _failed(
        self,
        failure: TransportFailure,
        started_ns: int,
        timings: dict[str, int],
        *,
        retried: bool = False,
    ) -> Observation:
        return Observation(
            side=self.side,
            failure=failure,
            retried=retried,
            timings=Timings(
                started_ns=started_ns,
                connect_ns=timings.get("connect_ns"),
                tls_ns=timings.get("tls_ns"),
                total_ns=time.perf_counter_ns() - started_ns,
            ),
        )

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_every_s)
            now = time.perf_counter_ns()
            for connection in [c for c in self._busy if c.deadline_ns <= now]:
                self._busy.discard(connection)
                _expire(connection, self._total_timeout_s)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for idle in self._pool.idle.values():
            for connection in idle:
                if connection.transport is not None:
                    connection.transport.close()
        self._pool.idle.clear()


def _set_up_failure(
    exc: BaseException, host: str, address: str, port: int, timeout_s: float
) -> tuple[ErrorClass, str]:
    error_class = classify_os_error(exc, connecting=True)
    if error_class == "timeout_connect":
        return error_class, f"no connection to {address}:{port} within {timeout_s} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return error_class, f"certificate verify failed for {host}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return error_class, f"TLS handshake with {host} failed: {exc}"
    if error_class == "dns":
        return error_class, f"cannot resolve {address}: {exc}"
    return error_class, f"connecting to {address}:{port} failed: {type(exc).__name__}: {exc}"


def _head_too_large(limits: ResponseLimits) -> _Failure:
    return _Failure(
        "malformed_response", f"response head over header_bytes ({limits.header_bytes} bytes)"
    )


def _expire(connection: _Connection, total_s: float) -> None:
    connection._fail(_Failure("timeout", f"no complete response within {total_s} s"))
