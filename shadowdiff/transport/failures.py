"""The failure class of each fault on the wire, for both transports: one table, so that the
same fault is the same class whichever transport met it. No I/O.

The aiohttp transport unwraps aiohttp's exceptions to the OS and TLS errors underneath and
asks here; the lean transport asks here about what the event loop raised.

    fault                                         class
    nothing listens                               refused
    the name of a target's address unknown        dns
    RST or EOF before the answer was complete     reset    (an RST during the TLS handshake
                                                            too)
    a TLS alert, a protocol error, or a close     tls_handshake (Envoy closes the handshake of
    in the middle of the handshake                              an SNI no listener serves)
    the certificate does not verify               tls_verify
    no connection within connect_s                timeout_connect
    no complete answer within total_s             timeout
    bytes that are not HTTP/1.x, a head over      malformed_response
    defaults.response_limits, bad chunk framing

HTTP/2 adds its own (h2_connection.py and lean_h2.py say where each is decided): a stream
reset, above a GOAWAY's last stream, or on a connection whose SETTINGS allow no stream is
`reset`; a frame h2 refuses, a malformed answer
(that stream alone, h2_state.py), or h2c answered in anything but HTTP/2, is
`malformed_response`; a server that does not choose h2 by ALPN when
`http: "2"` asks for it is `tls_handshake`.

The WebSocket probe adds its own (websocket.py): a 101 a client must refuse, frames wsproto
refuses, or an echo over its cap is `malformed_response`; a close frame or EOF before the echo
is `reset`; an upgrade and echo not done within total_s is `timeout`.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import Final

from shadowdiff.observation import ErrorClass

_BY_ERRNO: Final[dict[int, ErrorClass]] = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "reset",
    errno.ECONNABORTED: "reset",
    errno.ETIMEDOUT: "timeout_connect",
}


def classify_os_error(exc: BaseException, *, connecting: bool) -> ErrorClass:
    """The class of an OS, TLS or stream error; `connecting` when it happened while the
    connection (TCP and TLS) was being set up."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls_verify"
    if isinstance(exc, ssl.SSLError):
        # uvloop reports an RST during the handshake as an SSLError carrying ECONNRESET.
        return _BY_ERRNO.get(exc.errno or 0, "tls_handshake")
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, TimeoutError):
        return "timeout_connect" if connecting else "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionError | EOFError | asyncio.IncompleteReadError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno in _BY_ERRNO:
        return _BY_ERRNO[exc.errno]
    return "other"
