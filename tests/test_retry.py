"""Idle keep-alive connections the server closed: a safe request that fails on a reused
connection before any byte of the answer is sent once more on a new connection (as browsers
and curl do), on both transports; nothing else is ever sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop

from shadowdiff.endpoint import TransportName
from shadowdiff.render.terminal import render_report
from shadowdiff.replay.engine import replay
from shadowdiff.report import RunCollector, build_report
from shadowdiff.report.schema import Report
from shadowdiff.scenario import load_scenario
from shadowdiff.transport import TRANSPORT_NAMES, open_transport

from .fault_servers import read_head

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


@pytest.fixture(params=TRANSPORT_NAMES)
def transport_name(request: pytest.FixtureRequest) -> TransportName:
    name: TransportName = request.param
    return name


@dataclass
class Closer:
    """A loopback HTTP/1.1 server that closes connections its own way; counts what it saw."""

    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)  # request lines received


Behaviour = Callable[[Closer, asyncio.StreamReader, asyncio.StreamWriter], Any]


async def _receive(closer: Closer, reader: asyncio.StreamReader) -> bool:
    head = await read_head(reader)
    if not head:
        return False
    closer.requests.append(head.split(b"\r\n", 1)[0])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return True


async def close_after_answer(
    closer: Closer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One answer per connection, then a close, without announcing `Connection: close`."""
    if await _receive(closer, reader):
        writer.write(ANSWER)
        await writer.drain()


