"""The aiohttp transport: one connection pool per target, production hostnames pinned to the
target's address so that Host, SNI and the certificate check all use the production name.

This is the only module that imports aiohttp's client; its exceptions are translated into
`TransportFailure` records in `classify_failure`, one table for the whole project.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import socket
import ssl
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from multidict import CIMultiDict
from yarl import URL

from shadowdiff.content_coding import ContentDigest, past_capture
from shadowdiff.endpoint import Endpoint
from shadowdiff.observation import ErrorClass, Observation, Timings, TransportFailure
from shadowdiff.spec import RequestSpec, Side
from shadowdiff.transport import USER_AGENT, Pending, may_retry, traceparent_problem
from shadowdiff.transport.failures import classify_os_error
from shadowdiff.transport.tls import ClientContexts, tls_session
from shadowdiff.wire import refusal

_READ_CHUNK_BYTES = 64 * 1024
# aiohttp warns about (and would copy) bytes bodies above 1 MiB; larger ones go as a stream.
_STREAM_BODY_ABOVE_BYTES = 2**20


class PinnedResolver(AbstractResolver):
    """Resolves every hostname to one target's address, like `curl --resolve`.

    The URL's port is the production port (443 for https); `port_map` turns it into the port
    this target listens on, so a scenario can point at entry points on non-standard ports.
    """

    def __init__(self, address: str, port_map: Mapping[int, int]) -> None:
        self._address = address
        self._port_map = dict(port_map)
        self._fallback = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        connect_port = self._port_map.get(port, port)
        if ":" in self._address:
            return [_result(host, self._address, connect_port, socket.AF_INET6)]
        if self._address.replace(".", "").isdigit():
            return [_result(host, self._address, connect_port, socket.AF_INET)]
        # The target itself is named (a load balancer's DNS name): resolve that name instead.
        found = await self._fallback.resolve(self._address, connect_port, socket.AF_UNSPEC)
        return [{**entry, "hostname": host} for entry in found]

    async def close(self) -> None:
        await self._fallback.close()


def _result(host: str, address: str, port: int, family: socket.AddressFamily) -> ResolveResult:
    return {
        "hostname": host,
        "host": address,
        "port": port,
        "family": family,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST,
    }


def classify_failure(exc: BaseException) -> TransportFailure:
    """aiohttp's exceptions, unwrapped to the faults of `failures`' table."""
    error_class: ErrorClass
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error_class = "tls_verify"
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        error_class = "timeout_connect"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error_class = classify_os_error(exc.os_error, connecting=True)
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientConnectionResetError):
        error_class = "reset"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        # A body cut short ("Not enough data", as a Content-Length or chunked body that ends
        # early) is a reset; broken chunk framing is malformed, as llhttp says in the lean one.
        error_class = "reset" if "Not enough data" in str(exc) else "malformed_response"
    elif isinstance(exc, aiohttp.ClientResponseError):
        error_class = "malformed_response"
    elif isinstance(exc, aiohttp.ClientError) and not isinstance(exc, OSError):
        error_class = "other"
    else:
        error_class = classify_os_error(exc, connecting=False)
        if error_class == "other" and exc.__cause__ is not None:
            # "Can not write request body" carries no errno: the reset is its cause.
            error_class = classify_os_error(exc.__cause__, connecting=False)
    if error_class == "other":
        return TransportFailure(error_class, f"{type(exc).__name__}: {exc}")
    return TransportFailure(error_class, str(exc) or type(exc).__name__)


def _trace_config() -> aiohttp.TraceConfig:
    """Timestamps of connection set-up, stored in the per-request trace context."""

    async def connect_start(_: Any, context: Any, __: Any) -> None:
        context.trace_request_ctx["connect_start_ns"] = time.perf_counter_ns()

    async def connect_end(_: Any, context: Any, __: Any) -> None:
        context.trace_request_ctx["connect_end_ns"] = time.perf_counter_ns()

    async def reused(_: Any, context: Any, __: Any) -> None:
        context.trace_request_ctx["reused"] = True

    config = aiohttp.TraceConfig()
    config.on_connection_create_start.append(connect_start)
    config.on_connection_create_end.append(connect_end)
    config.on_connection_reuseconn.append(reused)
    return config


# The connection protocol the current request went out on, set in the sending task when
# aiohttp hands the request to it: after a failure, it says whether any answer began.
_CURRENT_HANDLER: ContextVar[_CountingHandler | None] = ContextVar(
    "shadowdiff_aiohttp_handler", default=None
)


class _CountingHandler(ResponseHandler):
    """aiohttp's connection protocol, counting the bytes of each answer as they arrive.

    aiohttp says "Server disconnected" alike whether the server closed an idle connection
    under the request or in the middle of an answer; only the first may be retried.
    """

    answer_bytes = 0

    def set_response_params(self, **kwargs: Any) -> None:
        # Called by ClientSession._request for every request, in the sending task.
        self.answer_bytes = 0
        _CURRENT_HANDLER.set(self)
        super().set_response_params(**kwargs)

    def data_received(self, data: bytes) -> None:
        self.answer_bytes += len(data)
        super().data_received(data)


class AiohttpTransport:
    """Sends requests to one target through its own pool."""

    def __init__(self, endpoint: Endpoint, *, pool_size: int) -> None:
        self.side: Side = endpoint.side
        self._body_capture = endpoint.body_capture_bytes
        self._extra_headers = endpoint.headers
        self._pool_size = pool_size
        self._contexts = ClientContexts(endpoint.tls)
        self._contexts.prepare(endpoint.tls_overrides)
        self._resolver = PinnedResolver(endpoint.address, endpoint.port_map)
        self._connect_timeout_s = endpoint.connect_timeout_s
        self._total_timeout_s = endpoint.total_timeout_s
        self._limits = endpoint.limits
        self._session = self._open_session(force_close=False)
        # Retries go out on a connection of their own (see `may_retry`): opened when first
        # needed, never pooled.
        self._fresh_session: aiohttp.ClientSession | None = None
        self._header_bytes = self._limits.header_bytes

    def _open_session(self, *, force_close: bool) -> aiohttp.ClientSession:
        limits = self._limits
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=0,
            ssl=self._contexts.get(),
            resolver=self._resolver,
            force_close=force_close,
        )
        # aiohttp builds each connection's protocol with this factory (BaseConnector.__init__
        # in aiohttp 3.x); no public switch exists.
        connector._factory = functools.partial(_CountingHandler, loop=connector._loop)  # type: ignore[assignment]  # a private attribute, typed for aiohttp's own handler
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self._total_timeout_s, sock_connect=self._connect_timeout_s
            ),
            cookie_jar=aiohttp.DummyCookieJar(),  # every request stands alone
            auto_decompress=False,  # compare the bytes as sent; decoding is the comparer's job
            headers={"User-Agent": USER_AGENT},
            # aiohttp would ask for gzip by default; a probe asks for it explicitly.
            skip_auto_headers=("Accept-Encoding",),
            trace_configs=[_trace_config()],
            max_line_size=limits.header_line_bytes,
            max_field_size=limits.header_line_bytes,
            max_headers=limits.header_fields,
        )
        # aiohttp sends an idempotent request (GET, HEAD, but also PUT and DELETE) a second
        # time when a connection fails, reused or not: an allowed DELETE would reach a backend
        # twice, and a retry after a fresh connection failed would hide a reset on one side.
        # `send` retries by shadowdiff's rule instead. No public switch exists (aiohttp 3.9+
        # reads this attribute in ClientSession._request).
        session._retry_connection = False
        return session

    def start(self, request: RequestSpec, traceparent: str | None = None) -> Pending:
        return asyncio.get_running_loop().create_task(self.send(request, traceparent))

    async def send(self, request: RequestSpec, traceparent: str | None = None) -> Observation:
        started_ns = time.perf_counter_ns()
        headers = [*request.headers, *self._extra_headers]
        # The last line of defence, as in the lean transport: never write what the loader
        # would have refused (aiohttp raises on a CR or LF, which used to end the whole run).
        reason = (
            refusal(
                request.method,
                request.url,
                headers,
                request.body,
                allow_unsafe=request.allow_unsafe,
                grpc_health=request.grpc_health,
            )
            or traceparent_problem(traceparent)
            or ("gRPC needs HTTP/2, which only the lean transport speaks" if request.grpc else None)
        )
        if request.websocket is not None:
            # The loader refuses it with the file and line; a request built by hand lands here.
            reason = "the WebSocket probe is the lean transport's (defaults.transport: lean)"
        if reason is not None:
            return Observation(
                side=self.side,
                failure=TransportFailure("not_sent", f"not sent: {reason}"),
                timings=Timings(started_ns=started_ns, total_ns=0),
            )
        observation, before_answer = await self._attempt(
            self._session, request, started_ns, traceparent
        )
        if before_answer and may_retry(request, self._extra_headers):
            # The reused connection was closed under the request before any answer began: the
            # server had timed it out. Once more on a new connection, timed from the first try.
            if self._fresh_session is None:
                self._fresh_session = self._open_session(force_close=True)
            observation, _ = await self._attempt(
                self._fresh_session, request, started_ns, traceparent
            )
            observation.retried = True
        return observation

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        request: RequestSpec,
        started_ns: int,
        traceparent: str | None,
    ) -> tuple[Observation, bool]:
        """The observation, and whether it is a failure on a reused connection before any
        byte of the answer."""
        trace: dict[str, Any] = {}
        headers = [*request.headers, *self._extra_headers]
        if traceparent is not None:
            headers.append(("traceparent", traceparent))
        url = URL(request.url, encoded=True)  # sent as written: `//`, `..` are probes
        tls_options: dict[str, Any] = {}
        if request.tls is not None and url.scheme == "https":
            # aiohttp pools by context and server name too (ConnectionKey): a request never
            # rides on a connection made with other TLS settings.
            tls_options["ssl"] = self._contexts.get(request.tls)
            if request.tls.sni:
                tls_options["server_hostname"] = request.tls.sni.rstrip(".")
        _CURRENT_HANDLER.set(None)
        try:
            async with session.request(
                request.method,
                url,
                headers=CIMultiDict(headers) if headers else None,
                data=_body(request.body),
                allow_redirects=False,
                trace_request_ctx=trace,
                **tls_options,
            ) as response:
                first_byte_ns = time.perf_counter_ns()
                head_bytes = sum(len(name) + len(value) + 4 for name, value in response.raw_headers)
                if head_bytes > self._header_bytes:
                    # aiohttp bounds each line and the count, not the total: checked here, so
                    # both transports draw the line at the same place.
                    response.close()
                    failure = TransportFailure(
                        "malformed_response",
                        f"response head over header_bytes ({self._header_bytes} bytes)",
                    )
                    return self._failed(failure, trace, started_ns), False
                tls = tls_session(response.connection.transport if response.connection else None)
                headers = [
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in response.raw_headers
                ]
                digest = hashlib.sha256()
                captured = bytearray()
                content: ContentDigest | None = None
                size = 0
                async for chunk in response.content.iter_chunked(_READ_CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    room = self._body_capture - len(captured)
                    if len(chunk) <= room:
                        captured += chunk
                    else:
                        content = past_capture(content, headers, captured, chunk, room)
                ended_ns = time.perf_counter_ns()
                return Observation(
                    side=self.side,
                    status=response.status,
                    reason=response.reason,
                    http_version=f"{response.version.major}.{response.version.minor}"
                    if response.version
                    else None,
                    headers=tuple(headers),
                    body=bytes(captured),
                    body_bytes=size,
                    body_sha256=digest.hexdigest(),
                    content_sha256=None if content is None else content.hexdigest(),
                    timings=_timings(trace, started_ns, first_byte_ns, ended_ns),
                    tls=tls,
                    connection_reused=bool(trace.get("reused")),
                ), False
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            failure = classify_failure(exc)
            handler = _CURRENT_HANDLER.get()
            before_answer = (
                failure.error_class == "reset"
                and bool(trace.get("reused"))
                and handler is not None
                and handler.answer_bytes == 0
            )
            return self._failed(failure, trace, started_ns), before_answer

    def _failed(
        self, failure: TransportFailure, trace: Mapping[str, Any], started_ns: int
    ) -> Observation:
        return Observation(
            side=self.side,
            failure=failure,
            timings=_timings(trace, started_ns, None, time.perf_counter_ns()),
        )

    async def close(self) -> None:
        await self._session.close()
        if self._fresh_session is not None:
            await self._fresh_session.close()


def _body(body: bytes | None) -> bytes | io.BytesIO | None:
    if body is not None and len(body) > _STREAM_BODY_ABOVE_BYTES:
        return io.BytesIO(body)
    return body


def _timings(
    trace: Mapping[str, Any], started_ns: int, first_byte_ns: int | None, ended_ns: int
) -> Timings:
    connect_ns = None
    if "connect_start_ns" in trace and "connect_end_ns" in trace:
        connect_ns = trace["connect_end_ns"] - trace["connect_start_ns"]
    return Timings(
        started_ns=started_ns,
        connect_ns=connect_ns,
        first_byte_ns=None if first_byte_ns is None else first_byte_ns - started_ns,
        total_ns=ended_ns - started_ns,
    )
