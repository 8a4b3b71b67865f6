"""The TLS probe: real handshakes with one entry point for one hostname, separate from the
request traffic. Each handshake is a new connection; this module does the I/O and returns
plain data (`TlsPosture`), failures included.

pyOpenSSL drives the probing handshakes: it returns the chain exactly as presented and sets
protocol versions, ciphers and ALPN precisely. Verification uses Python's `ssl`, the library the
request traffic uses, so the probe's verdict is the one requests get.
"""

from __future__ import annotations

import asyncio
import datetime
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from shadowdiff.tls.certificate import CertificateInfo, covers, parse_certificate

TLS_VERSIONS: Final = {
    "TLSv1.0": SSL.TLS1_VERSION,
    "TLSv1.1": SSL.TLS1_1_VERSION,
    "TLSv1.2": SSL.TLS1_2_VERSION,
    "TLSv1.3": SSL.TLS1_3_VERSION,
}
# TLS 1.2 cipher families worth knowing about in a migration: ingress-nginx offers ECDHE and
# DHE with GCM and CHACHA20; Envoy drops DHE; static RSA key exchange is the legacy one.
CIPHER_FAMILIES: Final = {
    "ECDHE-ECDSA-AESGCM": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AESGCM": "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-CHACHA20": "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
    "DHE": "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305",
    "RSA": "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA",
}
# Offer legacy protocols and ciphers too: the probe asks what the server accepts, so the
# client must not refuse first.
_ANYTHING: Final = "ALL:@SECLEVEL=0"
UNKNOWN_SNI: Final = "shadowdiff-probe.invalid"  # RFC 6761: never a real name


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Where and how to handshake with one entry point."""

    side: str
    address: str
    port: int
    ca_file: Path | None  # None: the system trust store
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Handshake:
    error_class: str | None = None  # refused, timeout, tls_handshake, other; None when it worked
    error: str | None = None
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    chain_der: tuple[bytes, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error_class is None


@dataclass(frozen=True, slots=True)
class DefaultCertificate:
    """What the entry point does with a handshake that names no known host."""

    accepted: bool
    subject: str | None = None
    sha256: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class TlsPosture:
    """Everything the probe learnt about one entry point for one hostname."""

    side: str
    host: str
    probed_at: str  # ISO 8601, UTC
    failure: str | None = None  # the main handshake's failure, "class: message"
    leaf: CertificateInfo | None = None
    chain: tuple[CertificateInfo, ...] = ()  # as presented, leaf first
    chain_in_order: bool = True  # each certificate issued by the next one
    verified: bool = False
    verify_error: str | None = None
    hostname_covered: bool = False
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    versions: dict[str, bool] = field(default_factory=dict)
    cipher_families: dict[str, bool] = field(default_factory=dict)
    no_sni: DefaultCertificate | None = None
    unknown_sni: DefaultCertificate | None = None

    @property
    def days_to_expiry(self) -> int | None:
        if self.leaf is None:
            return None
        return self.leaf.days_to_expiry(datetime.datetime.fromisoformat(self.probed_at))


def _connect(target: ProbeTarget) -> socket.socket:
    return socket.create_connection((target.address, target.port), timeout=target.timeout_s)


def handshake(
    target: ProbeTarget,
    server_name: str | None,
    *,
    version: int | None = None,
    ciphers: str = _ANYTHING,
    alpn: tuple[bytes, ...] = (),
) -> Handshake:
    """One handshake; failures are returned, not raised."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_verify(SSL.VERIFY_NONE)  # verification is its own step (`verify`)
    if version is not None:
        context.set_min_proto_version(version)
        context.set_max_proto_version(version)
    context.set_cipher_list(ciphers.encode())
    if alpn:
        context.set_alpn_protos(list(alpn))
    if target.client_cert is not None:
        context.use_certificate_chain_file(str(target.client_cert))
        context.use_privatekey_file(str(target.client_key or target.client_cert))
    try:
        sock = _connect(target)
    except ConnectionRefusedError as exc:
        return Handshake("refused", str(exc))
    except TimeoutError as exc:
        return Handshake("timeout", str(exc) or "connect timed out")
    except OSError as exc:
        return Handshake("other", str(exc))
    connection = SSL.Connection(context, sock)
    if server_name is not None:
        connection.set_tlsext_host_name(server_name.encode("idna"))
    connection.set_connect_state()
    deadline = time.monotonic() + target.timeout_s
    try:
        while True:
            # A socket with a timeout is non-blocking underneath: wait for the peer ourselves.
            try:
                connection.do_handshake()
                break
            except SSL.WantReadError:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
                    return Handshake("timeout", "handshake timed out")
        chain = connection.get_peer_cert_chain(as_cryptography=True) or []
        negotiated = connection.get_alpn_proto_negotiated()
        return Handshake(
            version=connection.get_protocol_version_name(),
            cipher=connection.get_cipher_name(),
            alpn=negotiated.decode() if negotiated else None,
            chain_der=tuple(certificate.public_bytes(Encoding.DER) for certificate in chain),
        )
    except SSL.Error as exc:
        return Handshake("tls_handshake", _ssl_reason(exc))
    except OSError as exc:
        return Handshake("tls_handshake", str(exc) or type(exc).__name__)
    finally:
        sock.close()