async def close_when_next_request_arrives(
    closer: Closer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One answer, then the close crosses the client's next request on the wire: the race a
    keep-alive client loses against an idle timeout, made certain."""
    if await _receive(closer, reader):
        writer.write(ANSWER)
        await writer.drain()
        await _receive(closer, reader)


async def short_idle_timeout(
    closer: Closer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Keep-alive with a 2 ms idle timeout (nginx's keepalive_timeout, made very short)."""
    first = True
    while True:
        try:
            received = (
                await _receive(closer, reader)
                if first
                else await asyncio.wait_for(_receive(closer, reader), 0.002)
            )
        except TimeoutError:
            return
        if not received:
            return
        first = False
        writer.write(ANSWER)
        await writer.drain()


async def close_without_answer(
    closer: Closer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await _receive(closer, reader)


@asynccontextmanager
async def closer_server(behaviour: Behaviour, address: str) -> AsyncIterator[Closer]:
    closer = Closer()
    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        closer.connections += 1
        try:
            await behaviour(closer, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.close()
            handlers.discard(task)

    server = await asyncio.start_server(handle, address, 0)
    stop = asyncio.get_running_loop().call_later(60, server.close)
    closer.port = int(server.sockets[0].getsockname()[1])
    try:
        yield closer
    finally:
        stop.cancel()
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def _target(closer: Closer, address: str) -> str:
    return f"address: {address}\n    ports: {{http: {closer.port}}}"


async def _run(scenario_path: Path, transport_name: TransportName) -> tuple[list[Any], Report]:
    scenario = load_scenario(scenario_path)
    collector = RunCollector()
    pairs: list[Any] = []

    def sink(pair: Any) -> None:
        pairs.append(pair)
        collector(pair)

    await replay(
        scenario,
        sink,
        transport_factory=lambda endpoint, n: open_transport(endpoint, n, transport_name),
    )
    return pairs, build_report(scenario, collector, duration_s=1.0, started_at="now")


@pytest.mark.parametrize(
    "behaviour",
    [close_after_answer, short_idle_timeout, close_when_next_request_arrives],
    ids=["close-after-answer", "short-idle-timeout", "close-when-next-request-arrives"],
)
async def test_closed_idle_connections_are_no_difference(
    transport_name: TransportName, write_scenario: Callable[..., Path], behaviour: Behaviour
) -> None:
    exact = behaviour is close_when_next_request_arrives
    async with (
        closer_server(behaviour, "127.0.0.51") as baseline,
        closer_server(behaviour, "127.0.0.52") as candidate,
    ):
        path = write_scenario(
            _target(baseline, "127.0.0.51"),
            _target(candidate, "127.0.0.52"),
            # One pair at a time where the count is exact; four elsewhere.
            f"defaults: {{concurrency: {1 if exact else 4}}}\n"
            "compare: {noise: {share: 0}}\n"
            "requests:\n"
            "  - {name: home, url: 'http://app.example.com/', repeat: 200}\n",
        )
        pairs, report = await _run(path, transport_name)

    assert len(pairs) == 200
    failures = [(p.baseline.failure, p.candidate.failure) for p in pairs if p.differences]
    assert failures == []
    assert report["totals"]["failures"]["baseline"]["total"] == 0
    assert report["totals"]["failures"]["candidate"]["total"] == 0
    retries = report["totals"]["retries"]
    retried = {
        side: sum(getattr(p, side).retried for p in pairs) for side in ("baseline", "candidate")
    }
    assert retries == retried
    for side in ("baseline", "candidate"):
        # A retry goes out on a new connection, never on another idle one.
        assert all(
            not getattr(p, side).connection_reused for p in pairs if getattr(p, side).retried
        )
    if exact:
        # Each connection answers once and is lost on its first reuse, so the count is exact:
        # the lean transport pools the retry's connection, and every pair after the first
        # reuses one; aiohttp closes it after the retry, so every other pair does.
        expected = 199 if transport_name == "lean" else 100
        assert retries == {"baseline": expected, "candidate": expected}
        assert (baseline.connections, candidate.connections) == (200, 200)
        text = _rendered(report)
        assert "retried on a new connection" in text
        assert f"baseline {expected}, candidate {expected}" in text


def _rendered(report: Report) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render_report(report))
    return console.export_text()


async def test_unsafe_request_on_a_closed_connection_is_not_sent_again(
    transport_name: TransportName, write_scenario: Callable[..., Path]
) -> None:
    async with (
        closer_server(close_when_next_request_arrives, "127.0.0.53") as baseline,
        closer_server(close_when_next_request_arrives, "127.0.0.54") as candidate,
    ):
        path = write_scenario(
            _target(baseline, "127.0.0.53"),
            _target(candidate, "127.0.0.54"),
            """\
            defaults: {concurrency: 1}
            compare: {noise: {share: 0}}
            requests:
              - {name: first, url: "http://app.example.com/"}
              - name: order
                method: POST
                allow_unsafe: true
                repeat_under_load: true
                url: "http://app.example.com/order"
                body: {text: "one order"}
            """,
        )
        pairs, report = await _run(path, transport_name)

    order = next(p for p in pairs if p.request.name == "order")
    for side, closer in (("baseline", baseline), ("candidate", candidate)):
        observation = getattr(order, side)
        assert observation.failure is not None and observation.failure.error_class == "reset"
        assert not observation.retried
        assert [line for line in closer.requests if line.startswith(b"POST")] == [
            b"POST /order HTTP/1.1"
        ]
    assert report["totals"]["retries"] == {"baseline": 0, "candidate": 0}


async def test_failure_on_a_new_connection_is_not_retried(
    transport_name: TransportName, write_scenario: Callable[..., Path]
) -> None:
    async with closer_server(close_without_answer, "127.0.0.55") as entry:
        path = write_scenario(
            _target(entry, "127.0.0.55"),
            _target(entry, "127.0.0.55"),
            "requests:\n  - {name: a, url: 'http://app.example.com/'}\n",
        )
        scenario = load_scenario(path)
        transport = open_transport(scenario.endpoint("baseline"), 4, transport_name)
        try:
            observation = await transport.send(scenario.requests[0])
        finally:
            await transport.close()
    assert observation.failure is not None and observation.failure.error_class == "reset"
    assert not observation.retried
    assert (entry.connections, len(entry.requests)) == (1, 1)


async def test_server_closing_after_each_answer_costs_no_reset_on_uvloop(
    transport_name: TransportName, write_scenario: Callable[..., Path]
) -> None:
    """The CLI runs on uvloop, where a client nearly always takes the connection back out of
    the pool before the server's close is read: every reuse was a `reset` before."""
    async with closer_server(close_after_answer, "127.0.0.57") as entry:
        path = write_scenario(
            _target(entry, "127.0.0.57"),
            _target(entry, "127.0.0.57"),
            "requests:\n  - {name: a, url: 'http://app.example.com/'}\n",
        )
        scenario = load_scenario(path)

        async def send_all() -> list[Any]:
            transport = open_transport(scenario.endpoint("baseline"), 4, transport_name)
            try:
                return [await transport.send(scenario.requests[0]) for _ in range(200)]
            finally:
                await transport.close()

        # The servers keep serving on the test's loop while the client runs on a uvloop of
        # its own, in a thread.
        observations = await asyncio.to_thread(uvloop.run, send_all())
    assert [o.failure for o in observations if o.failure is not None] == []
    assert sum(o.retried for o in observations) > 0
    assert entry.connections == 200  # one answer per connection, retries included
