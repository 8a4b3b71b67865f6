"""Request specs: the plain, fully resolved requests that the replay engine sends to both sides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from shadowdiff.grpc import HEALTH_CHECK_METHOD, GrpcCall
from shadowdiff.wire import WEBSOCKET_MESSAGE_UNSAFE, unsafe_reason

Side = Literal["baseline", "candidate"]
SIDES: tuple[Side, Side] = ("baseline", "candidate")
# Which HTTP a request speaks: "1.1"; "2" (h2 by ALPN over TLS, h2c with prior knowledge over
# plain HTTP); "auto" (over TLS, h2 or HTTP/1.1 as the server picks by ALPN; HTTP/1.1 over
# plain HTTP, where nothing is negotiated).
HttpVersion = Literal["1.1", "2", "auto"]


@dataclass(frozen=True, slots=True)
class RequestTls:
    """One request's TLS settings, on both targets: each field given replaces the target's
    own (None keeps it); the target's client certificate always stays.

    `sni` is sent instead of the URL's host, and the certificate is checked against it; the
    Host header still comes from the URL. Versions are names such as "TLSv1.2".
    """

    ca: str | None = None  # path of a PEM CA bundle
    insecure: bool | None = None
    min_version: str | None = None
    max_version: str | None = None
    sni: str | None = None


@dataclass(frozen=True, slots=True)
class WebSocketProbe:
    """A request sent as a WebSocket upgrade (RFC 6455, over HTTP/1.1): a GET with
    `Upgrade: websocket`, offering `subprotocols` (Sec-WebSocket-Protocol, in order of
    preference) and `extensions` (Sec-WebSocket-Extensions, e.g. "permessage-deflate"), then,
    when `message` is given, that one text frame sent and its echo awaited. The upgrade is safe
    to send; the message is application data, so it needs `allow_unsafe`."""

    subprotocols: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    message: str | None = None
    # Seconds the socket stays idle after the upgrade, before the message: a side whose idle
    # timeout is shorter closes it (`reset`), where the other echoes.
    idle_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request as both entry points receive it (before per-target headers are added).

    `url` keeps the production hostname: it becomes the Host header, the TLS SNI and the name
    the certificate is checked against (unless `tls.sni` says another); only the connection
    goes to a target's own address.
    """

    name: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    repeat: int = 1
    # Nothing unsafe (see `shadowdiff.wire.unsafe_reason`) is sent unless the request says so;
    # even then it is sent exactly `repeat` times unless a load model may cycle it too.
    allow_unsafe: bool = False
    repeat_under_load: bool = False
    # Overrides the targets' TLS settings for this request (HTTPS only).
    tls: RequestTls | None = None
    # Recorded traffic: when the request was recorded (seconds since the epoch), for
    # `load.pace: recorded`; None for a request written by hand or a source without times.
    recorded_at_s: float | None = None
    # Kinds of difference left out for this request (`ignore:`), e.g. "backend" behind a
    # weighted canary, where each side picks the backend at random.
    ignore_kinds: frozenset[str] = frozenset()
    # Compare which backend answered in proportion over the request's pairs, not pair by pair
    # (`backend_split:`): behind a weighted canary each side picks it at random.
    backend_split: bool = False
    # The HTTP version to speak (`http:`), None for the target's own setting.
    http: HttpVersion | None = None
    # Sent as a WebSocket upgrade, and one message echoed (`websocket:`); None for plain HTTP.
    websocket: WebSocketProbe | None = None
    # Where a generated request comes from (`shadowdiff plan`: namespace/ingress, rule,
    # annotation), for reports to point back to.
    origin: str | None = None
    # A gRPC call (`grpc:`): the method is POST, the URL's path the method's, the body the
    # framed message; its answer is compared as gRPC (status, trailers, message).
    grpc: GrpcCall | None = None

    @property
    def grpc_health(self) -> bool:
        """The gRPC health check: a read, though a POST with a body. The call's `health` flag
        counts only on the health check's own method, at its own path: a request built by
        hand may set the flag on any call."""
        return (
            self.grpc is not None
            and self.grpc.health
            and self.grpc.method == HEALTH_CHECK_METHOD
            and _path(self.url) == HEALTH_CHECK_METHOD
        )

    @property
    def unsafe_reason(self) -> str | None:
        """Why sending this request may change state on the backends, or None."""
        if self.websocket is not None and self.websocket.message is not None:
            return WEBSOCKET_MESSAGE_UNSAFE
        return unsafe_reason(self.method, self.headers, self.body, grpc_health=self.grpc_health)

    @property
    def may_repeat(self) -> bool:
        """Whether it may be sent more often than written: retried, calibrated, or cycled."""
        return self.unsafe_reason is None or self.repeat_under_load


def _path(url: str) -> str | None:
    try:
        return urlsplit(url).path
    except ValueError:  # a URL no request can be sent to (the wire checks say why)
        return None
