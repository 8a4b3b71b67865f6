"""Facts about one certificate, parsed with `cryptography`: names, issuer, validity, key and
signature strength. Pure: DER bytes in, plain data out."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

# Security strength in bits (NIST SP 800-57 Part 1, table 2), for comparing keys of
# different types: RSA 2048 is weaker than EC P-256.
_RSA_STRENGTH: Final = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))
_HASH_BITS: Final = {
    "md5": 64,
    "sha1": 80,
    "sha224": 112,
    "sha256": 128,
    "sha384": 192,
    "sha512": 256,
}


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    subject: str
    issuer: str
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses
    serial: str  # hex
    not_before: str  # ISO 8601, UTC
    not_after: str
    key_type: str  # "RSA", "EC P-256", "Ed25519"
    key_bits: int
    key_strength_bits: int  # security strength, comparable across key types
    signature_algorithm: str  # "sha256WithRSAEncryption", "ecdsa-with-SHA384"
    signature_strength_bits: int | None  # of its hash; None for Ed25519/Ed448 (intrinsic)
    sha256: str  # fingerprint of the DER, hex
    self_signed: bool

    def days_to_expiry(self, now: datetime.datetime) -> int:
        """Whole days until not_after; negative once expired."""
        not_after = datetime.datetime.fromisoformat(self.not_after)
        return (not_after - now).days if not_after >= now else -((now - not_after).days + 1)


def _key(certificate: x509.Certificate) -> tuple[str, int, int]:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        strength = next((bits for size, bits in _RSA_STRENGTH if key.key_size >= size), 0)
        return "RSA", key.key_size, strength
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            key.curve.name, key.curve.name
        )
        return f"EC {name}", key.curve.key_size, min(key.curve.key_size // 2, 256)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, 128
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, 224
    if isinstance(key, dsa.DSAPublicKey):
        return (
            "DSA",
            key.key_size,
            next((bits for size, bits in _RSA_STRENGTH if key.key_size >= size), 0),
        )
    return type(key).__name__, 0, 0


def parse_certificate(der: bytes) -> CertificateInfo:
    certificate = x509.load_der_x509_certificate(der)
    try:
        alternative = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        names = tuple(
            [*alternative.get_values_for_type(x509.DNSName)]
            + [str(address) for address in alternative.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        names = ()
    key_type, key_bits, key_strength = _key(certificate)
    hash_algorithm = certificate.signature_hash_algorithm
    try:
        signature_name = certificate.signature_algorithm_oid._name
    except AttributeError:
        signature_name = certificate.signature_algorithm_oid.dotted_string
    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        names=names,
        serial=format(certificate.serial_number, "x"),
        not_before=certificate.not_valid_before_utc.isoformat(),
        not_after=certificate.not_valid_after_utc.isoformat(),
        key_type=key_type,
        key_bits=key_bits,
        key_strength_bits=key_strength,
        signature_algorithm=signature_name,
        signature_strength_bits=_HASH_BITS.get(hash_algorithm.name) if hash_algorithm else None,
        sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        self_signed=certificate.subject == certificate.issuer,
    )


def covers(names: tuple[str, ...], hostname: str) -> bool:
    """Whether a certificate with these subjectAltNames is valid for `hostname`.

    RFC 6125 section 6.4.3: a wildcard stands for exactly one whole left-most label; names
    compare case-insensitively; a trailing dot on the hostname does not count.
    """
    host = hostname.rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for name in names:
        name = name.lower()
        if address is not None:
            try:
                if ipaddress.ip_address(name) == address:
                    return True
            except ValueError:
                pass
            continue
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            first, rest = host.split(".", 1)
            if first and rest == name[2:]:
                return True
    return False
