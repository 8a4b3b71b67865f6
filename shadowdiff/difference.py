"""The difference model shared by every comparison."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: Final[dict[Severity, int]] = {"error": 0, "warning": 1, "info": 2}

DifferenceKind = Literal[
    "transport",  # one side failed on the wire, or both failed differently
    "status",
    "header_missing",  # the baseline sent it, the candidate did not
    "header_added",  # the candidate sent it, the baseline did not
    "header_changed",
    "redirect",  # Location differs after normalisation
    "cookie",  # a Set-Cookie by name: missing, added, or with other attributes
    "content_encoding",  # the body was encoded differently (its decoded content compares apart)
    "body",  # body hash or size differs (bodies that are not both JSON)
    "json_field",  # one field of a JSON body differs
    "backend",  # another service (or workload) answered, per the echo markers
    "backend_path",  # the backend saw another path (a rewrite changed)
    "backend_host",  # the backend saw another Host
    "backend_method",  # the backend saw another method
    "backend_header",  # a header the backend saw (forwarding headers, or one the client sent)
    "protocol",  # the HTTP version served differs: HTTP/2 on one side, HTTP/1.x on the other
    "websocket",  # a WebSocket upgrade agreed to another subprotocol, extensions, echo type
    "grpc",  # a gRPC call's status, grpc-message, health status or answer message
    "grpc_trailer",  # a trailer of a gRPC answer (other than its status fields)
    "latency",  # the candidate is clearly slower on a request (see report/latency_finding.py)
    "tls_handshake",  # the TLS probe could not complete a handshake with one side
    "tls_certificate",  # verification, hostname, issuer, expiry, key, signature, re-issue
    "tls_protocol",  # a protocol version accepted on one side only
    "tls_cipher",  # a TLS 1.2 cipher family accepted on one side only
    "tls_alpn",  # HTTP/2 offered on one side only
    "tls_default_certificate",  # what a handshake with no SNI or an unknown SNI gets
]


@dataclass(frozen=True, slots=True)
class Difference:
    """One way the candidate's answer differs from the baseline's.

    `field` names what differs (`status`, a header name, `$.service`); the values are shown as
    text, None when that side has no value at all.
    """

    kind: DifferenceKind
    field: str
    baseline: str | None
    candidate: str | None
    severity: Severity
    # What a person reads to see the change when the values alone do not say it (a short
    # unified diff of two text bodies); not part of the signature.
    detail: str | None = None

    @property
    def signature(self) -> tuple[str, str]:
        """What identical differences across requests share: kind and field, not values."""
        return (self.kind, self.field)
