"""Opening one connection for the lean transport: TCP connect and TLS handshake, each timed
apart, SNI the production host while the socket goes to the target's address, and every fault
raised as a classified `Failure`. What speaks on the connection afterwards is the caller's.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, cast

from yarl import URL

from shadowdiff.grpc import method_problem, quoted
from shadowdiff.observation import ErrorClass
from shadowdiff.spec import RequestSpec, RequestTls
from shadowdiff.transport import USER_AGENT
from shadowdiff.transport.failures import classify_os_error
from shadowdiff.transport.lean_connection import Failure
from shadowdiff.wire import refusal

DEFAULT_PORTS: Final = {"http": 80, "https": 443}

# What an `Opening` protocol holds before its connection is handed over: the server speaks
# first only in HTTP/2 (its SETTINGS), a frame or two, so this bound is never reached by a
# server that means well.
_OPENING_BUFFER_BYTES = 1024 * 1024


async def dial(
    loop: asyncio.AbstractEventLoop,
    address: str,
    port: int,
    protocol: asyncio.Protocol,
    *,
    tls: tuple[ssl.SSLContext, str] | None,
    host: str,
    timeout_s: float,
    timings: dict[str, int],
    on_connected: Callable[[], None] | None = None,
) -> asyncio.Transport:
    """Connect `protocol` to `address`:`port` within `timeout_s`, then handshake TLS with
    `tls` (a context and the server name) when given; `host` is the production host, for
    messages. Records `connect_ns` and `tls_ns` in `timings`. The TCP transport is handed
    to `protocol.connection_made`; the TLS one is returned (the protocol receives its data
    but is not told of it). Raises `Failure`."""
    started = time.perf_counter_ns()
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(timeout_s):
            transport, _ = await loop.create_connection(lambda: protocol, address, port)
            if on_connected is not None:
                on_connected()
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connected = time.perf_counter_ns()
            timings["connect_ns"] = connected - started
            if tls is None:
                return transport
            context, server_name = tls
            tls_transport = await loop.start_tls(
                transport, protocol, context, server_hostname=server_name.rstrip(".")
            )
            assert tls_transport is not None
            timings["tls_ns"] = time.perf_counter_ns() - connected
            return tls_transport
    except (OSError, EOFError) as exc:
        # TimeoutError, ssl.SSLError and socket.gaierror are OSErrors too.
        if transport is not None:
            transport.abort()
        raise Failure(*set_up_failure(exc, host, address, port, timeout_s)) from None
    except BaseException:
        # Cancelled mid-way (Ctrl-C, the end of a timed load): nothing else may hold this
        # socket yet, so it is cut here rather than left open past the run.
        if transport is not None:
            transport.abort()
        raise


def sni(scheme: str, host: str, tls: RequestTls | None) -> str:
    """The server name a connection presents: the production host, or the request's
    `tls.sni`; none over plain HTTP."""
    if scheme != "https":
        return ""
    return tls.sni if tls is not None and tls.sni else host


def set_up_failure(
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


class Opening(asyncio.Protocol):
    """Holds a connection while it is being set up, until the protocol that will speak on it
    is known (HTTP/2 or HTTP/1.1, by the ALPN the server chose): bytes that arrive before the
    hand-over are kept and replayed, and a close is passed on, so nothing is lost between the
    handshake and the hand-over."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffered: list[bytes] = []
        self.buffered_bytes = 0
        self.lost = False
        self.lost_exc: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffered.append(data)
        self.buffered_bytes += len(data)
        if self.buffered_bytes > _OPENING_BUFFER_BYTES and self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.lost_exc = True, exc

    def hand_over(self, transport: asyncio.Transport, protocol: asyncio.Protocol) -> None:
        """Make `protocol` the one that speaks on `transport` (the TLS transport when there is
        one), and give it what arrived so far."""
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        for data in self.buffered:
            protocol.data_received(data)
        self.buffered = []
        if self.lost:
            protocol.connection_lost(self.lost_exc)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a checked request goes: its URL, scheme, host, port, and the authority both
    protocols write (Host in HTTP/1.1, `:authority` in HTTP/2)."""

    url: URL
    scheme: str
    host: str
    port: int
    authority: str


def checked_target(request: RequestSpec, extra_headers: Sequence[tuple[str, str]]) -> Target:
    """The request's target, once the last line of defence has passed it: a CR or LF written
    by either protocol would end a header block and let the rest of a value become a second
    request that nobody allowed. Raises `Failure("not_sent")` with the reason otherwise."""
    reason = refusal(
        request.method,
        request.url,
        (*request.headers, *extra_headers),
        request.body,
        allow_unsafe=request.allow_unsafe,
        grpc_health=request.grpc_health,
    )
    if reason is not None:
        raise Failure("not_sent", f"not sent: {reason}")
    url = URL(request.url, encoded=True)
    if request.grpc is not None and (
        (reason := method_problem(request.grpc.method)) is not None
        or url.raw_path != request.grpc.method
        or url.raw_query_string
    ):
        raise Failure(
            "not_sent", f"not sent: not a gRPC call to {quoted(request.grpc.method)}: {reason}"
        )
    scheme, host = url.scheme, url.raw_host or ""
    port = url.port or DEFAULT_PORTS[scheme]
    authority = host if url.explicit_port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        authority = f"[{host}]" if url.explicit_port is None else f"[{host}]:{port}"
    return Target(url, scheme, host, port, authority)


def head_lines(
    method: str, target: Target, headers: Sequence[tuple[str, str]]
) -> tuple[list[str], set[str]]:
    """An HTTP/1.1 request head's first lines: the request line, Host, the headers as given
    (checked by `checked_target`) and the User-Agent both transports send unless one is
    given; with the lower-case names written, for the defaults the caller adds."""
    lines = [f"{method} {target.url.raw_path_qs or '/'} HTTP/1.1", f"Host: {target.authority}"]
    sent = set()
    for name, value in headers:
        lines.append(f"{name}: {value}")
        sent.add(name.lower())
    if "user-agent" not in sent:
        lines.append(f"User-Agent: {USER_AGENT}")
    return lines, sent
