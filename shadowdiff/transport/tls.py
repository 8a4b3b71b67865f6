"""Client TLS for the transports: contexts built from the scenario's settings, and what a
negotiated session says. No network of its own."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

from shadowdiff.errors import UsageError
from shadowdiff.observation import TlsSession
from shadowdiff.scenario.model import TargetTls


def client_context(
    settings: TargetTls, resolve_path: Callable[[str], Path], alpn: tuple[str, ...] = ("http/1.1",)
) -> ssl.SSLContext:
    """Verify against `settings.ca` (or the system store) unless `insecure`; add the mTLS pair.

    ALPN offers only what the transport speaks: offering h2 and then speaking HTTP/1.1 would
    break against an entry point that picks h2.
    """
    try:
        context = ssl.create_default_context(
            cafile=str(resolve_path(settings.ca)) if settings.ca else None
        )
        if settings.client_cert:
            context.load_cert_chain(
                str(resolve_path(settings.client_cert)),
                str(resolve_path(settings.client_key)) if settings.client_key else None,
            )
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"cannot load TLS files: {exc}") from exc
    if settings.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    return context


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
