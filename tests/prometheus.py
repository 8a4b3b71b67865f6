"""Debian's Prometheus and Pushgateway on loopback, for the metrics tests: each started with
its own configuration and storage in a test's folder, ready when its `/-/ready` says so, and
stopped (killed if need be) when the test ends. `./dev test` installs both packages.

Prometheus finds the run to scrape through a file (`file_sd_configs`), written once the run
says on which port it serves: a run listens on any free port (`--metrics-port 0`), and
Prometheus picks the file up as it changes, without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

START_TIMEOUT_S: Final = 30.0
SCRAPE_INTERVAL_S: Final = 1


def binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (path for path in (f"/usr/bin/{name}",) if os.access(path, os.X_OK)), None
    )


def require(name: str) -> str:
    """The binary's path; skip the test (fail it in CI) when the package is missing."""
    found = binary(name)
    if found is None:
        message = f"{name} is not installed: `sudo apt-get install {name}` (./dev test does it)"
        if os.environ.get("SHADOWDIFF_REQUIRE_SYSTEM_PACKAGES") == "1":
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, timeout_s: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as answer:
        body: bytes = answer.read()
        return body


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            get(f"{url}/-/ready", timeout_s=1)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")


@contextmanager
def _running(command: list[str], url: str, log: Path) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_ready(url, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Prometheus:
    url: str
    targets_file: Path

    def scrape(self, target: str) -> None:
        """Scrape `target` (host:port, at /metrics) from now on."""
        temporary = self.targets_file.with_suffix(".tmp")
        temporary.write_text(json.dumps([{"targets": [target]}]))
        temporary.replace(self.targets_file)  # whole, at once: never read half-written

    def scrape_before_it_listens(self, target: str, timeout_s: float = 15) -> None:
        """Scrape `target` from now on, and return once Prometheus has taken it up: its
        discovery applies new targets only every few seconds, so a run started after this is
        scraped from its first second, not from the fifth."""
        self.scrape(target)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(t["discoveredLabels"].get("__address__") == target for t in self.targets()):
                return
            time.sleep(0.1)
        raise AssertionError(f"Prometheus did not take up {target} within {timeout_s} s")

    def query(self, expression: str, at_s: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector (at `at_s`, Unix time, or now)."""
        parameters = {"query": expression}
        if at_s is not None:
            parameters["time"] = f"{at_s:.3f}"
        body = json.loads(get(f"{self.url}/api/v1/query?{urllib.parse.urlencode(parameters)}"))
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        body = json.loads(get(f"{self.url}/api/v1/targets"))
        active: list[dict[str, Any]] = body["data"]["activeTargets"]
        return active


@contextmanager
def run_prometheus(folder: Path) -> Iterator[Prometheus]:
    """Prometheus scraping the targets in a file of `folder` every second."""
    executable = require("prometheus")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    targets = folder / "targets.json"
    targets.write_text("[]")
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL_S}s\n"
        "scrape_configs:\n"
        "  - job_name: shadowdiff\n"
        "    file_sd_configs:\n"
        f"      - files: ['{targets}']\n"
        "        refresh_interval: 1s\n"
    )
    url = f"http://127.0.0.1:{port}"
    command = [
        executable,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    with _running(command, url, folder / "prometheus.log"):
        yield Prometheus(url, targets)


@contextmanager
def run_pushgateway(folder: Path) -> Iterator[str]:
    """A Pushgateway that keeps what is pushed in memory only; yields its URL."""
    executable = require("prometheus-pushgateway")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [executable, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with _running(command, url, folder / "pushgateway.log"):
        yield url
