"""The aiohttp transport against real servers on loopback: what arrives, and failures as data."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from shadowdiff.endpoint import TransportName
from shadowdiff.pair import Pair
from shadowdiff.replay.engine import replay
from shadowdiff.scenario import Scenario, load_scenario
from shadowdiff.spec import Side
from shadowdiff.transport import TRANSPORT_NAMES, open_transport

from .conftest import EntryPoint, unused_port


@pytest.fixture(params=TRANSPORT_NAMES)
def transport_name(request: pytest.FixtureRequest) -> TransportName:
    """Every test here runs against each transport: they must observe the same things."""
    name: TransportName = request.param
    return name


async def send_one(
    scenario: Scenario, transport_name: TransportName, side: Side = "baseline"
) -> Any:
    transport = open_transport(scenario.endpoint(side), 4, transport_name)
    try:
        return await transport.send(scenario.requests[0])
    finally:
        await transport.close()


def scenario_for(
    write_scenario: Callable[..., Path],
    baseline: EntryPoint | str,
    candidate: EntryPoint | str,
    requests: str,
    ca_file: Path | None,
) -> Scenario:
    return load_scenario(write_scenario(baseline, candidate, requests, ca_file))


async def test_host_sni_and_address_are_each_targets_own(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    baseline = await start_entry_point("127.0.0.1", name="baseline")
    candidate = await start_entry_point("127.0.0.2", name="candidate")
    scenario = scenario_for(
        write_scenario,
        baseline,
        candidate,
        """\
        compare: {noise: {share: 0}}
        requests:
          - {name: tls, url: "https://app.example.com/x?q=1"}
          - {name: plain, url: "http://api.example.com/y"}
        """,
        ca_file,
    )
    pairs: list[Pair] = []
    await replay(
        scenario,
        pairs.append,
        transport_factory=lambda endpoint, n: open_transport(endpoint, n, transport_name),
    )

    assert len(pairs) == 2
    # The only difference is the one the servers were built with: who served it.
    assert {(d.field, d.baseline, d.candidate) for p in pairs for d in p.differences} == {
        ("$.served_by", '"baseline"', '"candidate"')
    }
    for entry, address in ((baseline, "127.0.0.1"), (candidate, "127.0.0.2")):
        seen = sorted(entry.requests, key=lambda s: s.raw_path)
        assert [(s.host, s.raw_path, s.tls, s.local_address) for s in seen] == [
            ("app.example.com", "/x?q=1", True, address),
            ("api.example.com", "/y", False, address),
        ]
        assert entry.server_names == ["app.example.com"]
    served = {p.request.name: p for p in pairs}
    assert b'"served_by": "candidate"' in served["tls"].candidate.body
    assert b'"served_by": "baseline"' in served["tls"].baseline.body


async def test_ipv6_target_is_reached(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        entry = await start_entry_point("::1")
    except OSError:
        pytest.skip("::1 is not configured")
    scenario = scenario_for(
        write_scenario,
        entry,
        entry,
        "requests:\n  - {name: a, url: 'https://app.example.com/'}\n",
        ca_file,
    )
    observation = await send_one(scenario, transport_name)
    assert observation.status == 200
    assert entry.requests[0].host == "app.example.com"


async def test_raw_path_and_headers_are_sent_as_written(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    entry = await start_entry_point()
    scenario = scenario_for(
        write_scenario,
        entry,
        entry,
        """\
        requests:
          - name: odd
            url: "https://app.example.com////a/../b/./c"
            headers: {X_Custom: "1", X-Request-ID: known-id}
        """,
        ca_file,
    )
    await send_one(scenario, transport_name)
    (seen,) = entry.requests
    assert seen.raw_path == "////a/../b/./c"
    assert ("X_Custom", "1") in seen.headers
    assert ("X-Request-ID", "known-id") in seen.headers
    assert not any(name.lower() == "accept-encoding" for name, _ in seen.headers)


async def test_observation_keeps_header_order_case_body_hash_and_certificate(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    server_cert: trustme.LeafCert,
) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB, more than the capture

    async def handler(request: web.Request) -> web.Response:
        response = web.Response(body=payload)
        response.headers.add("x-Mixed-Case", "one")
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    entry = await start_entry_point(handler=handler)
    scenario = scenario_for(
        write_scenario,
        entry,
        entry,
        "defaults: {body_capture: 1KiB}\nrequests:\n  - {name: a, url: 'https://app.example.com/'}\n",
        ca_file,
    )
    observation = await send_one(scenario, transport_name)
    assert observation.failure is None
    names = [name for name, _ in observation.headers]
    assert names.index("x-Mixed-Case") < names.index("Set-Cookie")
    assert observation.header_values("set-cookie") == ["a=1", "b=2"]
    assert observation.body == payload[:1024] and observation.body_truncated
    assert observation.body_bytes == len(payload)
    assert observation.body_sha256 == hashlib.sha256(payload).hexdigest()
    assert observation.tls is not None and observation.tls.version in ("TLSv1.2", "TLSv1.3")
    served = x509.load_pem_x509_certificate(server_cert.cert_chain_pems[0].bytes())
    assert observation.tls.peer_certificate_der == served.public_bytes(Encoding.DER)
    assert (
        observation.timings.first_byte_ns
        and observation.timings.total_ns >= observation.timings.first_byte_ns
    )
    assert observation.timings.connect_ns is not None and observation.http_version == "1.1"
    if transport_name == "lean":
        # Connect and TLS are timed apart; aiohttp does both in one call.
        assert observation.timings.tls_ns is not None and observation.timings.tls_ns > 0


async def test_refused_connection_is_recorded(
    transport_name: TransportName, write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    closed = f"address: 127.0.0.1\n    ports: {{http: {unused_port()}, https: {unused_port()}}}"
    scenario = scenario_for(
        write_scenario,
        closed,
        closed,
        "requests:\n  - {name: a, url: 'https://app.example.com/'}\n",
        ca_file,
    )
    observation = await send_one(scenario, transport_name)
    assert observation.failure is not None and observation.failure.error_class == "refused"
    assert observation.status is None


async def test_certificate_from_another_ca_fails_verification(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    stranger = trustme.CA().issue_cert("app.example.com")
    entry = await start_entry_point(cert=stranger)
    scenario = scenario_for(
        write_scenario,
        entry,
        entry,
        "requests:\n  - {name: a, url: 'https://app.example.com/'}\n",
        ca_file,
    )
    observation = await send_one(scenario, transport_name)
    assert observation.failure is not None and observation.failure.error_class == "tls_verify"


async def test_certificate_is_checked_against_the_production_hostname(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    ca: trustme.CA,
) -> None:
    entry = await start_entry_point(cert=ca.issue_cert("other.example.com"))
    scenario = scenario_for(
        write_scenario,
        entry,
        entry,
        "requests:\n  - {name: a, url: 'https://app.example.com/'}\n",
        ca_file,
    )
    observation = await send_one(scenario, transport_name)
    assert observation.failure is not None and observation.failure.error_class == "tls_verify"
    assert "app.example.com" in observation.failure.message


async def test_slow_answer_is_a_timeout(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    entry = await start_entry_point(handler=slow)
    scenario = scenario_for(
        write_scenario,
        entry,
        entry,
        "defaults: {timeouts: {total_s: 0.3}}\nrequests:\n  - {name: a, url: 'http://app.example.com/'}\n",
        ca_file,
    )
    observation = await send_one(scenario, transport_name)
    assert observation.failure is not None and observation.failure.error_class == "timeout"
    assert 0.25e9 < observation.timings.total_ns < 1.5e9


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[bytes | None], Any]]:
    """A TCP server on loopback that answers every connection with fixed bytes (or closes)."""
    servers: list[asyncio.Server] = []

    async def start(answer: bytes | None) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            if answer is not None:
                writer.write(answer)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def send_plain(
    port: int, write_scenario: Callable[..., Path], transport_name: TransportName
) -> Any:
    """One plain-HTTP request to a raw server on `port`, through `transport_name`."""
    target = f"address: 127.0.0.1\n    ports: {{http: {port}}}"
    scenario = scenario_for(
        write_scenario,
        target,
        target,
        "requests:\n  - {name: a, url: 'http://app.example.com/'}\n",
        None,
    )
    return await send_one(scenario, transport_name)


async def test_body_delimited_by_close_is_complete(
    transport_name: TransportName,
    raw_server: Callable[[bytes | None], Any],
    write_scenario: Callable[..., Path],
) -> None:
    port = await raw_server(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
    observation = await send_plain(port, write_scenario, transport_name)
    assert observation.failure is None, observation.failure
    assert (observation.status, observation.body) == (200, b"until the end")


async def test_truncated_body_is_a_reset(
    transport_name: TransportName,
    raw_server: Callable[[bytes | None], Any],
    write_scenario: Callable[..., Path],
) -> None:
    port = await raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
    observation = await send_plain(port, write_scenario, transport_name)
    assert observation.failure is not None and observation.failure.error_class == "reset"


@pytest.mark.parametrize(
    ("answer", "error_class"),
    [(b"HTTP/1.1 2OO OK\r\n\r\n", "malformed_response"), (None, "reset")],
    ids=["garbage-status-line", "closed-without-answer"],
)
async def test_broken_answers_are_classified(
    transport_name: TransportName,
    raw_server: Callable[[bytes | None], Any],
    write_scenario: Callable[..., Path],
    answer: bytes | None,
    error_class: str,
) -> None:
    port = await raw_server(answer)
    observation = await send_plain(port, write_scenario, transport_name)
    assert observation.failure is not None
    assert observation.failure.error_class == error_class, observation.failure


def test_run_ends_with_every_socket_closed_when_servers_ignore_close_notify(
    transport_name: TransportName,
    write_scenario: Callable[..., Path],
    ca_file: Path,
    server_cert: trustme.LeafCert,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that never answers TLS close_notify (or stops reading) must not keep a socket
    open past the end of the run: such a socket outlives its event loop, and Python reports it
    as a leaked resource when it is collected."""
    import gc
    import sys

    from shadowdiff.report import RunCollector

    from .tls_servers import mute_after_answer_server

    leaked: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda hook: leaked.append(repr(hook.exc_value)))
    with mute_after_answer_server(server_cert) as port:
        target = f"address: 127.0.0.1\n    ports: {{https: {port}}}\n    tls: {{ca: {ca_file}}}"
        scenario = load_scenario(
            write_scenario(
                target,
                target,
                f"""
                defaults: {{transport: {transport_name}, concurrency: 4}}
                requests:
                  - {{name: home, url: "https://app.example.com/", repeat: 8}}
                """,
            )
        )
        collector = RunCollector()
        asyncio.run(replay(scenario, collector))
        gc.collect()
    assert collector.pairs_done == 8 and collector.failures == {"baseline": 0, "candidate": 0}
    assert leaked == []


