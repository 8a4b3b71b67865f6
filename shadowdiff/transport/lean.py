"""The lean transport: HTTP/1.1 written directly on the event loop's protocols (uvloop when
installed), responses parsed by httptools (llhttp, the parser Node.js uses). One connection
carries one request at a time (no pipelining), pooled per target with keep-alive.

It exists because a general client library costs several times more CPU per request than the
replay needs (see benchmarks/). It records everything an observation holds, times TCP connect
and TLS handshake apart (a general client does both in one call), and classifies failures in
the same classes as the aiohttp transport. One connection's wire work is `lean_connection`'s.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Coroutine, Generator
from typing import Any, Final

from shadowdiff.endpoint import Endpoint, HeadLimits
from shadowdiff.observation import Observation, TransportFailure
from shadowdiff.spec import HttpVersion, RequestSpec, RequestTls, Side
from shadowdiff.transport import Pending, may_retry, traceparent_problem
from shadowdiff.transport.dial import checked_target, dial, head_lines, sni
from shadowdiff.transport.h2_connection import H2Connection
from shadowdiff.transport.lean_connection import (
    Awaited,
    Connection,
    Exchange,
    Failure,
    answer_timings,
    failed_observation,
)
from shadowdiff.transport.lean_h2 import H1Chosen, H2Sender
from shadowdiff.transport.tls import ClientContexts, tls_session
from shadowdiff.transport.websocket import WebSocketProber

# How long closing waits for servers to answer TLS close_notify before cutting the rest: a
# server that never answers would otherwise hold a socket open past the end of the run.
_CLOSE_GRACE_S: Final = 0.5
# Connections are pooled by scheme, host, port and the request's TLS settings: a request never
# rides on a connection made with another CA, verification, versions or SNI.
_Key = tuple[str, str, int, RequestTls | None]
# A request ready to send, built once: the spec itself (see `LeanTransport._wire`), its
# connection key, the head without its blank line, the whole request, whether a failure on a
# reused connection may be retried, whether it is a HEAD, and whether `start` may write it at
# once (plain HTTP/1.1).
_Wire = tuple[RequestSpec, _Key, bytes, bytes, bool, bool, bool]


class _Pool:
    """Idle keep-alive connections to one target (at most `max_idle` per scheme, host, port
    and TLS settings), and how to open a new one."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        endpoint: Endpoint,
        contexts: ClientContexts,
        max_idle: int,
    ) -> None:
        self.loop = loop
        self.address = endpoint.address
        self.port_map = endpoint.port_map
        self.contexts = contexts
        self.connect_timeout_s = endpoint.connect_timeout_s
        self.limits: HeadLimits = endpoint.limits
        self.idle: dict[_Key, deque[Connection]] = {}
        # Per key, not in all: a cap shared by several hosts would close one host's
        # connections to make room for another's, and every new one costs a handshake.
        self.max_idle = max_idle
        # Every connection whose socket is still open, pooled, busy or closing.
        self.open_connections: set[Connection | H2Connection] = set()

    def take(self, key: _Key) -> Connection | None:
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

    def give_back(self, key: _Key, connection: Connection) -> None:
        if connection.closed:
            return
        idle = self.idle.setdefault(key, deque())
        if len(idle) >= self.max_idle:
            # More connections than the sends that can be in flight at once: one is surplus.
            if connection.transport is not None:
                connection.transport.close()
            return
        idle.append(connection)

    def adopt(self, connection: Connection | H2Connection) -> None:
        """Count `connection` among the open ones until its socket is closed."""
        self.open_connections.add(connection)
        connection.lost.add_done_callback(lambda _: self.open_connections.discard(connection))

    async def open(self, key: _Key, timings: dict[str, int]) -> Connection:
        """Connect (timed), then handshake TLS (timed apart) with SNI = the production host, or
        the request's `tls.sni`."""
        scheme, host, port, tls = key
        connection = Connection(self.loop, self.limits)
        connect_port = self.port_map.get(port, port)
        server_name = sni(scheme, host, tls)
        connection.transport = await dial(
            self.loop,
            self.address,
            connect_port,
            connection,
            tls=(self.contexts.get(tls), server_name) if scheme == "https" else None,
            host=host,
            timeout_s=self.connect_timeout_s,
            timings=timings,
            on_connected=lambda: self.adopt(connection),
        )
        if scheme == "https":
            connection.tls = tls_session(connection.transport)
        return connection


