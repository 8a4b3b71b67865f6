"""Where a run's metrics go: served at /metrics for Prometheus to scrape while the run goes
on (on the run's own event loop, through the client library's aiohttp handler: no thread),
or pushed once to a Pushgateway when it ends.

A port that cannot be listened on is a `UsageError`, before anything is sent. A push that
fails does not change the run's outcome: it is a line for the caller to show. Credentials in a
push URL (`https://user:password@host`) go out as Basic authentication and appear in no
message: `display_url` shows the URL without them.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
import urllib.error
from typing import Final
from urllib.parse import unquote, urlsplit

from aiohttp import web
from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.exposition import basic_auth_handler, default_handler

from shadowdiff.errors import UsageError
from shadowdiff.metrics.options import display_url
from shadowdiff.stop import STOP

PATH: Final = "/metrics"
# A push waits this long for the Pushgateway: a run's end must not hang on it.
PUSH_TIMEOUT_S: Final = 10.0


class MetricsServer:
    """Serves a registry at /metrics until closed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        app = web.Application()
        app.router.add_get(PATH, make_aiohttp_handler(registry))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.url = ""

    async def start(self, address: str, port: int) -> str:
        """Listen, or raise `UsageError` (a port in use, an address this machine does not
        have); returns the URL to scrape."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, address, port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise UsageError(_listen_problem(address, port, exc)) from None
        host, bound = self._runner.addresses[0][:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{bound}{PATH}"
        return self.url

    async def close(self) -> None:
        await self._runner.cleanup()


def _listen_problem(address: str, port: int, exc: OSError) -> str:
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"--metrics-port {port}: {where} is already in use"
    if isinstance(exc, socket.gaierror):
        return f"--metrics-address {address}: not an address this machine can listen on"
    # asyncio's message repeats the address: the errno's own text says it once.
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"--metrics-port {port}: cannot listen on {where}: {reason}"


def push_once(registry: CollectorRegistry, url: str, job: str) -> None:
    """PUT the registry's series to the Pushgateway at `url` under `job` (replacing what the
    same job pushed before). Raises OSError (urllib's errors are OSErrors)."""
    parts = urlsplit(url)
    handler = default_handler
    if parts.username is not None or parts.password is not None:
        handler = functools.partial(
            basic_auth_handler,
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )
    push_to_gateway(display_url(url), job, registry, timeout=PUSH_TIMEOUT_S, handler=handler)


async def push(registry: CollectorRegistry, url: str, job: str) -> str | None:
    """`push_once` off the event loop; None when it succeeded, else one line saying why not
    (without the URL's credentials)."""
    loop = asyncio.get_running_loop()
    # The thread that pushes must not take SIGINT or SIGTERM from the main thread (see
    # stop.py): it is started with both blocked.
    with STOP.deferred():
        pushing = loop.run_in_executor(None, push_once, registry, url, job)
    try:
        await pushing
    except urllib.error.HTTPError as exc:
        return (
            f"--metrics-push {display_url(url)}: the Pushgateway answered {exc.code} {exc.reason}"
        )
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, str) else getattr(exc.reason, "strerror", "")
        return f"--metrics-push {display_url(url)}: {reason or exc.reason}"
    except (OSError, ValueError) as exc:
        return f"--metrics-push {display_url(url)}: {exc}"
    return None