async def test_pool_size_bounds_the_connections_kept_open(
    transport_name: TransportName, write_scenario: Callable[..., Path]
) -> None:
    """A transport opened for at most N sends in flight keeps at most N connections open to its
    target once a burst of more sends is over: connections do not pile up on the entry point."""
    open_now = 0
    settled = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now
        open_now += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.05)  # long enough for the burst to need many connections
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_now -= 1
            writer.close()
            if open_now <= 2:
                settled.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    target = f"address: 127.0.0.1\n    ports: {{http: {port}}}"
    scenario = scenario_for(
        write_scenario,
        target,
        target,
        "requests:\n  - {name: a, url: 'http://app.example.com/'}\n",
        None,
    )
    transport = open_transport(scenario.endpoint("baseline"), 2, transport_name)
    try:
        answers = await asyncio.gather(*(transport.send(scenario.requests[0]) for _ in range(8)))
        assert [answer.status for answer in answers] == [200] * 8
        if open_now > 2:
            async with asyncio.timeout(5):
                await settled.wait()
        assert open_now <= 2
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()


_PAGE = b"".join(b"row %d of a long page\n" % n for n in range(60_000))  # about 1.3 MB


async def test_compressed_bodies_past_body_capture_compare_by_their_content(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
) -> None:
    """Past body_capture the bytes are all that was kept: two gzip levels of one page (as
    two data planes' compressors give) are alike by their content, and a change deep in the
    page is still a body difference."""
    changed = _PAGE[:1_000_000] + b"X" + _PAGE[1_000_001:]
    gzipped = {
        ("baseline", "same"): gzip.compress(_PAGE, 9),
        ("candidate", "same"): gzip.compress(_PAGE, 1),
        ("baseline", "changed"): gzip.compress(_PAGE, 9),
        ("candidate", "changed"): gzip.compress(changed, 1),
        ("baseline", "plain"): gzip.compress(_PAGE, 6),
    }

    def serving(side: str) -> Callable[[web.Request], web.Response]:
        def handler(request: web.Request) -> web.Response:
            body = gzipped.get((side, request.path.strip("/")))
            if body is None:
                return web.Response(body=_PAGE)  # the candidate's /plain: not compressed
            return web.Response(body=body, headers={"Content-Encoding": "gzip"})

        return handler

    baseline = await start_entry_point("127.0.0.1", handler=serving("baseline"))
    candidate = await start_entry_point("127.0.0.2", handler=serving("candidate"))
    scenario = scenario_for(
        write_scenario,
        baseline,
        candidate,
        """\
        compare: {noise: {share: 0}}
        defaults: {body_capture: 4KiB}
        requests:
          - {name: same, url: "http://app.example.com/same"}
          - {name: changed, url: "http://app.example.com/changed"}
          - {name: plain, url: "http://app.example.com/plain"}
        """,
        None,
    )
    pairs: list[Pair] = []
    await replay(
        scenario,
        pairs.append,
        transport_factory=lambda endpoint, n: open_transport(endpoint, n, transport_name),
    )
    found = {p.request.name: {d.kind for d in p.differences} for p in pairs}
    assert found == {"same": set(), "changed": {"body"}, "plain": {"content_encoding"}}, found
