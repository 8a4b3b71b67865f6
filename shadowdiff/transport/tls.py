"""Client TLS for the transports: contexts built from a target's settings and a request's
overrides, and what a negotiated session says. No network of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import warnings
from collections.abc import Iterable
from typing import Final

from shadowdiff.endpoint import ClientTls
from shadowdiff.errors import UsageError
from shadowdiff.observation import TlsSession
from shadowdiff.spec import RequestTls

_VERSIONS: Final = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def client_context(
    settings: ClientTls,
    alpn: tuple[str, ...] = ("http/1.1",),
    override: RequestTls | None = None,
) -> ssl.SSLContext:
    """Verify against `settings.ca` (or the system store) unless `insecure`; add the mTLS pair.
    A request's `override` replaces the CA, `insecure` and the versions where it gives them.

    ALPN offers only what the transport speaks: offering h2 and then speaking HTTP/1.1 would
    break against an entry point that picks h2.
    """
    ca = settings.ca
    insecure = settings.insecure
    if override is not None:
        ca = settings.resolve(override.ca) if override.ca is not None else ca
        insecure = override.insecure if override.insecure is not None else insecure
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if settings.client_cert:
            context.load_cert_chain(
                str(settings.client_cert),
                str(settings.client_key) if settings.client_key else None,
            )
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"cannot load TLS files: {exc}") from exc
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if override is not None and (override.min_version or override.max_version):
        with warnings.catch_warnings():
            # Python calls TLS 1.0 and 1.1 deprecated; a request that names them is a probe.
            warnings.simplefilter("ignore", DeprecationWarning)
            if override.min_version:
                context.minimum_version = _VERSIONS[override.min_version]
                if context.minimum_version < ssl.TLSVersion.TLSv1_2:
                    # OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security level (the
                    # TLS probe lowers it the same way).
                    context.set_ciphers("DEFAULT:@SECLEVEL=0")
            if override.max_version:
                context.maximum_version = _VERSIONS[override.max_version]
    context.set_alpn_protocols(list(alpn))
    return context


class ClientContexts:
    """One target's TLS contexts: its own and one per distinct request override, each built
    once (loading a trust store is slow). SNI is no part of a context: it is given per
    connection."""

    def __init__(self, settings: ClientTls, alpn: tuple[str, ...] = ("http/1.1",)) -> None:
        self._settings = settings
        self._alpn = alpn
        self._built: dict[RequestTls | None, ssl.SSLContext] = {}

    def get(self, override: RequestTls | None = None) -> ssl.SSLContext:
        key = None if override is None else dataclasses.replace(override, sni=None)
        if key == RequestTls():
            key = None
        context = self._built.get(key)
        if context is None:
            context = self._built[key] = client_context(self._settings, self._alpn, key)
        return context

    def prepare(self, overrides: Iterable[RequestTls]) -> None:
        """Build the target's context and one per override now, so that an unusable TLS file
        stops the run before it starts."""
        self.get()
        for override in overrides:
            self.get(override)


def tls_session(transport: asyncio.BaseTransport | None) -> TlsSession | None:
    """The negotiated version, cipher, ALPN and peer certificate of a TLS transport."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    return TlsSession(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        alpn=ssl_object.selected_alpn_protocol(),
        peer_certificate_der=ssl_object.getpeercert(binary_form=True),
    )
