"""Real gRPC servers for the gRPC probe's tests: grpcio with the standard health service
(grpcio-health-checking) and one raw unary method, `/orders.v1.Orders/Get`, that answers
`answer_prefix + request` (or fails with `method_status`). h2c, or TLS when given a
certificate. Each server runs on its own threads until stopped.

And a hostile one on the `h2` library (asyncio, in the test's loop) whose answers no gRPC
server would give: a length prefix that lies, no grpc-status, a stall..."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Final, cast
from urllib.parse import quote_from_bytes

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from grpc_health.v1 import (  # type: ignore[import-untyped]  # no stubs are published
    health,
    health_pb2,
    health_pb2_grpc,
)
from hyperframe.frame import HeadersFrame

from shadowdiff.grpc import frame

from .h2_hostile import H2Server

ORDERS_SERVICE = "orders.v1.Orders"
GET_METHOD = "/orders.v1.Orders/Get"


@dataclass
class GrpcBehaviour:
    """What one side's server does: each field is a way the candidate may differ."""

    not_serving: frozenset[str] = frozenset()  # services whose health is NOT_SERVING
    answer_prefix: bytes = b"order:"
    method_status: grpc.StatusCode | None = None  # Get fails with this status
    method_message: str = ""
    has_get: bool = True  # False: Get is UNIMPLEMENTED (no handler)
    trailers: tuple[tuple[str, str], ...] = field(default=())


def _get_handler(behaviour: GrpcBehaviour) -> grpc.GenericRpcHandler:
    def get(request: bytes, context: grpc.ServicerContext) -> bytes:
        if behaviour.trailers:
            context.set_trailing_metadata(behaviour.trailers)
        if behaviour.method_status is not None:
            context.abort(behaviour.method_status, behaviour.method_message)
        return behaviour.answer_prefix + request

    # No (de)serializers: the method sees and answers raw bytes.
    return grpc.method_handlers_generic_handler(
        ORDERS_SERVICE, {"Get": grpc.unary_unary_rpc_method_handler(get)}
    )


@contextmanager
def grpc_server(
    behaviour: GrpcBehaviour, host: str = "127.0.0.1", tls: tuple[bytes, bytes] | None = None
) -> Iterator[int]:
    """A gRPC server on `host`, port 0; yields the port. `tls` is (key PEM, chain PEM)."""
    from concurrent.futures import ThreadPoolExecutor

    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    checker = health.HealthServicer()
    checker.set("", health_pb2.HealthCheckResponse.SERVING)
    for service in (ORDERS_SERVICE, "inventory.v1.Inventory"):
        status = (
            health_pb2.HealthCheckResponse.NOT_SERVING
            if service in behaviour.not_serving
            else health_pb2.HealthCheckResponse.SERVING
        )
        checker.set(service, status)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    if behaviour.has_get:
        server.add_generic_rpc_handlers((_get_handler(behaviour),))
    if tls is None:
        port = server.add_insecure_port(f"{host}:0")
    else:
        credentials = grpc.ssl_server_credentials([tls])
        port = server.add_secure_port(f"{host}:0", credentials)
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


# Hostile gRPC answers, by the method name a call asks for (`/hostile.v1.H/<behaviour>`):
# (head, data, trailers); None trailers end the stream with the data.
_OK_HEAD: Final = [(b":status", b"200"), (b"content-type", b"application/grpc")]
_OK_END: Final = [(b"grpc-status", b"0")]
HOSTILE_ANSWERS: Final[
    dict[str, tuple[list[tuple[bytes, bytes]], bytes, list[tuple[bytes, bytes]] | None]]
] = {
    "ok": (_OK_HEAD, b"\x00\x00\x00\x00\x03abc", _OK_END),
    "lying_prefix": (_OK_HEAD, b"\x00\x00\x00\x00\x64" + b"x" * 10, _OK_END),
    "huge_prefix": (_OK_HEAD, b"\x00\xff\xff\xff\xff" + b"x" * 10, _OK_END),
    "short_prefix": (_OK_HEAD, b"\x00\x00", _OK_END),
    "two_messages": (_OK_HEAD, b"\x00\x00\x00\x00\x01a" * 2, _OK_END),
    "compressed_no_encoding": (_OK_HEAD, b"\x01\x00\x00\x00\x03abc", _OK_END),
    "no_status": (_OK_HEAD, b"\x00\x00\x00\x00\x03abc", None),
    "status_not_number": (_OK_HEAD, b"", [(b"grpc-status", b"OK")]),
    "trailers_only": ([*_OK_HEAD, (b"grpc-status", b"12"), (b"grpc-message", b"nope")], b"", None),
    "encoded_message": (
        _OK_HEAD,
        b"",
        [(b"grpc-status", b"13"), (b"grpc-message", b"caf%C3%A9 %E2%9C%93%0D%0Ainjected%00")],
    ),
    "raw_utf8_message": (
        _OK_HEAD,
        b"",
        [(b"grpc-status", b"13"), (b"grpc-message", "raw café \x1b[31m".encode())],
    ),
    "html_404": ([(b":status", b"404"), (b"content-type", b"text/html")], b"<h1>404</h1>", None),
    # A grpc-message over response_limits.header_line_bytes (64 KiB by default).
    "long_message": (_OK_HEAD, b"", [(b"grpc-status", b"13"), (b"grpc-message", b"m" * 70_000)]),
    "big_message": (_OK_HEAD, b"\x00\x00\x01\x86\xa0" + b"m" * 100_000, _OK_END),
}


