"""One failure class per fault, whichever transport met it: each fault server runs against
both transports, and both must say the same thing."""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop

from shadowdiff.endpoint import TransportName
from shadowdiff.errors import ScenarioError
from shadowdiff.scenario import load_scenario
from shadowdiff.transport import TRANSPORT_NAMES, open_transport
from shadowdiff.transport.failures import classify_os_error

from .fault_servers import (
    Behaviour,
    answering,
    fault_server,
    reset,
    reset_after_client_hello,
    reset_on_accept,
)
from .tls_servers import ServerSpec, tls_server

OK_HEAD = b"HTTP/1.1 200 OK\r\n"


def headers(count: int, value_bytes: int = 1) -> bytes:
    return b"".join(b"X-H%d: %s\r\n" % (i, b"v" * value_bytes) for i in range(count))


# (id, scheme, behaviour, the class both transports must report, or the status they must see)
FAULTS: list[tuple[str, str, Behaviour, str | int]] = [
    ("reset-on-accept", "http", reset_on_accept, "reset"),
    ("tls-reset-during-handshake", "https", reset_after_client_hello, "reset"),
    ("closed-without-answer", "http", answering(b""), "reset"),
    (
        "reset-mid-body",
        "http",
        answering(OK_HEAD + b"Content-Length: 10\r\n\r\nabc", True),
        "reset",
    ),
    (
        "chunked-cut-short",
        "http",
        answering(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab"),
        "reset",
    ),
    (
        "bad-chunk-size",
        "http",
        answering(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"),
        "malformed_response",
    ),
    ("garbage-status-line", "http", answering(b"HTTP/1.1 2OO OK\r\n\r\n"), "malformed_response"),
    ("not-http", "http", answering(b"SSH-2.0-OpenSSH_9.6\r\n"), "malformed_response"),
    (
        "200-kb-header-line",
        "http",
        answering(OK_HEAD + b"X-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n"),
        "malformed_response",
    ),
    (
        "10000-headers",
        "http",
        answering(OK_HEAD + headers(10_000) + b"Content-Length: 0\r\n\r\n"),
        "malformed_response",
    ),
    (
        "300-kb-head-in-1-kb-lines",
        "http",
        answering(OK_HEAD + headers(300, 1024) + b"Content-Length: 0\r\n\r\n"),
        "malformed_response",
    ),
    (
        "endless-header-line",
        "http",
        answering(OK_HEAD + b"X-Big: " + b"a" * 2_000_000),
        "malformed_response",
    ),
    # Large but within the defaults: real answers with a big CSP and many cookies pass.
    (
        "under-the-limits",
        "http",
        answering(OK_HEAD + headers(400, 500) + b"Content-Length: 2\r\n\r\nok"),
        200,
    ),
    # A response no request asked for, right after the answer: dropped, as aiohttp does (the
    # lean transport used to take its status, 500, for the answer's).
    (
        "second-response-in-the-same-read",
        "http",
        answering(
            OK_HEAD + b"Content-Length: 0\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
        ),
        200,
    ),
    # Bytes after the end that are no response: the answer's length was a lie.
    (
        "more-bytes-than-content-length",
        "http",
        answering(OK_HEAD + b"Connection: close\r\nContent-Length: 2\r\n\r\nok and more"),
        "malformed_response",
    ),
    (
        "protocol-bytes-after-101",
        "http",
        answering(b"HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n\x81\x05hello"),
        101,
    ),
    (
        "junk-after-a-keep-alive-answer",
        "http",
        answering(OK_HEAD + b"Content-Length: 2\r\n\r\nok and more\r\n\r\n"),
        "malformed_response",
    ),
    # As lenient as aiohttp's client (and browsers): both read these as answers.
    ("lf-without-cr", "http", answering(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"), 200),
    (
        "control-character-in-header-value",
        "http",
        answering(OK_HEAD + b"Server: a\x08b\r\nContent-Length: 2\r\n\r\nok"),
        200,
    ),
    (
        "100-continue-then-200",
        "http",
        answering(b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HEAD + b"Content-Length: 2\r\n\r\nok"),
        200,
    ),
]


async def observe(
    transport_name: TransportName,
    scheme: str,
    port: int,
    write_scenario: Callable[..., Path],
    ca_file: Path,
    loop: str = "asyncio",
) -> Any:
    """One request through `transport_name`, on the test's loop or on a uvloop of its own (in a
    thread: the CLI runs on uvloop, and it reports some faults with other exceptions)."""
    target = f"address: 127.0.0.1\n    ports: {{http: {port}, https: {port}}}\n    tls: {{ca: {ca_file}}}"
    path = write_scenario(
        target,
        target,
        "defaults: {timeouts: {connect_s: 2, total_s: 3}}\n"
        f"requests:\n  - {{name: a, url: '{scheme}://app.example.com/'}}\n",
    )
    scenario = load_scenario(path)

    async def send() -> Any:
        transport = open_transport(scenario.endpoint("baseline"), 2, transport_name)
        try:
            return await transport.send(scenario.requests[0])
        finally:
            await transport.close()

    if loop == "uvloop":
        return await asyncio.to_thread(uvloop.run, send())
    return await send()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize(
    ("scheme", "behaviour", "expected"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)
async def test_each_fault_is_one_class_on_both_transports(
    scheme: str,
    behaviour: Behaviour,
    expected: str | int,
    loop: str,
    write_scenario: Callable[..., Path],
    ca_file: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = {}
    async with fault_server(behaviour) as port:
        for name in TRANSPORT_NAMES:
            observation = await observe(name, scheme, port, write_scenario, ca_file, loop)
            failure = observation.failure
            seen[name] = failure.error_class if failure else observation.status
    assert seen == {name: expected for name in TRANSPORT_NAMES}
    # A fault is a finding, not a traceback on the terminal (uvloop logs some by default).
    gc.collect()  # a future nobody awaited complains when it is collected
    assert capfd.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_reset_while_the_request_body_is_sent_is_a_reset_on_both_transports(
    scheme: str,
    loop: str,
    write_scenario: Callable[..., Path],
    ca_file: Path,
    server_cert: trustme.LeafCert,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # aiohttp reports it as "Can not write request body" with no errno (it said 'other').
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)

    async def reset_during_upload(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(1000)
        reset(writer)

    tls = context if scheme == "https" else None
    async with fault_server(reset_during_upload, tls=tls) as port:
        target = f"address: 127.0.0.1\n    ports: {{http: {port}, https: {port}}}\n    tls: {{ca: {ca_file}}}"
        path = write_scenario(
            target,
            target,
            "defaults: {timeouts: {connect_s: 2, total_s: 3}}\n"
            "requests:\n  - {name: upload, method: POST, allow_unsafe: true, "
            f"url: '{scheme}://app.example.com/', body: {{size: 8MiB}}}}\n",
        )
        scenario = load_scenario(path)

        async def send_with_each() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for name in TRANSPORT_NAMES:
                transport = open_transport(scenario.endpoint("baseline"), 2, name)
                observation = await transport.send(scenario.requests[0])
                await transport.close()
                failure = observation.failure
                seen[name] = failure.error_class if failure else observation.status
            return seen

        if loop == "uvloop":
            seen = await asyncio.to_thread(uvloop.run, send_with_each())
        else:
            seen = await send_with_each()
    assert seen == {name: "reset" for name in TRANSPORT_NAMES}
    # Writing on after the reset must not make the event loop complain either.
    gc.collect()
    assert capfd.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_response_limits_are_configurable(
    write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    answer = OK_HEAD + headers(20) + b"Content-Length: 0\r\n\r\n"
    target_yaml = "address: 127.0.0.1\n    ports: {{http: {port}}}"
    async with fault_server(answering(answer)) as port:
        target = target_yaml.format(port=port)
        for fields, expected in ((10, "malformed_response"), (30, None)):
            path = write_scenario(
                target,
                target,
                f"defaults: {{response_limits: {{header_fields: {fields}, header_line_bytes: 1KiB}}}}\n"
                "requests:\n  - {name: a, url: 'http://app.example.com/'}\n",
            )
            scenario = load_scenario(path)
            for name in TRANSPORT_NAMES:
                transport = open_transport(scenario.endpoint("baseline"), 2, name)
                observation = await transport.send(scenario.requests[0])
                await transport.close()
                failure = observation.failure
                assert (failure.error_class if failure else None) == expected, (name, failure)


async def test_refused_sni_is_a_handshake_failure_on_both_transports(
    write_scenario: Callable[..., Path], ca_file: Path, ca: trustme.CA
) -> None:
    # Like nginx's ssl_reject_handshake: no certificate for the name, a TLS alert instead.
    spec = ServerSpec(certificates={"other.example.com": ca.issue_cert("other.example.com")})
    with tls_server(spec) as port:
        seen = {
            name: (await observe(name, "https", port, write_scenario, ca_file)).failure.error_class
            for name in TRANSPORT_NAMES
        }
    assert seen == {name: "tls_handshake" for name in TRANSPORT_NAMES}


@pytest.mark.parametrize(
    ("error", "connecting", "expected"),
    [
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), True, "tls_handshake"),
        (ssl.SSLError(104, "reset during the handshake"), True, "reset"),
        (ssl.SSLError(1, "tlsv1 alert unrecognized name"), True, "tls_handshake"),
        (TimeoutError(), True, "timeout_connect"),
        (TimeoutError(), False, "timeout"),
        (OSError(113, "No route to host"), True, "other"),
    ],
    ids=["ssl-eof", "ssl-econnreset", "alert", "connect-timeout", "total-timeout", "unlisted"],
)
def test_failure_table(error: OSError, connecting: bool, expected: str) -> None:
    assert classify_os_error(error, connecting=connecting) == expected


def test_response_limits_errors_are_located(tmp_path: Path) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(
        "targets:\n  baseline: {address: 127.0.0.1}\n  candidate: {address: 127.0.0.1}\n"
        "defaults:\n  response_limits: {header_bytes: lots, header_fields: 0}\n"
        "requests:\n  - {name: a, url: 'http://app.example.com/'}\n"
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert [(p.line, p.field) for p in raised.value.problems] == [
        (5, "defaults.response_limits.header_bytes"),
        (5, "defaults.response_limits.header_fields"),
    ]
