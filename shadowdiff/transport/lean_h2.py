"""HTTP/2 for the lean transport: connections per scheme, host, port and TLS settings, each
carrying as many streams at once as the server's SETTINGS_MAX_CONCURRENT_STREAMS allows (a new
connection when all are full), observations in the same shape as HTTP/1.1's with
`http_version` "2".

`http: "2"` over TLS offers only h2 by ALPN: a server that does not choose it is the failure
`tls_handshake` (the TLS negotiation did not give the protocol asked for). Over plain HTTP it
is h2c with prior knowledge: a server that answers in anything but HTTP/2 is
`malformed_response`. `http: auto` over TLS offers h2 and http/1.1 and speaks what the
server chose; the choice is remembered per host and TLS settings, so later requests go
straight to the right pool, and an HTTP/1.1 connection opened that way serves its request
(`LeanTransport` takes it over).

A gRPC call (`RequestSpec.grpc`) is always HTTP/2: its trailers are kept apart from its head
(`Observation.trailers`, where grpc-status lives), and an answer that is no gRPC answer (no
grpc-status, a length prefix that lies; `shadowdiff.grpc.read_answer`) is `malformed_response`.
Other answers' trailers are kept apart too, as HTTP/1.1's are (RFC 9110 section 6.5.1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

import h2.exceptions
from hpack import NeverIndexedHeaderTuple

from shadowdiff.endpoint import Endpoint
from shadowdiff.grpc import read_answer
from shadowdiff.observation import Observation
from shadowdiff.spec import HttpVersion, RequestSpec, RequestTls, Side
from shadowdiff.transport import USER_AGENT, may_retry
from shadowdiff.transport.dial import Opening, checked_target, dial, sni
from shadowdiff.transport.h2_connection import H2Connection, Stream
from shadowdiff.transport.lean_connection import (
    Awaited,
    Connection,
    Failure,
    answer_timings,
    failed_observation,
)
from shadowdiff.transport.tls import ClientContexts, tls_session
from shadowdiff.wire import http2_forbidden

_Key = tuple[str, str, int, RequestTls | None]
_NEVER_INDEXED: Final = frozenset({"authorization", "proxy-authorization"})


class H1Chosen(Exception):
    """`auto`: the server chose HTTP/1.1. `connection` is the new one it chose it on, for
    this request (None: the choice was known, take the HTTP/1.1 pool)."""

    def __init__(self, connection: Connection | None, timings: dict[str, int]) -> None:
        super().__init__("http/1.1")
        self.connection = connection
        self.timings = timings


class H2Sender:
    """Sends requests to one target over HTTP/2. `adopt` registers each socket opened with the
    transport that closes them all; `busy` is the transport's set of answers awaited, whose
    deadlines its sweeper checks (`start_sweeper`)."""

    def __init__(
        self,
        endpoint: Endpoint,
        adopt: Callable[[H2Connection | Connection], None],
        busy: set[Awaited],
        start_sweeper: Callable[[], None],
    ) -> None:
        self.side: Side = endpoint.side
        self._loop = asyncio.get_running_loop()
        self._endpoint = endpoint
        self._adopt = adopt
        self._busy = busy
        self._start_sweeper = start_sweeper
        self._total_timeout_ns = int(endpoint.total_timeout_s * 1e9)
        self._contexts = {
            "2": ClientContexts(endpoint.tls, ("h2",)),
            "auto": ClientContexts(endpoint.tls, ("h2", "http/1.1")),
        }
        if endpoint.any_https:
            # Built now rather than in the first request's time (a trust store takes a while).
            for version in endpoint.http_versions & {"2", "auto"}:
                self._contexts[version].prepare(endpoint.tls_overrides)
        self.connections: dict[_Key, list[H2Connection]] = {}
        self._opening: dict[_Key, asyncio.Future[H2Connection | None]] = {}
        # `auto` over TLS: what each host (with its TLS settings) chose by ALPN.
        self.chosen: dict[_Key, str] = {}
        self._wire: dict[int, tuple[RequestSpec, _Key, list[tuple[bytes, bytes]], bool]] = {}

    def prefers_h1(self, key: _Key, mode: HttpVersion) -> bool:
        return mode == "auto" and self.chosen.get(key) == "http/1.1"

    def forget(self, request: RequestSpec) -> None:
        self._wire.pop(id(request), None)

    async def send(
        self,
        request: RequestSpec,
        mode: HttpVersion,
        started_ns: int,
        traceparent: str | None = None,
    ) -> Observation:
        """One request over HTTP/2, with `traceparent` (already checked) as its last header
        field when given. Raises `H1Chosen` when `auto` met a server that chose HTTP/1.1;
        every other outcome is an observation."""
        wire = self._wire.get(id(request))
        if wire is None or wire[0] is not request:
            try:
                wire = self._wire[id(request)] = (request, *self._head(request))
            except Failure as refused:
                return self._failed(refused, started_ns, {})
        _, key, headers, retry = wire
        if traceparent is not None:
            # Never indexed: a value of its own on each request would only push the fields
            # that repeat out of the HPACK table (and make each search of it longer).
            headers = [*headers, NeverIndexedHeaderTuple(b"traceparent", traceparent.encode())]
        timings: dict[str, int] = {}
        try:
            return await self._exchange(request, key, mode, headers, started_ns, timings)
        except Failure as failure:
            if not (retry and failure.before_answer and failure.reused):
                return self._failed(failure, started_ns, timings)
        # A reused connection went away under the request before any answer (a GOAWAY, a
        # refused stream, a close): once more on a new connection, timed from the first try.
        timings = {}
        try:
            return await self._exchange(
                request, key, mode, headers, started_ns, timings, fresh=True
            )
        except Failure as failure:
            return self._failed(failure, started_ns, timings, retried=True)

    async def _exchange(
        self,
        request: RequestSpec,
        key: _Key,
        mode: HttpVersion,
        headers: list[tuple[bytes, bytes]],
        started_ns: int,
        timings: dict[str, int],
        *,
        fresh: bool = False,
    ) -> Observation:
        connection, reused = await self._acquire(key, mode, timings, fresh)
        stream = Stream(self._endpoint.body_capture_bytes, self._loop)
        stream.deadline_ns = started_ns + self._total_timeout_ns
        try:
            try:
                connection.start(stream, headers, end=request.body is None)
            except Exception as exc:
                if (ended := connection.failed) is not None:
                    # The server broke the connection in the read that made it ready.
                    raise Failure(ended.failure.error_class, ended.failure.message) from None
                if isinstance(exc, h2.exceptions.TooManyStreamsError):
                    # The server's SETTINGS allow no stream (RFC 9113 section 5.1.2): it
                    # refused the request, whatever the request was.
                    allowed = connection.h2.remote_settings.max_concurrent_streams
                    raise Failure(
                        "reset",
                        "the server allows no more streams on this connection "
                        f"(SETTINGS_MAX_CONCURRENT_STREAMS {allowed})",
                    ) from None
                # h2 refused to write it (a header HTTP/2 forbids that the checks let
                # through, or no stream ID left): nothing went out for this stream.
                raise Failure("not_sent", f"not sent over HTTP/2: {exc}") from None
            self._busy.add(stream)
            self._start_sweeper()
            if request.body is not None:
                await connection.send_body(stream, request.body)
            await stream.done
        except Failure as failure:
            failure.reused = reused
            raise
        except asyncio.CancelledError:
            # Stopped mid-request: this stream is cancelled, the connection's others go on.
            connection.end_stream(stream, None)
            raise
        finally:
            self._busy.discard(stream)
            connection.active -= 1
        if stream.status is None:
            raise Failure("malformed_response", "an HTTP/2 answer without :status")
        answer_headers, trailers = tuple(stream.headers), tuple(stream.trailers)
        if request.grpc is not None:
            answer = read_answer(
                stream.status, answer_headers, trailers, bytes(stream.body), stream.body_bytes
            )
            if isinstance(answer, str):
                raise Failure("malformed_response", answer)
        return Observation(
            side=self.side,
            status=stream.status,
            reason=None,  # HTTP/2 has no reason phrase
            http_version="2",
            headers=answer_headers,
            trailers=trailers,
            body=bytes(stream.body),
            body_bytes=stream.body_bytes,
            body_sha256=stream.digest.hexdigest(),
            content_sha256=None if stream.content is None else stream.content.hexdigest(),
            timings=answer_timings(started_ns, timings, stream.first_byte_ns, stream.ended_ns),
            tls=connection.tls,
            connection_reused=reused,
            retried=fresh,
        )

    async def _acquire(
        self, key: _Key, mode: HttpVersion, timings: dict[str, int], fresh: bool
    ) -> tuple[H2Connection, bool]:
        """A connection with room for one more stream (counted as taken), and whether it was
        open before. Concurrent requests to a host being connected wait for that connection
        (and share its failure) instead of each opening one."""
        while True:
            if self.prefers_h1(key, mode):
                raise H1Chosen(None, timings)
            if not fresh:
                for connection in self.connections.get(key, ()):
                    if connection.has_room():
                        connection.active += 1
                        return connection, True
                pending = self._opening.get(key)
                if pending is not None:
                    try:
                        await asyncio.shield(pending)
                    except Failure as failure:
                        raise Failure(
                            failure.failure.error_class, failure.failure.message
                        ) from None
                    continue
            opened = self._loop.create_future()
            # Retrieved here, so that a failure nobody else waited for is not reported.
            opened.add_done_callback(lambda f: f.cancelled() or f.exception())
            if not fresh:
                self._opening[key] = opened
            try:
                connection = await self._open(key, mode, timings)
            except H1Chosen:
                opened.set_result(None)
                raise
            except Failure as failure:
                opened.set_exception(failure)
                raise
            except BaseException:
                # This request was cancelled: those waiting for its connection try again.
                opened.set_result(None)
                raise
            finally:
                if self._opening.get(key) is opened:
                    del self._opening[key]
            opened.set_result(connection)
            connection.active += 1
            return connection, False

    async def _open(self, key: _Key, mode: HttpVersion, timings: dict[str, int]) -> H2Connection:
        scheme, host, port, tls = key
        endpoint = self._endpoint
        connect_port = endpoint.port_map.get(port, port)
        opening = Opening()
        server_name = sni(scheme, host, tls)
        started_ns = time.perf_counter_ns()
        try:
            transport = await dial(
                self._loop,
                endpoint.address,
                connect_port,
                opening,
                tls=(self._contexts[mode].get(tls), server_name) if scheme == "https" else None,
                host=host,
                timeout_s=endpoint.connect_timeout_s,
                timings=timings,
            )
        except Failure as failure:
            if mode == "2" and "no application protocol" in failure.failure.message:
                # The server refused the handshake for want of a protocol both speak.
                raise Failure(
                    "tls_handshake", f'{failure.failure.message} (http: "2" offers only h2)'
                ) from None
            raise
        session = tls_session(transport) if scheme == "https" else None
        alpn = session.alpn if session is not None else None
        if scheme == "https" and alpn != "h2":
            if mode == "auto":
                # The server chose HTTP/1.1 (or nothing, which RFC 7301 lets it): this
                # connection serves the request in HTTP/1.1, and later ones go there directly.
                self.chosen[key] = "http/1.1"
                h1 = Connection(self._loop, endpoint.limits)
                h1.tls = session
                opening.hand_over(transport, h1)
                self._adopt(h1)
                raise H1Chosen(h1, timings)
            transport.abort()
            raise Failure(
                "tls_handshake",
                f'{host} did not choose h2 by ALPN (http: "2" offers only h2); it chose '
                f"{alpn or 'no protocol'}",
            )
        if mode == "auto":
            self.chosen[key] = "h2"
        connection = H2Connection(self._loop, endpoint.limits)
        connection.tls = session
        self._adopt(connection)
        opening.hand_over(transport, connection)
        self.connections.setdefault(key, []).append(connection)
        connection.lost.add_done_callback(lambda _: self._drop(key, connection))
        # The server's SETTINGS say how many streams it takes: wait for them, within what is
        # left of the connect timeout.
        left_s = endpoint.connect_timeout_s - (time.perf_counter_ns() - started_ns) / 1e9
        try:
            async with asyncio.timeout(max(left_s, 0.001)):
                await connection.ready
        except TimeoutError:
            connection.abort()
            raise Failure(
                "timeout_connect",
                f"no HTTP/2 SETTINGS from {endpoint.address}:{connect_port} within "
                f"{endpoint.connect_timeout_s} s",
            ) from None
        return connection

    def _drop(self, key: _Key, connection: H2Connection) -> None:
        connections = self.connections.get(key)
        if connections is not None and connection in connections:
            connections.remove(connection)
            if not connections:
                del self.connections[key]

    def _head(self, request: RequestSpec) -> tuple[_Key, list[tuple[bytes, bytes]], bool]:
        """The request as HTTP/2 header fields: pseudo-headers first, names in lower case
        (RFC 9113 section 8.2), the same defaults as HTTP/1.1."""
        extra = self._endpoint.headers
        target = checked_target(request, extra)
        url, scheme, host, port = target.url, target.scheme, target.host, target.port
        fields = [
            (b":method", request.method.encode("ascii")),
            (b":scheme", scheme.encode("ascii")),
            (b":authority", target.authority.encode("ascii")),
            (b":path", (url.raw_path_qs or "/").encode("ascii")),
        ]
        sent = set()
        for name, value in (*request.headers, *extra):
            lower = name.lower()
            # The loader refuses these (shadowdiff.wire); a request built by hand lands here.
            if http2_forbidden(name, value):
                raise Failure(
                    "not_sent",
                    f"not sent: {name} is connection-specific, which HTTP/2 forbids "
                    "(RFC 9113 section 8.2.2)",
                )
            # What h2's outbound normalisation did, done once per request instead of on
            # every send (h2_connection turns it off): no surrounding whitespace (RFC 9113
            # section 8.2.1), and credentials kept out of the HPACK dynamic table, where a
            # compression side channel could read them back (RFC 7541 section 7.1.3).
            field = (lower.encode("ascii"), value.strip(" \t").encode("ascii"))
            never_indexed = lower in _NEVER_INDEXED or (lower == "cookie" and len(field[1]) < 20)
            fields.append(NeverIndexedHeaderTuple(*field) if never_indexed else field)
            sent.add(lower)
        if "user-agent" not in sent:
            fields.append((b"user-agent", USER_AGENT.encode("ascii")))
        if "accept" not in sent and request.grpc is None:
            fields.append((b"accept", b"*/*"))
        if request.body is not None:
            fields.append((b"content-length", str(len(request.body)).encode("ascii")))
        retry = may_retry(request, extra)
        tls = request.tls if scheme == "https" else None
        return (scheme, host, port, tls), fields, retry

    def _failed(
        self,
        failure: Failure,
        started_ns: int,
        timings: dict[str, int],
        *,
        retried: bool = False,
    ) -> Observation:
        return failed_observation(self.side, failure.failure, started_ns, timings, retried=retried)

    def close_all(self) -> None:
        """GOAWAY and a polite close on every connection (the transport waits for them)."""
        for connections in list(self.connections.values()):
            for connection in list(connections):
                connection.close()
