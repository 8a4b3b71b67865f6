"""Raw loopback servers that answer with chosen bytes and faults (resets, TLS cut short):
what a misbehaving entry point does on the wire, for the failure-class and fuzz tests."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

# One connection's behaviour: read the request from `reader`, answer on `writer`.
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The request head, or what arrived before the client stopped sending."""
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        return b""


def answering(answer: bytes, then_reset: bool = False) -> Behaviour:
    """Read the request, write `answer`, then close (or reset)."""

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(answer)
        await writer.drain()
        if then_reset:
            reset(writer)

    return behave


async def reset_on_accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    reset(writer)


async def reset_after_client_hello(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await reader.read(5)  # the TLS record header of the ClientHello
    reset(writer)


@asynccontextmanager
async def fault_server(
    behaviour: Behaviour,
    address: str = "127.0.0.1",
    tls: ssl.SSLContext | None = None,
    lifetime_s: float = 30,
) -> AsyncIterator[int]:
    """Serve `behaviour` on every connection until the block ends (or `lifetime_s` passes:
    a forgotten server cannot outlive its test by much); yields the port."""
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await behaviour(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the client went away first: that is its business
        except asyncio.CancelledError:
            # Cancelled by the server's end below. Ending normally, so that asyncio's
            # connection callback does not log the cancellation as an error.
            pass
        finally:
            writer.transport.abort()
            handlers.discard(task)

    server = await asyncio.start_server(handle, address, 0, ssl=tls)
    stop = asyncio.get_running_loop().call_later(lifetime_s, server.close)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        stop.cancel()
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
