"""What one entry point answered to one request: plain data, including failures on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from shadowdiff.spec import Side

# Closed set of transport failure classes; a failure is recorded, never raised.
ErrorClass = Literal[
    "dns",  # the target's address did not resolve
    "refused",  # nothing listens at the target's address and port
    "reset",  # the connection was closed or reset before a full response arrived
    "tls_handshake",  # the TLS handshake failed (protocol, cipher, refused SNI)
    "tls_verify",  # the certificate did not verify or did not cover the hostname
    "timeout_connect",  # connecting (TCP and TLS) took longer than the connect timeout
    "timeout",  # the whole exchange took longer than the total timeout
    "malformed_response",  # the bytes that came back are not a valid HTTP response
    "not_sent",  # shadowdiff refused to write the request (see shadowdiff.wire.refusal)
    "other",
]

# Status codes with which entry points refuse a client over a limit: ingress-nginx's
# limit-connections and limit-rps answer 503 by default, and 429 is the usual setting.
LIMIT_STATUSES: Final = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class TransportFailure:
    error_class: ErrorClass
    message: str


# Timings and Observation are built for every request: they are plain slotted dataclasses,
# immutable by convention. A frozen dataclass sets each field through object.__setattr__,
# which made their construction a measurable share of a replay's CPU.
@dataclass(slots=True)
class Timings:
    """Phase durations in nanoseconds, from the moment the request was started.

    `connect_ns` is None on a reused connection. `tls_ns` is None when there was no handshake or
    the transport cannot time it apart from the TCP connect (aiohttp does both in one call, so
    there `connect_ns` includes the handshake).
    """

    started_ns: int  # time.perf_counter_ns() when the request was started
    connect_ns: int | None = None
    tls_ns: int | None = None
    first_byte_ns: int | None = None  # until the response head was parsed
    total_ns: int = 0  # until the body was read, or the failure happened


@dataclass(frozen=True, slots=True)
class TlsSession:
    version: str | None
    cipher: str | None
    alpn: str | None
    peer_certificate_der: bytes | None


@dataclass(slots=True)
class Observation:
    """One side's answer to one request, or the failure that took its place."""

    side: Side
    failure: TransportFailure | None = None
    status: int | None = None
    reason: str | None = None
    http_version: str | None = None
    # Every header as received: original case, original order, repeated names kept.
    headers: tuple[tuple[str, str], ...] = ()
    # The trailer fields after the body, as received, apart from `headers` (RFC 9110 section
    # 6.5.1: a recipient must not merge them into the head). A gRPC call's status lives there;
    # other answers' trailers are not compared (browsers never read them; the Fetch standard
    # has no trailers), and the aiohttp transport does not keep them at all.
    trailers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""  # the first `body_capture` bytes
    body_bytes: int = 0  # the size of the whole body
    body_sha256: str = ""  # hex digest of the whole body
    # Of a body longer than body_capture with a Content-Encoding: the hex digest of its whole
    # content with the encoding removed, hashed as it arrived (shadowdiff.content_coding);
    # None otherwise, or when it could not be decoded.
    content_sha256: str | None = None
    timings: Timings = field(default_factory=lambda: Timings(started_ns=0))
    tls: TlsSession | None = None
    connection_reused: bool = False
    # Sent a second time, on a new connection, after a reused one failed before any byte of
    # the answer (see `shadowdiff.transport.may_retry`); the answer is the second attempt's.
    retried: bool = False
    # The W3C `traceparent` this request carried (each request its own span id, see
    # shadowdiff.trace), or None: set by the engine, read by the comparison to set the echo
    # of it aside.
    traceparent: str | None = None
    # A WebSocket probe's echo (its body): "text" or "binary" as the server framed it; None
    # when no message was echoed.
    websocket_message: Literal["text", "binary"] | None = None

    @property
    def ok(self) -> bool:
        """True when a response arrived (whatever its status)."""
        return self.failure is None

    @property
    def body_truncated(self) -> bool:
        return len(self.body) < self.body_bytes

    def header_values(self, name: str) -> list[str]:
        """All values of header `name`, compared case-insensitively, in order received."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]
