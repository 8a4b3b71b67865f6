"""A real dnsmasq (Debian's dnsmasq-base) serving test hostnames on a loopback port, from an
addn-hosts file the test rewrites to move records (then SIGHUP: dnsmasq rereads it and drops its
cache). dnsmasq has no weighted records, so a weighted shift is several records, some to each
entry point. Started with a bounded lifetime; ready once it answers a query."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest


def dnsmasq_binary() -> str | None:
    found = shutil.which("dnsmasq")
    if found is None and os.access("/usr/sbin/dnsmasq", os.X_OK):
        found = "/usr/sbin/dnsmasq"
    return found


def require_dnsmasq() -> str:
    binary = dnsmasq_binary()
    if binary is None:
        message = "dnsmasq is not installed: `sudo apt-get install dnsmasq-base` (./dev test does it as root)"
        if os.environ.get("SHADOWDIFF_REQUIRE_SYSTEM_PACKAGES") == "1":
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    return binary


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ask(port: int, host: str, timeout_s: float = 0.5) -> list[str] | None:
    """The A records dnsmasq gives for `host`, or None when it does not answer."""
    try:
        answer = dns.query.udp(
            dns.message.make_query(host, "A"), "127.0.0.1", port=port, timeout=timeout_s
        )
    except (dns.exception.DNSException, OSError):
        return None
    if answer.rcode() != dns.rcode.NOERROR:
        return []
    return sorted(str(record) for rrset in answer.answer for record in rrset)


class Dnsmasq:
    def __init__(self, binary: str, folder: Path, ttl_s: int = 1) -> None:
        self.hosts = folder / "hosts"
        self.hosts.write_text("")
        self.binary, self.ttl_s = binary, ttl_s
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, records: Sequence[tuple[str, str]]) -> None:
        self._write(records)
        for _ in range(5):  # the port was free a moment ago; another process may take it
            self.port = _free_udp_port()
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--no-daemon",
                    "--no-resolv",
                    "--no-hosts",
                    f"--addn-hosts={self.hosts}",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    f"--port={self.port}",
                    f"--local-ttl={self.ttl_s}",
                    "--pid-file=",
                    # As root it would switch to `nobody`, who may not read the test's folder.
                    "--user=root" if os.geteuid() == 0 else f"--user={os.getlogin()}",
                    "--log-facility=-",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.process.poll() is None:
                if ask(self.port, records[0][1], 0.2) is not None:
                    return
            self.stop()
        raise AssertionError("dnsmasq did not start")

    def _write(self, records: Sequence[tuple[str, str]]) -> None:
        self.hosts.write_text("".join(f"{address} {host}\n" for address, host in records))

    def move(self, records: Sequence[tuple[str, str]]) -> None:
        """Serve `records` from now on; returns once dnsmasq answers with them."""
        assert self.process is not None
        self._write(records)
        self.process.send_signal(signal.SIGHUP)
        wanted = {host for _, host in records}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if all(
                ask(self.port, host) == sorted(a for a, h in records if h == host)
                for host in wanted
            ):
                return
            time.sleep(0.02)
        raise AssertionError("dnsmasq did not take the new records")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@contextlib.contextmanager
def running_dnsmasq(folder: Path, records: Sequence[tuple[str, str]]) -> Iterator[Dnsmasq]:
    server = Dnsmasq(require_dnsmasq(), folder)
    server.start(records)
    try:
        yield server
    finally:
        server.stop()
