"""A loopback server that reads what a transport writes with h11, a strict HTTP/1.1 parser, and
records each request exactly as it arrived: method, target and headers as bytes. A request
smuggled inside a header value shows up here as a second request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11


@dataclass
class WireRequest:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]  # names and values as sent
    body: bytes = b""


@dataclass
class WireServer:
    address: str
    port: int
    requests: list[WireRequest] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    connections: int = 0
    handlers: set[asyncio.Task[None]] = field(default_factory=set)


async def _serve(
    server: WireServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    server.connections += 1
    task = asyncio.current_task()
    if task is not None:
        server.handlers.add(task)
    connection = h11.Connection(h11.SERVER)
    current: WireRequest | None = None
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(65536), timeout=10)
                connection.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                current = WireRequest(event.method, event.target, list(event.headers.raw_items()))
            elif isinstance(event, h11.Data) and current is not None:
                current.body += event.data
            elif isinstance(event, h11.EndOfMessage) and current is not None:
                server.requests.append(current)
                current = None
                writer.write(
                    connection.send(
                        h11.Response(status_code=200, headers=[("Content-Length", "2")])
                    )
                    + connection.send(h11.Data(data=b"ok"))
                    + connection.send(h11.EndOfMessage())
                )
                await writer.drain()
                connection.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
    except h11.RemoteProtocolError as exc:
        server.protocol_errors.append(str(exc))
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def wire_server(address: str = "127.0.0.1") -> AsyncIterator[WireServer]:
    """A running `WireServer` on `address` (an ephemeral port), closed on exit."""
    server = WireServer(address, 0)
    listener = await asyncio.start_server(lambda r, w: _serve(server, r, w), address, 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        # Handlers still waiting on a kept-alive connection end with the server, not with
        # the event loop (which would print their cancellation).
        for handler in server.handlers:
            handler.cancel()
        await asyncio.gather(*server.handlers, return_exceptions=True)
        await listener.wait_closed()
