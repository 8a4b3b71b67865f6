"""An echo backend: answers every request with what it received, in the JSON shape of the
Gateway API conformance "echo-basic" image, so a comparison can tell which service answered and
what the proxy changed (path after rewrites, forwarding headers).

`shadowdiff echo` serves it; the demo calls `echo_document` in-process.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

MAX_DELAY_S: Final = 60.0
# Body-size probes send megabytes; the echo backend must not be the one that refuses them.
MAX_BODY_BYTES: Final = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EchoIdentity:
    """Who this echo backend is; echo-basic reads these from the pod's environment."""

    service: str
    pod: str
    namespace: str = "default"
    ingress: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> EchoIdentity:
        return cls(
            service=environ.get("SERVICE_NAME", "echo"),
            pod=environ.get("POD_NAME", os.uname().nodename),
            namespace=environ.get("NAMESPACE", "default"),
            ingress=environ.get("INGRESS_NAME", ""),
        )


def echo_document(
    identity: EchoIdentity,
    *,
    method: str,
    raw_path: str,
    host: str,
    headers: Iterable[tuple[str, str]],
    http_port: int,
    proto: str = "HTTP/1.1",
) -> dict[str, Any]:
    """The echo-basic JSON for one request. Header names are canonicalised (Go's
    `http.CanonicalHeaderKey`, as echo-basic does) and Host is left out, as there."""
    seen: dict[str, list[str]] = {}
    for name, value in headers:
        if name.lower() == "host":
            continue
        seen.setdefault("-".join(part.capitalize() for part in name.split("-")), []).append(value)
    return {
        "path": raw_path,
        "host": host,
        "method": method,
        "proto": proto,
        "headers": seen,
        "namespace": identity.namespace,
        "ingress": identity.ingress,
        "service": identity.service,
        "pod": identity.pod,
        "httpPort": str(http_port),
    }


def _requested(request: web.Request, name: str) -> str | None:
    """An echo control from the query (`?status=503`) or a header (`X-Echo-Status: 503`)."""
    return request.query.get(name) or request.headers.get(f"X-Echo-{name.capitalize()}")


def make_echo_app(identity: EchoIdentity, http_port: int) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        started_s = time.perf_counter()
        delay = _requested(request, "delay")
        status = _requested(request, "status")
        try:
            delay_s = min(float(delay.removesuffix("s")), MAX_DELAY_S) if delay else 0.0
            status_code = int(status) if status else 200
        except ValueError:
            return web.Response(
                status=400, text="delay is seconds (1.5 or 1.5s), status an integer\n"
            )
        await request.read()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        document = echo_document(
            identity,
            method=request.method,
            raw_path=request.raw_path,
            host=request.host,
            headers=((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers),
            http_port=http_port,
            proto=f"HTTP/{request.version.major}.{request.version.minor}",
        )
        # The backend's own time, as a backend says it (W3C Server Timing): the report can
        # then tell what the entry point in front added (shadowdiff/backend_time.py).
        took_ms = (time.perf_counter() - started_s) * 1000
        return web.Response(
            status=status_code,
            body=json.dumps(document).encode(),
            content_type="application/json",
            headers={"Server-Timing": f"app;dur={took_ms:.3f}"},
        )

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