class _HostileGrpc(H2Server):
    """h2c with prior knowledge; answers each call by its method name: one of
    HOSTILE_ANSWERS, `reset` (RST_STREAM), `stall` (a head, then nothing) or
    `raw_crlf_message` (a grpc-message holding CR and LF, which HTTP/2 forbids). With `echo_side`
    it is an echo instead, which reflects the call's metadata into its answer (see `_echo`)."""

    def __init__(self, echo_side: str | None = None) -> None:
        super().__init__()
        self.echo_side = echo_side
        self._raw = b""  # frames written as they are, after h2's

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived) and event.stream_id is not None:
                fields = dict(event.headers or [])
                path = fields.get(b":path", b"")
                if self.echo_side is not None:
                    self._echo(event.stream_id, path, fields)
                else:
                    self._answer(event.stream_id, path.rsplit(b"/", 1)[-1].decode(), fields)
            elif isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
                self.conn.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id
                )
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self._raw + self.conn.data_to_send())
        self._raw = b""

    def _answer(self, stream_id: int, behaviour: str, fields: dict[bytes, bytes]) -> None:
        conn = self.conn
        if behaviour.startswith("echo_cut_"):
            self._echo_cut(stream_id, behaviour, fields.get(b"authorization", b"-"))
            return
        if behaviour == "reset":
            conn.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        if behaviour == "stall":
            conn.send_headers(stream_id, _OK_HEAD)
            return
        if behaviour == "raw_crlf_message":
            # A grpc-message with CR/LF as they are (HTTP/2 forbids them; h2 refuses to send
            # it): the trailer block is HPACK-coded by this connection's encoder and written raw.
            conn.send_headers(stream_id, _OK_HEAD)
            block = conn.encoder.encode([(b"grpc-status", b"13"), (b"grpc-message", b"a\r\nb")])
            # After what h2 has coded so far, before what it codes next: the decoder's order.
            self._raw += conn.data_to_send()
            self._raw += HeadersFrame(
                stream_id, data=block, flags=["END_STREAM", "END_HEADERS"]
            ).serialize()
            return
        head, data, trailers = HOSTILE_ANSWERS[behaviour]
        if not data and trailers is None:  # trailers-only: the one header block ends it
            conn.send_headers(stream_id, head, end_stream=True)
            return
        conn.send_headers(stream_id, head)
        size = conn.max_outbound_frame_size
        chunks = [data[at : at + size] for at in range(0, len(data), size)] or [b""]
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            if chunk or last:
                conn.send_data(stream_id, chunk, end_stream=last and trailers is None)
        if trailers is not None:
            conn.send_headers(stream_id, trailers, end_stream=True)

    def _echo_cut(self, stream_id: int, behaviour: str, seen: bytes) -> None:
        """The Authorization the call carried, where shadowdiff cuts what it shows: past the
        first 32 bytes of the answer (`echo_cut_answer`), past 300 characters of grpc-message
        (`echo_cut_message`, with UNAUTHENTICATED)."""
        if behaviour == "echo_cut_answer":
            message = b"order:" + b"q" * 20 + seen
            self.conn.send_headers(stream_id, _OK_HEAD)
            self.conn.send_data(stream_id, frame(message))
            self.conn.send_headers(stream_id, _OK_END, end_stream=True)
        else:
            text = b"x" * 285 + quote_from_bytes(seen).encode()
            head = [*_OK_HEAD, (b"grpc-status", b"16"), (b"grpc-message", text)]
            self.conn.send_headers(stream_id, head, end_stream=True)

    def _echo(self, stream_id: int, path: bytes, fields: dict[bytes, bytes]) -> None:
        """The health check answers SERVING with trailers that differ by side (a key the
        server made, the Authorization it saw); any other method answers OK on the baseline
        and UNAUTHENTICATED on the candidate, with the metadata it saw in grpc-message."""
        side = (self.echo_side or "").encode()
        seen = fields.get(b"authorization", b"-") + b" " + fields.get(b"x-token", b"-")
        if path.endswith(b"/Check"):
            self.conn.send_headers(stream_id, _OK_HEAD)
            self.conn.send_data(stream_id, b"\x00\x00\x00\x00\x02\x08\x01")
            trailers = [
                (b"grpc-status", b"0"),
                (b"x-api-key", b"server-grpc-key-secret-15-" + side),
                (b"x-seen", side + b" " + seen),
            ]
            self.conn.send_headers(stream_id, trailers, end_stream=True)
        elif side == b"baseline":
            self.conn.send_headers(stream_id, _OK_HEAD)
            self.conn.send_data(stream_id, b"\x00\x00\x00\x00\x02ok")
            self.conn.send_headers(stream_id, _OK_END, end_stream=True)
        else:
            message = b"token refused: " + quote_from_bytes(seen).encode()
            head = [*_OK_HEAD, (b"grpc-status", b"16"), (b"grpc-message", message)]
            self.conn.send_headers(stream_id, head, end_stream=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


@asynccontextmanager
async def hostile_grpc_server(
    echo_side: str | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[int]:
    """A hostile gRPC server (h2c; an echo for `echo_side`) on `host`; yields its port."""
    server = await asyncio.get_running_loop().create_server(
        lambda: _HostileGrpc(echo_side), host, port
    )
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


class _Http11Only(asyncio.Protocol):
    """What a server without HTTP/2 answers to h2c's preface: an HTTP/1.1 error."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        self.transport.close()


@asynccontextmanager
async def http11_only_server() -> AsyncIterator[int]:
    server = await asyncio.get_running_loop().create_server(_Http11Only, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
