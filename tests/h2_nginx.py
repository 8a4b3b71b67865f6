"""A small nginx for the HTTP/2 tests (Debian's 1.22, built with the http_v2 module): four
listeners on loopback, started with a generated configuration and stopped with the test.

    h2_tls     listen ... ssl http2   h2 and HTTP/1.1 on one port, chosen by ALPN
    h1_tls     listen ... ssl         HTTP/1.1 only (no h2 in ALPN)
    h2c        listen ... http2       h2c with prior knowledge
    h1         listen ...             HTTP/1.1 in plain text
    h2_short   listen ... ssl http2   as h2_tls, with a GOAWAY after every third request

Every listener answers the same: a small text body, `X-Served: nginx` and HSTS, and logs
`$server_protocol $connection $connection_requests $request_uri` to its own access log.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from .lab import free_port, nginx_binary, wait_listening

ADDRESS = "127.0.0.1"
LISTENERS = {
    "h2_tls": ("ssl http2", ""),
    "h1_tls": ("ssl", ""),
    "h2c": ("http2", ""),
    "h1": ("", ""),
    # A graceful GOAWAY after every third request, the streams in flight still answered.
    "h2_short": ("ssl http2", "keepalive_requests 3;"),
}

_CONFIG = """
worker_processes 1;
pid {dir}/nginx.pid;
{user}
events {{ worker_connections 256; }}
http {{
    access_log off;
    error_log {dir}/error.log warn;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    log_format wire '$server_protocol $connection $connection_requests $request_uri $http_traceparent';
    ssl_certificate {cert};
    ssl_certificate_key {key};
    {servers}
}}
"""

_SERVER = """
    server {{
        listen {address}:{port} {options};
        server_name _;
        {extra}
        access_log {dir}/{name}.log wire;
        location / {{
            add_header X-Served nginx;
            add_header Strict-Transport-Security "max-age=31536000" always;
            return 200 "served\\n";
        }}
    }}
"""


@dataclass(frozen=True)
class H2Nginx:
    folder: Path
    ca_file: Path
    ports: dict[str, int]

    def log_lines(self, name: str) -> list[list[str]]:
        path = self.folder / f"{name}.log"
        return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@contextmanager
def run_h2_nginx(folder: Path) -> Iterator[H2Nginx]:
    nginx = nginx_binary()
    assert nginx is not None, "nginx is not installed"
    authority = trustme.CA()
    leaf = authority.issue_cert("app.example.com", "api.example.com")
    ca_file, cert, key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    (folder / "tmp").mkdir()
    ports = {name: free_port(ADDRESS) for name in LISTENERS}
    servers = "".join(
        _SERVER.format(
            address=ADDRESS, port=ports[name], options=options, extra=extra, dir=folder, name=name
        )
        for name, (options, extra) in LISTENERS.items()
    )
    config = folder / "nginx.conf"
    config.write_text(
        _CONFIG.format(
            dir=folder,
            cert=cert,
            key=key,
            servers=servers,
            # Workers of a root master would run as nobody, who may not read this folder.
            user="user root;" if os.geteuid() == 0 else "",
        )
    )
    process = subprocess.Popen(
        [
            nginx,
            "-p",
            str(folder),
            "-c",
            str(config),
            "-e",
            str(folder / "startup.log"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        for port in ports.values():
            wait_listening(ADDRESS, port, process, "nginx (HTTP/2 tests)")
        yield H2Nginx(folder, ca_file, ports)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