def _with_traceparent(head: bytes, request: RequestSpec, traceparent: str) -> bytes:
    """The request with its traceparent as the last header line (`head` ends before the
    blank line; the value was checked before)."""
    return head + f"traceparent: {traceparent}\r\n\r\n".encode("ascii") + (request.body or b"")


class _Written:
    """A request written on a pooled connection by `LeanTransport.start`, its answer not yet
    awaited: awaiting it awaits the answer; `cancel` gives it up and cuts the connection,
    whose state is then unknown (as a cancelled send does)."""

    __slots__ = ("_answer", "_busy", "_connection")

    def __init__(
        self,
        answer: Coroutine[Any, Any, Observation],
        connection: Connection,
        busy: set[Awaited],
    ) -> None:
        self._answer, self._connection, self._busy = answer, connection, busy

    def __await__(self) -> Generator[Any, None, Observation]:
        return self._answer.__await__()

    def cancel(self) -> bool:
        if inspect.getcoroutinestate(self._answer) == inspect.CORO_CLOSED:
            return False  # answered (its connection may be serving another request by now)
        self._answer.close()
        self._busy.discard(self._connection)
        self._connection.abort()
        return True


class LeanTransport:
    """Sends requests to one target over pooled HTTP/1.1 connections. `pool_size` is the most
    sends in flight at once; as many idle connections are kept per host (and TLS settings)
    between them, and a surplus one is closed."""

    def __init__(self, endpoint: Endpoint, *, pool_size: int) -> None:
        self.side: Side = endpoint.side
        self._loop = asyncio.get_running_loop()
        self._body_capture = endpoint.body_capture_bytes
        self._total_timeout_s = endpoint.total_timeout_s
        self._extra_headers = endpoint.headers
        self._pool = _Pool(self._loop, endpoint, ClientContexts(endpoint.tls), pool_size)
        # Built before the run when any request is HTTPS; never when none is (loading the
        # trust store is slow, and a plain HTTP run needs none).
        if endpoint.any_https:
            self._pool.contexts.prepare(endpoint.tls_overrides)
        # Total timeouts: busy connections carry a deadline that one sweeper checks, rather
        # than a timer created and cancelled for every request.
        self._total_timeout_ns = int(self._total_timeout_s * 1e9)
        self._sweep_every_s = min(max(self._total_timeout_s / 10, 0.005), 0.1)
        self._busy: set[Awaited] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # HTTP/2 (`http: "2"` or `auto`), set up by the first request that asks for it.
        self._endpoint = endpoint
        self._http: HttpVersion = endpoint.http
        self._h2: H2Sender | None = None
        self._websocket: WebSocketProber | None = None
        if endpoint.http_versions - {"1.1"}:
            self._h2 = H2Sender(endpoint, self._pool.adopt, self._busy, self._watch)
        # Serialised requests, per request spec: built once, sent many times. Keyed by id for
        # speed, with the spec kept beside its bytes: an id is reused once its spec is freed,
        # and the bytes of a freed spec must never go out for a new one.
        # With the head alone (a send with a traceparent adds its line) and the whole
        # request as sent without one.
        self._wire: dict[int, _Wire] = {}

    def _prepared(self, request: RequestSpec) -> _Wire:
        key, head, retry = self._serialise(request)
        mode = request.http or self._http
        # What `start` may write at once: plain HTTP/1.1, decided once per request.
        plain_h1 = (
            (mode == "1.1" or (mode == "auto" and key[0] != "https"))
            and request.websocket is None
            and request.grpc is None
        )
        payload = head + b"\r\n" + (request.body or b"")
        return request, key, head, payload, retry, request.method == "HEAD", plain_h1

    def _serialise(self, request: RequestSpec) -> tuple[_Key, bytes, bool]:
        """The connection key, the head without its closing blank line, and whether a
        failure on a reused connection may be retried."""
        target = checked_target(request, self._extra_headers)
        scheme, host, port = target.scheme, target.host, target.port
        lines, sent = head_lines(request.method, target, (*request.headers, *self._extra_headers))
        # The same defaults the aiohttp transport sends, so both transports look alike.
        if "accept" not in sent:
            lines.append("Accept: */*")
        if request.body is not None:
            lines.append(f"Content-Length: {len(request.body)}")
        elif request.method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        # The head up to its last header line: a send with a traceparent adds its line
        # before the blank line that ends the head.
        head = ("\r\n".join(lines) + "\r\n").encode("ascii")
        retry = may_retry(request, self._extra_headers)
        tls = request.tls if scheme == "https" else None
        return (scheme, host, port, tls), head, retry

    def forget(self, request: RequestSpec) -> None:
        """Drop the bytes kept to send `request` again: a caller that sends each request once
        (a followed log) would otherwise make them grow with the run."""
        self._wire.pop(id(request), None)
        if self._h2 is not None:
            self._h2.forget(request)

    def _watch(self) -> None:
        """Start the deadline sweeper (once) now that something is awaited."""
        if self._sweeper is None:
            self._sweeper = self._loop.create_task(self._sweep())

    def start(self, request: RequestSpec, traceparent: str | None = None) -> Pending:
        """Send `request` and return what awaits its answer. An HTTP/1.1 request already
        prepared, with an idle connection ready, is written before this returns: no task is
        made (its cost was a tenth of a pair's); any other starts as a task, at the loop's
        next turn."""
        wire = self._wire.get(id(request))
        if (
            wire is not None
            and wire[6]
            and wire[0] is request
            and (traceparent is None or traceparent_problem(traceparent) is None)
        ):
            _, key, head, payload, retry, head_only, _ = wire
            connection = self._pool.take(key)
            if connection is not None:
                started_ns = time.perf_counter_ns()
                if traceparent is not None:
                    payload = _with_traceparent(head, request, traceparent)
                exchange = self._write(connection, payload, head_only, started_ns)
                answer = self._answer_on_pooled(
                    connection, exchange, key, payload, head_only, started_ns, retry
                )
                return _Written(answer, connection, self._busy)
        return self._loop.create_task(self.send(request, traceparent))

    async def _answer_on_pooled(
        self,
        connection: Connection,
        exchange: Exchange,
        key: _Key,
        payload: bytes,
        head_only: bool,
        started_ns: int,
        retry: bool,
    ) -> Observation:
        """`start`'s answer, retried as `_send_h1` retries one (see there)."""
        timings: dict[str, int] = {}
        try:
            return await self._answer(connection, exchange, key, started_ns, timings, reused=True)
        except Failure as failure:
            if not (retry and failure.before_answer):
                return self._failed(failure.failure, started_ns, timings)
        return await self._send_again(key, payload, head_only, started_ns)

    async def _send_again(
        self, key: _Key, payload: bytes, head_only: bool, started_ns: int
    ) -> Observation:
        """The request once more on a new connection, timed from the first try: the reused
        connection was closed under it before any answer began (the server had timed it
        out)."""
        timings: dict[str, int] = {}
        try:
            return await self._exchange(
                None, key, payload, head_only, started_ns, timings, retried=True
            )
        except Failure as failure:
            return self._failed(failure.failure, started_ns, timings, retried=True)

    async def send(self, request: RequestSpec, traceparent: str | None = None) -> Observation:
        started_ns = time.perf_counter_ns()
        if traceparent is not None and (problem := traceparent_problem(traceparent)) is not None:
            failure = TransportFailure("not_sent", f"not sent: {problem}")
            return self._failed(failure, started_ns, {})
        if request.websocket is not None:
            return await self._send_websocket(request, started_ns, traceparent)
        # gRPC is HTTP/2 only, whatever the target speaks otherwise.
        mode = "2" if request.grpc is not None else request.http or self._http
        if mode != "1.1" and (mode == "2" or request.url.startswith("https:")):
            # `auto` over plain HTTP is HTTP/1.1: nothing is negotiated without TLS.
            return await self._send_h2(request, mode, started_ns, traceparent)
        return await self._send_h1(request, started_ns, traceparent)

    async def _send_websocket(
        self, request: RequestSpec, started_ns: int, traceparent: str | None
    ) -> Observation:
        """A WebSocket probe: HTTP/1.1 whatever the `http` setting, on a connection of its own
        (`websocket.py`)."""
        if self._websocket is None:
            self._websocket = WebSocketProber(self._endpoint, self._pool.contexts, self._pool.adopt)
        return await self._websocket.send(request, started_ns, traceparent)

    async def _send_h2(
        self, request: RequestSpec, mode: HttpVersion, started_ns: int, traceparent: str | None
    ) -> Observation:
        if self._h2 is None:
            self._h2 = H2Sender(self._endpoint, self._pool.adopt, self._busy, self._watch)
        try:
            return await self._h2.send(request, mode, started_ns, traceparent)
        except H1Chosen as chosen:
            return await self._send_h1(
                request, started_ns, traceparent, chosen.connection, chosen.timings
            )

    async def _send_h1(
        self,
        request: RequestSpec,
        started_ns: int,
        traceparent: str | None = None,
        fresh: Connection | None = None,
        fresh_timings: dict[str, int] | None = None,
    ) -> Observation:
        """`fresh`: a new connection to send on (`auto` opened it and the server chose
        HTTP/1.1), with the timings of its opening."""
        wire = self._wire.get(id(request))
        if wire is None or wire[0] is not request:
            try:
                wire = self._wire[id(request)] = self._prepared(request)
            except Failure as refused:
                return self._failed(refused.failure, started_ns, {})
        _, key, head, payload, retry, head_only, _ = wire
        if traceparent is not None:  # checked in `send`
            payload = _with_traceparent(head, request, traceparent)
        if fresh is not None:
            timings = fresh_timings or {}
            try:
                return await self._exchange(
                    fresh, key, payload, head_only, started_ns, timings, fresh=True
                )
            except Failure as failure:
                return self._failed(failure.failure, started_ns, timings)
        connection = self._pool.take(key)
        timings = {}
        try:
            return await self._exchange(connection, key, payload, head_only, started_ns, timings)
        except Failure as failure:
            if not (retry and connection is not None and failure.before_answer):
                return self._failed(failure.failure, started_ns, timings)
        return await self._send_again(key, payload, head_only, started_ns)

    async def _exchange(
        self,
        connection: Connection | None,
        key: _Key,
        payload: bytes,
        head_only: bool,
        started_ns: int,
        timings: dict[str, int],
        *,
        retried: bool = False,
        fresh: bool = False,
    ) -> Observation:
        """One request on `connection` (a new one when None; `fresh` when it is new too).
        Raises `Failure`, with `before_answer` set when a reused connection ended before any
        byte came back."""
        reused = connection is not None and not fresh
        try:
            if connection is None:
                connection = await self._pool.open(key, timings)
            exchange = self._write(connection, payload, head_only, started_ns)
        except Failure:
            raise
        except asyncio.CancelledError:
            # Stopped mid-request (Ctrl-C, the end of a timed load): the connection's state
            # is unknown, so it is cut now rather than waited on at the run's end.
            if connection is not None:
                connection.abort()
            raise
        except Exception as exc:
            if connection is not None:
                self._busy.discard(connection)
                connection.abort()
            raise Failure("other", f"{type(exc).__name__}: {exc}") from None
        return await self._answer(
            connection, exchange, key, started_ns, timings, reused=reused, retried=retried
        )

    def _write(
        self, connection: Connection, payload: bytes, head_only: bool, started_ns: int
    ) -> Exchange:
        """Write the request on `connection`, now under the deadline sweeper's watch."""
        exchange = Exchange(self._body_capture, head_only, started_ns, self._loop)
        connection.exchange = exchange
        connection.deadline_ns = started_ns + self._total_timeout_ns
        self._busy.add(connection)
        self._watch()
        assert connection.transport is not None
        connection.transport.write(payload)
        return exchange

    async def _answer(
        self,
        connection: Connection,
        exchange: Exchange,
        key: _Key,
        started_ns: int,
        timings: dict[str, int],
        *,
        reused: bool,
        retried: bool = False,
    ) -> Observation:
        """Await the answer to the request written on `connection` (see `_exchange`)."""
        try:
            await exchange.done
        except Failure as failure:
            failure.before_answer = (
                reused and exchange.received_bytes == 0 and failure.failure.error_class == "reset"
            )
            raise
        except asyncio.CancelledError:
            connection.abort()
            raise
        except Exception as exc:
            connection.abort()
            raise Failure("other", f"{type(exc).__name__}: {exc}") from None
        finally:
            self._busy.discard(connection)
        if exchange.bytes_after_end:
            # As aiohttp's client reports it ("Data after `Connection: close`"), so that both
            # transports say the same about a response followed by bytes no request asked for.
            connection.abort()
            raise Failure(
                "malformed_response", "bytes after the end of the response (no request asked)"
            )
        ended_ns = exchange.ended_ns
        connection.exchange = None
        if exchange.keep_alive and not connection.closed:
            self._pool.give_back(key, connection)
        else:
            connection.abort()
        return Observation(
            side=self.side,
            status=exchange.status,
            reason=exchange.reason,
            http_version=exchange.version,
            headers=tuple(exchange.headers),
            trailers=tuple(exchange.trailers),
            body=bytes(exchange.body),
            body_bytes=exchange.body_bytes,
            body_sha256=exchange.digest.hexdigest(),
            content_sha256=None if exchange.content is None else exchange.content.hexdigest(),
            timings=answer_timings(started_ns, timings, exchange.first_byte_ns, ended_ns),
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
        return failed_observation(self.side, failure, started_ns, timings, retried=retried)

    def expire_busy(self, message: str) -> None:
        """End every request waiting for its answer now, as a `timeout` with `message`: a run
        that is stopping records the silent side's failure instead of dropping the pair."""
        for connection in list(self._busy):
            self._busy.discard(connection)
            connection.fail(Failure("timeout", message))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_every_s)
            now = time.perf_counter_ns()
            for connection in [c for c in self._busy if c.deadline_ns <= now]:
                self._busy.discard(connection)
                _expire(connection, self._total_timeout_s)

    async def close(self) -> None:
        """Close every connection, and return once their sockets are closed: idle ones
        politely (TLS close_notify) for at most `_CLOSE_GRACE_S`, then the rest cut.

        Returning earlier would leave sockets to close after the event loop has ended (a TLS
        close waits on the server), and Python reports those as leaked."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for idle in self._pool.idle.values():
            for connection in idle:
                if connection.transport is not None:
                    connection.transport.close()
        self._pool.idle.clear()
        if self._h2 is not None:
            self._h2.close_all()
        for awaited in list(self._busy):
            awaited.abort()
        for cut in (False, True):
            still_open = [c.lost for c in self._pool.open_connections]
            if not still_open:
                return
            if cut:
                for still in list(self._pool.open_connections):
                    still.abort()
            # An aborted socket closes on the loop's next turns; a polite close may wait on the
            # server. Both waits are bounded, so a stalled server cannot hold the run open.
            await asyncio.wait(still_open, timeout=_CLOSE_GRACE_S)


def _expire(connection: Awaited, total_s: float) -> None:
    connection.fail(Failure("timeout", f"no complete response within {total_s} s"))
