"""The least a Python client can do per request, on the libraries shadowdiff is built on.

    python benchmarks/bare.py http URL CONNECTIONS SECONDS
    python benchmarks/bare.py h2 URL CONNECTIONS STREAMS SECONDS CA_FILE

HTTP/1.1: uvloop's protocols and httptools (llhttp), one fixed request per connection at a
time, each answer's header lines kept and its body hashed, the next request written as soon
as the answer ends. HTTP/2: the same over TLS with the h2 library, several streams per
connection. Nothing is compared, timed per phase, recorded or reported: this is the ceiling
any Python tool on these libraries can reach on this machine, measured in the same run as the
peers (`run.py`), so that the gap between a peer and shadowdiff can be split into what the
runtime costs and what shadowdiff's own work per pair costs.

It prints one line: `requests/s N p50_ms N p99_ms N`. Traffic goes only to the URL given
(the benchmark's nginx on loopback), for SECONDS.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import httptools
import numpy as np
import uvloop

_WARMUP_S = 1.0


class _Figures:
    """Answers counted, and their latencies, once the warm-up is over."""

    def __init__(self) -> None:
        self.measuring = False
        self.latencies_ns: list[int] = []

    def answered(self, started_ns: int) -> None:
        if self.measuring:
            self.latencies_ns.append(time.perf_counter_ns() - started_ns)


class _H1(asyncio.Protocol):
    def __init__(self, request: bytes, figures: _Figures) -> None:
        self.request, self.figures = request, figures
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.digest = hashlib.sha256()
        self.started_ns = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.headers, self.digest = [], hashlib.sha256()
        self.started_ns = time.perf_counter_ns()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.digest.update(body)

    def on_message_complete(self) -> None:
        self.figures.answered(self.started_ns)
        self._send()


class _H2(asyncio.Protocol):
    def __init__(self, host: str, path: str, streams: int, figures: _Figures) -> None:
        self.figures, self.streams = figures, streams
        self.connection = h2.connection.H2Connection(
            # The library's cheapest settings: no checks or normalising of header fields.
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
            )
        )
        self.request = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", host.encode()),
            (b":path", path.encode()),
        ]
        self.started_ns: dict[int, int] = {}
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.connection.initiate_connection()
        for _ in range(self.streams):
            self._send()
        self.transport.write(self.connection.data_to_send())

    def _send(self) -> None:
        stream_id = self.connection.get_next_available_stream_id()
        self.started_ns[stream_id] = time.perf_counter_ns()
        self.connection.send_headers(stream_id, self.request, end_stream=True)

    def data_received(self, data: bytes) -> None:
        for event in self.connection.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            elif isinstance(event, h2.events.StreamEnded):
                self.figures.answered(self.started_ns.pop(event.stream_id))
                self._send()
        self.transport.write(self.connection.data_to_send())


async def _load(kind: str, argv: list[str]) -> str:
    loop = asyncio.get_running_loop()
    url = urlsplit(argv[0])
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    figures = _Figures()
    transports: list[asyncio.BaseTransport] = []
    if kind == "http":
        connections, seconds = int(argv[1]), float(argv[2])
        request = f"GET {url.path or '/'} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()
        for _ in range(connections):
            plain, _ = await loop.create_connection(lambda: _H1(request, figures), host, port)
            transports.append(plain)
    else:
        connections, streams, seconds = int(argv[1]), int(argv[2]), float(argv[3])
        context = ssl.create_default_context(cafile=argv[4])
        context.set_alpn_protocols(["h2"])
        for _ in range(connections):
            secure, _ = await loop.create_connection(
                lambda: _H2(host, url.path or "/", streams, figures), host, port, ssl=context
            )
            transports.append(secure)
    await asyncio.sleep(_WARMUP_S)
    figures.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    figures.measuring = False
    elapsed_s = time.perf_counter() - started
    for transport in transports:
        transport.close()
    latencies_ms = np.asarray(figures.latencies_ns, dtype=np.float64) / 1e6
    p50, p99 = np.percentile(latencies_ms, [50, 99]) if latencies_ms.size else (0.0, 0.0)
    return f"requests/s {len(latencies_ms) / elapsed_s:.1f} p50_ms {p50:.4f} p99_ms {p99:.4f}"


def main() -> int:
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    if kind not in ("http", "h2") or len(sys.argv) < (5 if kind == "http" else 7):
        print(__doc__, file=sys.stderr)
        return 2
    print(uvloop.run(_load(kind, sys.argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
