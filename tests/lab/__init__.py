"""The proxy lab: two real nginx instances on loopback (a baseline configured like
ingress-nginx's defaults, a candidate with planted regressions) in front of `shadowdiff echo`
backends, two replicas per service. Used by the tests and the benchmarks.

Everything listens on 127.0.0.0/8 only; every process is stopped when the lab closes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import trustme

HERE: Final = Path(__file__).parent
HOSTS: Final = ("shop.lab.test", "api.lab.test", "legacy.lab.test")
BASELINE_ADDRESS: Final = "127.0.0.11"
CANDIDATE_ADDRESS: Final = "127.0.0.12"
BACKEND_ADDRESS: Final = "127.0.0.1"
# Two replicas each: pod names differ only in their replica suffix, as in a cluster.
SERVICES: Final = {
    "shop": ("shop-7d9c5b6f4-x2k4q", "shop-7d9c5b6f4-m8n2p"),
    "api-v1": ("api-v1-6c4d8b7f5-kq9wz", "api-v1-6c4d8b7f5-t4r7s"),
    "api-v2": ("api-v2-84c7f9d6b-p2m7n", "api-v2-84c7f9d6b-w2x9c"),
    # Replicas named as a StatefulSet names them, and by hand (a custom POD_NAME).
    "stateful": ("web-0", "web-1"),
    "custom": ("echo-green", "echo-blue"),
}
# Ten Python backends starting at once on a busy 2-core machine (other test suites running)
# took over 15 s; readiness is still polled, so a quick start stays quick.
START_TIMEOUT_S: Final = 60.0


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def wait_listening(address: str, port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        try:
            with socket.create_connection((address, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {address}:{port} within {START_TIMEOUT_S} s")


@dataclass(frozen=True)
class EntryPointAddress:
    address: str
    http_port: int
    https_port: int


@dataclass(frozen=True)
class Lab:
    folder: Path
    ca_file: Path
    baseline: EntryPointAddress
    candidate: EntryPointAddress

    def environ(self) -> dict[str, str]:
        """Variables the lab scenario reads."""
        return {
            "LAB_CA": str(self.ca_file),
            "LAB_BASELINE_ADDRESS": self.baseline.address,
            "LAB_BASELINE_HTTP": str(self.baseline.http_port),
            "LAB_BASELINE_HTTPS": str(self.baseline.https_port),
            "LAB_CANDIDATE_ADDRESS": self.candidate.address,
            "LAB_CANDIDATE_HTTP": str(self.candidate.http_port),
            "LAB_CANDIDATE_HTTPS": str(self.candidate.https_port),
        }


def _stop(process: subprocess.Popen[bytes], stop_signal: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start_echo(stack: ExitStack, service: str, pod: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port(BACKEND_ADDRESS)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shadowdiff",
            "echo",
            "--host",
            BACKEND_ADDRESS,
            "--port",
            str(port),
            "--service",
            service,
            "--pod",
            pod,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NAMESPACE": "lab"},
    )
    stack.callback(_stop, process)
    return f"{BACKEND_ADDRESS}:{port}", process


def _render(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


@contextmanager
def run_lab(folder: Path, configs: Path = HERE) -> Iterator[Lab]:
    """Start the backends and both nginx instances; stop everything on exit. `configs` holds
    the two nginx configurations, `baseline.conf` and `candidate.conf`."""
    nginx = nginx_binary()
    if nginx is None:
        raise RuntimeError("nginx is not installed (./dev test installs Debian's nginx)")
    authority = trustme.CA()
    leaf = authority.issue_cert(*HOSTS)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    fake = trustme.CA().issue_cert(
        "ingress.local", common_name="Kubernetes Ingress Controller Fake Certificate"
    )
    fake_cert, fake_key = folder / "fake-cert.pem", folder / "fake-key.pem"
    fake.private_key_and_cert_chain_pem.write_to_path(str(fake_cert))
    fake.private_key_pem.write_to_path(str(fake_key))
    shutil.copy(HERE / "forwarded.conf", folder / "forwarded.conf")

    with ExitStack() as stack:
        upstreams: dict[str, str] = {}
        started = []
        for service, pods in SERVICES.items():
            servers = []
            for pod in pods:
                address, process = _start_echo(stack, service, pod)
                started.append((address, process, f"echo {pod}"))
                servers.append(f"server {address};")
            upstreams[service] = " ".join(servers)
        for address, process, what in started:
            host, port = address.rsplit(":", 1)
            wait_listening(host, int(port), process, what)

        entry_points = {}
        for name, address in (("baseline", BASELINE_ADDRESS), ("candidate", CANDIDATE_ADDRESS)):
            entry = EntryPointAddress(address, free_port(address), free_port(address))
            values = {
                "DIR": str(folder),
                "NAME": name,
                "ADDRESS": address,
                "HTTP_PORT": str(entry.http_port),
                "HTTPS_PORT": str(entry.https_port),
                "CERT": str(cert_file),
                "FAKE_CERT": str(fake_cert),
                "FAKE_KEY": str(fake_key),
                "KEY": str(key_file),
                "SHOP": upstreams["shop"],
                "API_V1": upstreams["api-v1"],
                "API_V2": upstreams["api-v2"],
                "STATEFUL": upstreams["stateful"],
                "CUSTOM": upstreams["custom"],
                # Workers of a root master would run as nobody, who may not read this folder.
                "USER": "user root;" if os.geteuid() == 0 else "",
            }
            (folder / f"{name}-tmp").mkdir()
            (folder / f"{name}-common.conf").write_text(
                _render((HERE / "common.conf").read_text(), values)
            )
            config = folder / f"{name}.conf"
            config.write_text(_render((configs / f"{name}.conf").read_text(), values))
            startup_log = folder / f"{name}-startup.log"
            process = subprocess.Popen(
                [
                    nginx,
                    "-p",
                    str(folder),
                    "-c",
                    str(config),
                    "-e",
                    str(startup_log),
                    "-g",
                    "daemon off;",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop, process, signal.SIGQUIT)
            try:
                wait_listening(address, entry.https_port, process, f"nginx {name}")
            except RuntimeError as exc:
                log = startup_log.read_text() if startup_log.exists() else ""
                raise RuntimeError(f"{exc}\n{log}") from None
            entry_points[name] = entry
        yield Lab(folder, ca_file, entry_points["baseline"], entry_points["candidate"])


@contextmanager
def lab_for_tests(folder: Path, configs: Path = HERE) -> Iterator[Lab]:
    """`run_lab` for a test: skipped (and named) where nginx cannot be installed, failed in CI,
    where ./dev test must have installed it."""
    if nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing in CI: ./dev test should have installed it")
        pytest.skip("nginx is not installed (./dev test installs it)")
    with run_lab(folder, configs) as running:
        yield running
