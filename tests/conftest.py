"""Shared test fixtures: real HTTP and HTTPS servers on loopback that record what they saw,
and real certificates from trustme."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

PRODUCTION_HOSTS = ("app.example.com", "api.example.com")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need a system package skip, by name, where it is missing; CI (which installs
    everything) sets SHADOWDIFF_REQUIRE_SYSTEM_PACKAGES=1 so that a missing one fails instead."""
    from .browser import chromium_binary
    from .lab import nginx_binary

    missing = {
        "nginx": None
        if nginx_binary() is not None
        else "nginx is not installed: `sudo apt-get install nginx-light` (./dev test does it as root)",
        "chromium": None
        if chromium_binary() is not None
        else "chromium is not installed: `sudo apt-get install chromium` (./dev test does it as root)",
    }
    for marker, message in missing.items():
        if message is None:
            continue
        if os.environ.get("SHADOWDIFF_REQUIRE_SYSTEM_PACKAGES") == "1":
            raise pytest.UsageError(f"{message}; CI requires it")
        for item in items:
            if item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=message))


# Reports create a fingerprint key file on first use: keep it out of the real home, for this
# process and the `shadowdiff` subprocesses that tests start.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="shadowdiff-test-config-")
# On a GitHub Actions runner every `shadowdiff run` of the suite would append its summary to the
# job's page: only the tests that set it get one.
os.environ.pop("GITHUB_STEP_SUMMARY", None)


@dataclass
class Seen:
    """One request as a test server received it."""

    host: str
    raw_path: str
    method: str
    headers: list[tuple[str, str]]
    local_address: str  # the address the client connected to
    tls: bool


@dataclass
class EntryPoint:
    """A running test entry point: where it listens and what it saw."""

    address: str
    http_port: int
    https_port: int
    requests: list[Seen] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)  # SNI of each TLS handshake

    def target_yaml(self, ca_file: Path | None) -> str:
        tls = f"\n    tls: {{ca: {ca_file}}}" if ca_file else ""
        return (
            f"address: {self.address}\n"
            f"    ports: {{http: {self.http_port}, https: {self.https_port}}}{tls}"
        )


# A test handler answers directly or as a coroutine, as aiohttp handlers and plain functions do.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse] | web.StreamResponse]


def echo_handler(name: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        return web.json_response(
            {"served_by": name, "path": request.raw_path, "body_bytes": len(body)}
        )

    return handle


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert(*PRODUCTION_HOSTS)


@pytest.fixture
async def start_entry_point(
    server_cert: trustme.LeafCert,
) -> AsyncIterator[Callable[..., Any]]:
    """Start an entry point on `address` (a loopback address) with plain and TLS listeners."""
    runners: list[web.AppRunner] = []

    async def start(
        address: str = "127.0.0.1",
        handler: Handler | None = None,
        name: str = "server",
        cert: trustme.LeafCert | None = None,
    ) -> EntryPoint:
        entry = EntryPoint(address, 0, 0)
        respond = handler or echo_handler(name)

        async def record(request: web.Request) -> web.StreamResponse:
            sockname = request.transport.get_extra_info("sockname") if request.transport else None
            entry.requests.append(
                Seen(
                    host=request.host,
                    raw_path=request.raw_path,
                    method=request.method,
                    headers=[(k.decode(), v.decode()) for k, v in request.raw_headers],
                    local_address=sockname[0] if sockname else "",
                    tls=request.secure,
                )
            )
            result = respond(request)
            return result if isinstance(result, web.StreamResponse) else await result

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (cert or server_cert).configure_cert(context)
        context.sni_callback = lambda _sock, name, _ctx: entry.server_names.append(name)

        for scheme in ("http", "https"):
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", record)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(
                runner, address, 0, ssl_context=context if scheme == "https" else None
            )
            await site.start()
            port = runner.addresses[0][1]
            if scheme == "http":
                entry.http_port = port
            else:
                entry.https_port = port
        return entry

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def write_scenario(tmp_path: Path) -> Callable[..., Path]:
    """Write a scenario for two entry points; `body` is the YAML after `targets`."""

    def write(
        baseline: EntryPoint | str,
        candidate: EntryPoint | str,
        body: str,
        ca_file: Path | None = None,
        name: str = "scenario.yaml",
    ) -> Path:
        def target(entry: EntryPoint | str) -> str:
            return entry if isinstance(entry, str) else entry.target_yaml(ca_file)

        text = (
            "targets:\n"
            f"  baseline:\n    {target(baseline)}\n"
            f"  candidate:\n    {target(candidate)}\n" + textwrap.dedent(body)
        )
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def unused_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


@dataclass(frozen=True)
class DemoRun:
    code: int
    printed: str
    stderr: str
    report: dict[str, Any]
    junit: str  # --junit
    markdown: str  # --markdown
    html: str  # --html
    html_path: Path


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`python -m shadowdiff demo` as a user runs it, once per test session, with every output
    format written (tests/test_golden.py holds them to golden files)."""
    folder = tmp_path_factory.mktemp("golden")
    environment = {
        **os.environ,
        "COLUMNS": "100",
        "NO_COLOR": "1",
        "TERM": "dumb",
        # A key of its own, so that the report's `redaction.key` says `file` wherever it runs.
        "XDG_CONFIG_HOME": str(folder / "config"),
    }
    environment.pop("SHADOWDIFF_REDACTION_KEY", None)
    outputs = {"json": "demo.json", "junit": "demo.xml", "markdown": "demo.md", "html": "demo.html"}
    flags = [part for flag, name in outputs.items() for part in (f"--{flag}", str(folder / name))]
    result = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "demo", *flags],
        capture_output=True,
        text=True,
        env=environment,
        timeout=50,
        check=False,
    )
    read = {flag: (folder / name).read_text(encoding="utf-8") for flag, name in outputs.items()}
    return DemoRun(
        result.returncode,
        result.stdout,
        result.stderr,
        json.loads(read["json"]),
        read["junit"],
        read["markdown"],
        read["html"],
        folder / outputs["html"],
    )
