"""The WebSocket opening handshake as the probe writes and checks it (RFC 6455 section 4): the
upgrade request's head, and whether a 101 answer is one a client may accept. Pure: no I/O.

The key is random per connection, as the RFC asks, so the Sec-WebSocket-Accept values of two
answers never compare equal: each is checked against its own key here, and the comparison
only sees whether both sides upgraded (a wrong one fails that side as `malformed_response`).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass

from wsproto.utilities import generate_accept_token

from shadowdiff.spec import WebSocketProbe


def new_key() -> str:
    """A Sec-WebSocket-Key: 16 random bytes, base64 (RFC 6455 section 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer `key` with (RFC 6455 section 4.2.2)."""
    return generate_accept_token(key.encode("ascii")).decode("ascii")


def upgrade_headers(probe: WebSocketProbe, key: str) -> list[tuple[str, str]]:
    """The header lines that make a GET a WebSocket upgrade, offering what `probe` offers."""
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if probe.subprotocols:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(probe.subprotocols)))
    if probe.extensions:
        headers.append(("Sec-WebSocket-Extensions", ", ".join(probe.extensions)))
    return headers


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What a 101 answer agreed to: the subprotocol chosen (None for none) and each extension
    accepted, as the server wrote it (name and parameters)."""

    subprotocol: str | None
    extensions: tuple[str, ...]


class HandshakeRefused(Exception):
    """A 101 answer that a client must refuse (RFC 6455 section 4.1, the client's checks); the
    message says which check failed, quoting no header value."""


def _values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    """Every comma-separated member of header `name`, stripped, empty ones left out."""
    return [
        member.strip()
        for key, value in headers
        if key.lower() == name
        for member in value.split(",")
        if member.strip()
    ]


def _extension_name(offer: str) -> str:
    return offer.split(";", 1)[0].strip().lower()


def check_upgrade(probe: WebSocketProbe, key: str, headers: Sequence[tuple[str, str]]) -> Upgrade:
    """What the 101 answer with `headers` agreed to, once it passes the client's checks.
    Raises `HandshakeRefused`."""
    if "websocket" not in (v.lower() for v in _values(headers, "upgrade")):
        raise HandshakeRefused("101 without Upgrade: websocket")
    if "upgrade" not in (v.lower() for v in _values(headers, "connection")):
        raise HandshakeRefused("101 without Connection: Upgrade")
    accepts = [value.strip() for name, value in headers if name.lower() == "sec-websocket-accept"]
    if not accepts:
        raise HandshakeRefused("101 without Sec-WebSocket-Accept")
    if accepts != [accept_for(key)]:
        raise HandshakeRefused(
            "101 whose Sec-WebSocket-Accept does not answer the key sent (clients refuse the "
            "upgrade; a proxy that rewrote or cached the handshake?)"
        )
    chosen = _values(headers, "sec-websocket-protocol")
    if len(chosen) > 1:
        raise HandshakeRefused(f"101 choosing {len(chosen)} subprotocols; at most one is allowed")
    if chosen and chosen[0] not in probe.subprotocols:
        raise HandshakeRefused("101 choosing a subprotocol that was not offered")
    offered = {_extension_name(offer) for offer in probe.extensions}
    accepted = _values(headers, "sec-websocket-extensions")
    if any(_extension_name(extension) not in offered for extension in accepted):
        raise HandshakeRefused("101 accepting an extension that was not offered")
    return Upgrade(chosen[0] if chosen else None, tuple(accepted))
