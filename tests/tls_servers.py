"""Real TLS servers on loopback for the TLS probe tests: certificates per SNI name, a default
certificate or a refused handshake for other names, and chosen versions, ciphers and ALPN."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass
class ServerSpec:
    certificates: dict[str, trustme.LeafCert | tuple[Path, Path]]  # SNI name -> certificate
    default: trustme.LeafCert | tuple[Path, Path] | None = (
        None  # for no SNI / unknown; None refuses
    )
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    ciphers: str | None = None
    alpn: list[str] = field(default_factory=lambda: ["h2", "http/1.1"])
    client_ca: trustme.CA | None = None  # ask for a client certificate issued by this CA
    client_subjects: list[str] = field(default_factory=list)  # filled in as clients present one


def _context(spec: ServerSpec, certificate: trustme.LeafCert | tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 enum members
        context.minimum_version = spec.minimum
        context.maximum_version = spec.maximum
    # Level 0 lets a server configured for TLS 1.0 really accept it; tests choose the ciphers.
    context.set_ciphers((spec.ciphers or "ALL") + ":@SECLEVEL=0")
    if spec.alpn:
        context.set_alpn_protocols(spec.alpn)
    if isinstance(certificate, tuple):
        context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    else:
        certificate.configure_cert(context)
    if spec.client_ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
        spec.client_ca.configure_trust(context)
    return context


@contextmanager
def tls_server(spec: ServerSpec, address: str = "127.0.0.1") -> Iterator[int]:
    """Serve handshakes until the block ends; yields the port."""
    by_name = {name: _context(spec, cert) for name, cert in spec.certificates.items()}
    first = spec.default or next(iter(spec.certificates.values()))
    base = _context(spec, first)

    def choose(connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> int | None:
        if name in by_name:
            connection.context = by_name[name]
            return None
        if spec.default is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME  # like nginx ssl_reject_handshake on
        return None

    base.sni_callback = choose
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen(64)
    # A thread blocked in accept() is not woken by close() on Linux: poll so it can stop.
    listener.settimeout(0.05)
    stopping = threading.Event()

    def handle(connection: socket.socket) -> None:
        connection.settimeout(2)
        try:
            with base.wrap_socket(connection, server_side=True) as tls:
                peer = tls.getpeercert()
                if peer:
                    # The subject is relative names of (name, value) pairs; typeshed types
                    # every getpeercert() field as one union, hence the isinstance.
                    first = [relative_name[0] for relative_name in peer["subject"]]
                    attributes = dict(pair for pair in first if isinstance(pair, tuple))
                    spec.client_subjects.append(attributes["commonName"])
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass
        finally:
            connection.close()

    with _accepting(listener, stopping, handle) as port:
        yield port


def issue_with_hash(
    authority: trustme.CA,
    folder: Path,
    name: str,
    algorithm: hashes.SHA256 | hashes.SHA384 | hashes.SHA512,
) -> tuple[Path, Path]:
    """A leaf for `name` signed by `authority` with a chosen hash (trustme always uses SHA-256)."""
    ca_key = serialization.load_pem_private_key(authority.private_key_pem.bytes(), password=None)
    # trustme's CAs have ECDSA keys, RSA ones when asked: both sign certificates.
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    ca_cert = x509.load_pem_x509_certificate(authority.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, algorithm)
    )
    cert_file = folder / f"{name}-{algorithm.name}.pem"
    key_file = folder / f"{name}-{algorithm.name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def mute_after_answer_server(
    certificate: trustme.LeafCert, address: str = "127.0.0.1"
) -> Iterator[int]:
    """A keep-alive HTTPS server that answers every request, but neither answers a client's
    TLS close_notify nor closes: the socket stays open until the block ends. Yields the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen(64)
    listener.settimeout(0.05)
    stopping = threading.Event()
    held: list[socket.socket] = []

    def handle(connection: socket.socket) -> None:
        connection.settimeout(5)
        try:
            tls = context.wrap_socket(connection, server_side=True)
            held.append(tls)
            head = b""
            while not stopping.is_set():
                chunk = tls.recv(4096)
                if not chunk:
                    return  # close_notify or EOF: left unanswered, the socket kept open
                head += chunk
                while b"\r\n\r\n" in head:
                    _, head = head.split(b"\r\n\r\n", 1)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (OSError, ssl.SSLError):
            return

    try:
        with _accepting(listener, stopping, handle) as port:
            yield port
    finally:
        for tls in held:
            tls.close()


@contextmanager
def _accepting(
    listener: socket.socket,
    stopping: threading.Event,
    handle: Callable[[socket.socket], None],
) -> Iterator[int]:
    """Accept on `listener` (which polls: it has a timeout) in a thread, each connection
    handled in a thread of its own, until the block ends; yields the port."""

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stopping.set()
        listener.close()
        thread.join(timeout=1)
