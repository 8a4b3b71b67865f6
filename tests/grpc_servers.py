"""Real gRPC servers for the gRPC probe's tests: grpcio with the standard health service
(grpcio-health-checking) and one raw unary method, `/orders.v1.Orders/Get`, that answers
`answer_prefix + request` (or fails with `method_status`). h2c, or TLS when given a
certificate. Each server runs on its own threads until stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped]  # no stubs are published
    health,
    health_pb2,
    health_pb2_grpc,
)

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
