"""The loop's reports during a replay: uvloop's TLS start on a closed transport is dropped
(the dial classifies that close itself), anything else is reported once per kind."""

from __future__ import annotations

import asyncio
from typing import Any

from shadowdiff.transport.loop_noise import quiet_loop_noise

# What uvloop hands the loop when a server closed the connection before the TLS start.
_RACE = {
    "message": "Exception in callback <bound method SSLProtocol.connection_made of "
    "<uvloop.loop.SSLProtocol object at 0x7f334812e6c0>>",
    "exception": RuntimeError(
        "unable to perform operation on <TCPTransport closed=True reading=False "
        "0x55d9c0d2b4d0>; the handler is closed"
    ),
}


async def test_the_tls_start_race_is_dropped_and_other_kinds_are_reported_once() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        with quiet_loop_noise(loop):
            for _ in range(3):
                loop.call_exception_handler(dict(_RACE))
                loop.call_exception_handler(
                    {"message": "Exception in callback f()", "exception": ValueError("x")}
                )
        assert [type(c["exception"]) for c in reported] == [ValueError]
        loop.call_exception_handler(dict(_RACE))  # after the block: the handler it had
        assert len(reported) == 2
    finally:
        loop.set_exception_handler(None)
