"""gRPC over HTTP/2 as plain data: the call a request makes (`GrpcCall`), the 5-byte
length-prefixed framing, the two health-check messages, and what an answer says (status,
message, the answer's message). Pure: no I/O.

The health messages (grpc/health/v1/health.proto) are one string field and one enum field:
they are encoded and decoded here with the few lines of the protobuf wire format they need
(https://protobuf.dev/programming-guides/encoding/), bounded, rather than with generated code
and a protobuf runtime for two fixed fields. A user's own method is sent and compared as raw
bytes, never decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

HEALTH_CHECK_METHOD: Final = "/grpc.health.v1.Health/Check"
# https://github.com/grpc/grpc/blob/master/doc/statuscodes.md
STATUS_NAMES: Final[dict[int, str]] = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
# HealthCheckResponse.ServingStatus.
HEALTH_NAMES: Final[dict[int, str]] = {
    0: "UNKNOWN",
    1: "SERVING",
    2: "NOT_SERVING",
    3: "SERVICE_UNKNOWN",
}
# What a gRPC client makes of an HTTP status that came without grpc-status
# (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md).
_HTTP_TO_GRPC: Final[dict[int, int]] = {
    400: 13,
    401: 16,
    403: 7,
    404: 12,
    429: 14,
    502: 14,
    503: 14,
    504: 14,
}
# The trailer fields the gRPC comparison reads itself; every other one compares as a header.
GRPC_STATUS_FIELDS: Final = frozenset({"grpc-status", "grpc-message", "grpc-status-details-bin"})
# `/package.Service/Method` (the package is optional), as protobuf names them: no character
# that could split a request line or a header block can pass.
_IDENTIFIER: Final = r"[A-Za-z_][A-Za-z0-9_]*"
_METHOD_PATH: Final = re.compile(rf"/(?:{_IDENTIFIER}\.)*{_IDENTIFIER}/{_IDENTIFIER}")
PREFIX_BYTES: Final = 5
# A grpc-message is compared whole and shown cut to this many characters.
_MESSAGE_CHARS: Final = 300


@dataclass(frozen=True, slots=True)
class GrpcCall:
    """A request's gRPC call: `method` is the path (`/pkg.Service/Method`), `message` the
    serialized request message (without the 5-byte prefix); `health` is True for
    grpc.health.v1.Health/Check, the one call sent without allow_unsafe."""

    method: str
    message: bytes
    health: bool = False


@dataclass(frozen=True, slots=True)
class GrpcAnswer:
    """What one side's gRPC answer says. `status_from_http` when the answer held no
    grpc-status and the code is what a client makes of the HTTP status."""

    status: int
    # grpc-message, percent-decoded and made printable, whole (a header field, so within
    # response_limits): compared whole, shown cut (`shown_message`); "" when absent.
    message: str
    status_from_http: bool = False
    # The answer's message without its prefix: None when there was none (an error status),
    # or when it was not captured whole (longer than body_capture).
    payload: bytes | None = None
    payload_bytes: int = 0

    @property
    def status_text(self) -> str:
        text = f"{self.status} {STATUS_NAMES.get(self.status, 'unknown code')}"
        return f"{text} (from HTTP)" if self.status_from_http else text


def method_problem(method: str) -> str | None:
    """Why `method` is not a gRPC method path, or None."""
    if _METHOD_PATH.fullmatch(method) is None:
        return f"expected a method path such as /package.Service/Method; got {quoted(method)}"
    return None


def quoted(text: str, chars: int = 80) -> str:
    """`text` as a message quotes it, cut to `chars` with a '…' after the quote: a secret cut
    there (an environment value in a method) is then still hidden (shadowdiff.redaction)."""
    return repr(text[:chars]) + ("…" if len(text) > chars else "")


def frame(message: bytes) -> bytes:
    """One uncompressed length-prefixed message, as a gRPC request body carries it."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def encode_health_request(service: str) -> bytes:
    """HealthCheckRequest{service}: field 1, a length-delimited string (empty: no field)."""
    data = service.encode("utf-8")
    if not data:
        return b""
    return b"\x0a" + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at `at` and the offset after it; ValueError when cut or over 64 bits."""
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a varint that is cut short or longer than 10 bytes")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def decode_health_status(message: bytes) -> str:
    """HealthCheckResponse.status by name (UNKNOWN when the field is absent, as protobuf
    reads a missing enum); the number itself when no name is known. ValueError when the
    bytes are not a protobuf message."""
    status = 0
    at = 0
    while at < len(message):
        key, at = _read_varint(message, at)
        field_number, wire_type = key >> 3, key & 7
        if field_number == 0:
            raise ValueError("field number 0")
        if wire_type == 0:
            value, at = _read_varint(message, at)
            if field_number == 1:
                status = value
        elif wire_type == 2:
            length, at = _read_varint(message, at)
            if at + length > len(message):
                raise ValueError("a length-delimited field longer than the message")
            at += length
        elif wire_type in (1, 5):
            at += 8 if wire_type == 1 else 4
            if at > len(message):
                raise ValueError("a fixed-size field longer than the message")
        else:
            raise ValueError(f"wire type {wire_type}")
    # An enum is an int32: negative values come as 10-byte varints.
    if status >= 2**63:
        status -= 2**64
    return HEALTH_NAMES.get(status, str(status))


def grpc_fields(
    headers: tuple[tuple[str, str], ...], trailers: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """The fields that end the call: the trailers, or the head of a trailers-only answer
    (grpc-status in the one header block, PROTOCOL-HTTP2.md), lower-case names."""
    if trailers:
        return tuple((name.lower(), value) for name, value in trailers)
    return tuple(
        (name.lower(), value) for name, value in headers if name.lower() in GRPC_STATUS_FIELDS
    )


def read_answer(
    http_status: int | None,
    headers: tuple[tuple[str, str], ...],
    trailers: tuple[tuple[str, str], ...],
    body: bytes,
    body_bytes: int,
) -> GrpcAnswer | str:
    """What a gRPC answer says, or why it is not one (a message for `malformed_response`).

    `body` is the captured start of the answer's data, `body_bytes` its whole size. A unary
    answer holds at most one message: its prefix must state exactly the bytes that came.
    """
    ending = dict(grpc_fields(headers, trailers))
    raw_status = ending.get("grpc-status")
    message = printable_message(ending.get("grpc-message", ""))
    if raw_status is None:
        if http_status is not None and http_status != 200:
            code = _HTTP_TO_GRPC.get(http_status, 2)
            return GrpcAnswer(code, message, status_from_http=True)
        return "a gRPC answer without grpc-status (no trailers, and none in its head)"
    if not (raw_status.isascii() and raw_status.isdigit() and len(raw_status) <= 3):
        return f"grpc-status is not a number: {quoted(raw_status, 40)}"
    status = int(raw_status)
    if body_bytes == 0:
        return GrpcAnswer(status, message)
    if len(body) < PREFIX_BYTES:
        return f"a gRPC message of {body_bytes} bytes, shorter than its 5-byte prefix"
    compressed, length = body[0], int.from_bytes(body[1:5], "big")
    if compressed not in (0, 1):
        return f"a gRPC message whose compressed flag is {compressed} (only 0 and 1 exist)"
    encoding = next((v for k, v in headers if k.lower() == "grpc-encoding"), "identity")
    if compressed and encoding.strip().lower() == "identity":
        return "a compressed gRPC message without a grpc-encoding to say how"
    if PREFIX_BYTES + length != body_bytes:
        return (
            f"the gRPC length prefix says {length} bytes, and {body_bytes - PREFIX_BYTES} "
            "followed (a unary answer holds one message)"
        )
    payload = body[PREFIX_BYTES:] if len(body) == body_bytes else None
    # A compressed message is compared as it came: its bytes, not decompressed.
    return GrpcAnswer(status, message, payload=payload, payload_bytes=length)


def answer_outcome(
    http_status: int | None,
    headers: tuple[tuple[str, str], ...],
    trailers: tuple[tuple[str, str], ...],
    body: bytes,
    body_bytes: int,
    *,
    health: bool,
) -> str:
    """What one answer to a gRPC call came to, in the words of the differences: the
    grpc-status name (`OK`, `UNIMPLEMENTED`; `code 42` for a code without one), read from the
    HTTP status as a gRPC client does where the answer held none (`UNIMPLEMENTED (HTTP 404)`);
    for a health check answered OK, the serving status it reported (`SERVING`,
    `NOT_SERVING`). An HTTP 200 is no outcome of a call: it carries every one of them."""
    answer = read_answer(http_status, headers, trailers, body, body_bytes)
    if isinstance(answer, str):
        return f"not gRPC (HTTP {http_status})"
    name = STATUS_NAMES.get(answer.status, f"code {answer.status}")
    if answer.status_from_http:
        return f"{name} (HTTP {http_status})"
    if health and answer.status == 0 and answer.payload:
        try:
            serving = decode_health_status(answer.payload)
        except ValueError:
            return name  # the difference `grpc: health` says what came instead
        return serving if serving in HEALTH_NAMES.values() else f"OK (health {serving})"
    return name


def printable_message(value: str) -> str:
    """grpc-message as a person reads it: percent-decoded UTF-8 (PROTOCOL-HTTP2.md), control
    characters escaped."""
    text = unquote_to_bytes(value.encode("latin-1", "replace")).decode("utf-8", "replace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def shown_message(message: str) -> str:
    """A printable grpc-message cut to a few hundred characters, for a report."""
    return message if len(message) <= _MESSAGE_CHARS else message[:_MESSAGE_CHARS] + "…"