def _ssl_reason(exc: SSL.Error) -> str:
    details = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [item[-1] for item in details if isinstance(item, tuple) and item[-1]]
    return "; ".join(reasons) or str(exc) or "handshake refused"


def verify(target: ProbeTarget, server_name: str) -> str | None:
    """None when the chain verifies against the trust store; else OpenSSL's reason. The hostname
    is checked apart (`covers`), so that each finding is named for what it is."""
    context = ssl.create_default_context(cafile=str(target.ca_file) if target.ca_file else None)
    context.check_hostname = False
    if target.client_cert is not None:
        context.load_cert_chain(
            str(target.client_cert), str(target.client_key) if target.client_key else None
        )
    try:
        with _connect(target) as sock, context.wrap_socket(sock, server_hostname=server_name):
            return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except (ssl.SSLError, OSError) as exc:
        return f"handshake failed: {exc}"


def _default_certificate(target: ProbeTarget, server_name: str | None) -> DefaultCertificate:
    result = handshake(target, server_name)
    if not result.ok or not result.chain_der:
        return DefaultCertificate(False, error=result.error)
    leaf = parse_certificate(result.chain_der[0])
    return DefaultCertificate(True, subject=leaf.subject, sha256=leaf.sha256)


def probe_host(target: ProbeTarget, host: str, now: datetime.datetime) -> TlsPosture:
    """Every handshake for one (entry point, hostname). Blocking; run it in a thread."""
    probed_at = now.isoformat()
    main = handshake(target, host, alpn=(b"h2", b"http/1.1"))
    if not main.ok:
        return TlsPosture(target.side, host, probed_at, failure=f"{main.error_class}: {main.error}")
    chain = tuple(parse_certificate(der) for der in main.chain_der)
    leaf = chain[0] if chain else None
    verify_error = verify(target, host)
    return TlsPosture(
        side=target.side,
        host=host,
        probed_at=probed_at,
        leaf=leaf,
        chain=chain,
        chain_in_order=all(chain[i].issuer == chain[i + 1].subject for i in range(len(chain) - 1)),
        verified=verify_error is None,
        verify_error=verify_error,
        hostname_covered=leaf is not None and covers(leaf.names, host),
        version=main.version,
        cipher=main.cipher,
        alpn=main.alpn,
        versions={
            name: handshake(target, host, version=number).ok
            for name, number in TLS_VERSIONS.items()
        },
        cipher_families={
            name: handshake(
                target, host, version=SSL.TLS1_2_VERSION, ciphers=f"{suites}:@SECLEVEL=0"
            ).ok
            for name, suites in CIPHER_FAMILIES.items()
        },
        no_sni=_default_certificate(target, None),
        unknown_sni=_default_certificate(target, UNKNOWN_SNI),
    )


async def probe_hosts(
    targets: dict[str, ProbeTarget],
    hosts: list[str],
    now: datetime.datetime,
    concurrency: int = 8,
) -> list[tuple[str, TlsPosture, TlsPosture]]:
    """Probe each host on both sides, `concurrency` probes at a time (each in a thread)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(side: str, host: str) -> TlsPosture:
        async with limit:
            return await asyncio.to_thread(probe_host, targets[side], host, now)

    results = await asyncio.gather(
        *(one(side, host) for host in hosts for side in ("baseline", "candidate"))
    )
    return [(host, results[2 * i], results[2 * i + 1]) for i, host in enumerate(hosts)]
