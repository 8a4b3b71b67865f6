"""Client TLS contexts for one target, built from the scenario's settings. No network."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from shadowdiff.errors import UsageError
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
