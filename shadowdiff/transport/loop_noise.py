"""Keep the event loop's report of one known uvloop race off stderr during a replay.

When a server closes a TLS connection before uvloop has started its handshake (nginx at its
worker_connections, say), uvloop's SSLProtocol.connection_made writes on the closed transport
and raises from a loop callback; the loop then prints the traceback. The dial that opened the
connection sees the close as well and classifies it (a `reset` or `tls_handshake` failure, in
the report), so the traceback says nothing new, and under load it floods stderr with
thousands of lines. Every other exception the loop reports goes on as before, once per kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def is_tls_start_on_closed_transport(context: dict[str, Any]) -> bool:
    """Whether a loop exception context is uvloop's TLS start on a transport already closed."""
    exc = context.get("exception")
    return (
        isinstance(exc, RuntimeError)
        and "SSLProtocol.connection_made" in str(context.get("message", ""))
        and "closed=True" in str(exc)
    )


@contextmanager
def quiet_loop_noise(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While the block runs, drop the race above from the loop's reports, and report any
    other kind of exception once (the loop would print one traceback per callback)."""
    previous = loop.get_exception_handler()
    seen: set[tuple[type[BaseException] | None, str]] = set()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if is_tls_start_on_closed_transport(context):
            return
        exc = context.get("exception")
        kind = (None if exc is None else type(exc), str(context.get("message", ""))[:80])
        if kind in seen:
            return
        seen.add(kind)
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)
