"""The one nginx every tool in the benchmark loads: two loopback addresses (baseline and
candidate), HTTP/1.1 on one port and TLS on another, where ALPN offers h2 and http/1.1.

The certificate comes from trustme (a throwaway CA written into the run's folder), so the
HTTPS rows verify the certificate as a user's run does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BASELINE, CANDIDATE = "127.0.0.21", "127.0.0.22"
HTTP_PORT, HTTPS_PORT = 18080, 18443
HOSTNAME = "bench.test"  # in Host and SNI; the certificate covers it
START_TIMEOUT_S = 15.0

NGINX_CONFIG = """
worker_processes {workers};
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    keepalive_requests 10000000;
    ssl_certificate {folder}/server.pem;
    ssl_certificate_key {folder}/server.key;
    ssl_session_cache shared:bench:1m;
    server {{
        listen {baseline}:{http_port};
        listen {candidate}:{http_port};
        listen {baseline}:{https_port} ssl http2;
        listen {candidate}:{https_port} ssl http2;
        location / {{ default_type text/plain; return 200 "a static route\\n"; }}
    }}
}}
"""


@dataclass(frozen=True)
class BenchServer:
    process: subprocess.Popen[bytes]
    ca_path: Path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def start_nginx(folder: Path, workers: int) -> BenchServer:
    """Start nginx and return once every address and port accepts connections."""
    import trustme  # the venv's; `./dev bench --help` runs before the venv exists

    authority = trustme.CA()
    leaf = authority.issue_cert(HOSTNAME, BASELINE, CANDIDATE)
    leaf.private_key_pem.write_to_path(str(folder / "server.key"))
    leaf.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    for extra in leaf.cert_chain_pems[1:]:
        with open(folder / "server.pem", "ab") as chain:
            chain.write(extra.bytes())
    ca_path = folder / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_path))

    config = folder / "nginx.conf"
    config.write_text(
        NGINX_CONFIG.format(
            folder=folder,
            workers=workers,
            baseline=BASELINE,
            candidate=CANDIDATE,
            http_port=HTTP_PORT,
            https_port=HTTPS_PORT,
            user="user root;" if os.geteuid() == 0 else "",
        )
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    command = [nginx, "-p", str(folder), "-c", str(config), "-e", str(folder / "startup.log")]
    process = subprocess.Popen([*command, "-g", "daemon off;"])
    deadline = time.monotonic() + START_TIMEOUT_S
    endpoints = [(a, p) for a in (BASELINE, CANDIDATE) for p in (HTTP_PORT, HTTPS_PORT)]
    while not all(_listening(a, p) for a, p in endpoints):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            startup = folder / "startup.log"
            raise RuntimeError(
                "nginx did not start: "
                + (startup.read_text() if startup.exists() else "no startup log")
            )
        time.sleep(0.05)  # polling a port: nginx offers no readiness signal when not daemonised
    return BenchServer(process, ca_path)
