"""A request's `grpc:` section as the request that carries it: POST to the method's path over
HTTP/2, `content-type: application/grpc`, `te: trailers`, the framed message as the body.
Every way the section cannot be sent is a located problem. No I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from yarl import URL

from shadowdiff.errors import Problem
from shadowdiff.grpc import (
    HEALTH_CHECK_METHOD,
    GrpcCall,
    encode_health_request,
    frame,
    method_problem,
)
from shadowdiff.scenario.model import Request
from shadowdiff.scenario.yamlsource import FieldPath, SourceDocument
from shadowdiff.wire import http2_forbidden

# What every gRPC request carries (PROTOCOL-HTTP2.md): `te: trailers` tells proxies on the way
# that the client reads trailers, which some (nginx's grpc_pass among them) require.
GRPC_HEADERS: dict[str, str] = {"content-type": "application/grpc", "te": "trailers"}


@dataclass
class GrpcParts:
    """What a `grpc:` section makes of its request: the call, the URL to send to, the body."""

    call: GrpcCall | None = None
    url: str = ""
    body: bytes | None = None
    problems: list[Problem] = field(default_factory=list)


def grpc_parts(
    request: Request,
    url: str,
    path: FieldPath,
    document: SourceDocument,
    shared_headers: Sequence[tuple[FieldPath, Mapping[str, str]]],
) -> GrpcParts:
    """The gRPC call of `request` (whose `grpc` is set), sent to `url`'s host with its own
    headers and the `shared_headers` every request gets (the defaults', each target's), each
    with where it is written."""
    grpc = request.grpc
    assert grpc is not None
    parts = GrpcParts(url=url)

    def problem(where: FieldPath, message: str) -> None:
        parts.problems.append(document.problem((*path, *where), message))

    if "method" in request.model_fields_set and request.method != "POST":
        problem(("method",), "a gRPC call is a POST: leave method out")
    if request.body is not None:
        problem(("body",), "a gRPC call's body is its message: grpc.message_base64 or message_hex")
    for where, headers in (((*path, "headers"), request.headers), *shared_headers):
        for name, value in headers.items():
            # A gRPC call is always HTTP/2: a call that states one could never be sent.
            if http2_forbidden(name, value):
                parts.problems.append(
                    document.problem(
                        (*where, name),
                        f"{name} is connection-specific, which HTTP/2 forbids, and a gRPC call "
                        "is HTTP/2",
                    )
                )
    if request.http not in (None, "2"):
        problem(("http",), 'gRPC speaks HTTP/2 only: leave http out or write "2"')
    try:
        parsed = URL(url, encoded=True)
        target_path, query = parsed.raw_path, parsed.raw_query_string
    except ValueError:
        target_path, query = "/", ""  # the URL's own problem is reported by the loader
    if target_path not in ("", "/") or query:
        problem(
            ("url",),
            "a gRPC call's URL names the host only (path /): the method's path is grpc.method",
        )
    if grpc.health is not None:
        try:
            message = encode_health_request(grpc.health)
        except UnicodeError:
            problem(("grpc", "health"), "not a service name: it holds a lone surrogate")
            return parts
        method, health = HEALTH_CHECK_METHOD, True
    else:
        method, health = grpc.method or "", False
        if (reason := method_problem(method)) is not None:
            problem(("grpc", "method"), reason)
        try:
            if grpc.message_hex is not None:
                message = bytes.fromhex(grpc.message_hex)
            else:
                message = base64.b64decode(grpc.message_base64 or "", validate=True)
        except (ValueError, binascii.Error) as exc:
            which = "message_hex" if grpc.message_hex is not None else "message_base64"
            problem(("grpc", which), f"not {which.removeprefix('message_')}: {exc}")
            message = b""
    # Set even beside problems: the safety check names the call.
    parts.call = GrpcCall(method, message, health)
    if parts.problems:
        return parts
    parts.url = str(URL(url, encoded=True).origin()) + method
    parts.body = frame(message)
    return parts
