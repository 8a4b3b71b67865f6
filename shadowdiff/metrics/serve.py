"""Where a run's metrics go: served at /metrics for Prometheus to scrape while the run goes
on (on the run's own event loop, through the client library's aiohttp handler: no thread),
or pushed once to a Pushgateway when it ends.

The options are checked before anything is sent, and a port that cannot be listened on is a
`UsageError` then too. A push that fails does not change the run's outcome: it is a line for
the caller to show. Credentials in a push URL (`https://user:password@host`) go out as Basic
authentication and appear in no message: `display_url` shows the URL without them.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import urllib.error
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

from aiohttp import web
from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.exposition import basic_auth_handler, default_handler

from shadowdiff.errors import UsageError
from shadowdiff.stop import STOP

DEFAULT_ADDRESS: Final = "127.0.0.1"
DEFAULT_JOB: Final = "shadowdiff"
PATH: Final = "/metrics"
# A push waits this long for the Pushgateway: a run's end must not hang on it.
PUSH_TIMEOUT_S: Final = 10.0
_MAX_JOB_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class MetricsOptions:
    """Where a run's metrics go; the `--metrics-*` flags, one to one. `port` 0 listens on any
    free port (the server says which)."""

    port: int | None = None
    address: str = DEFAULT_ADDRESS
    push_url: str | None = None
    job: str = DEFAULT_JOB

    @property
    def wanted(self) -> bool:
        return self.port is not None or self.push_url is not None


def options_problems(options: MetricsOptions) -> list[str]:
    """What is wrong with the options, one line each (flags named as the CLI spells them)."""
    problems = []
    if options.port is not None and not 0 <= options.port <= 65535:
        problems.append(f"--metrics-port must be from 0 to 65535; got {options.port}")
    if options.port is None and options.address != DEFAULT_ADDRESS:
        problems.append("--metrics-address applies to --metrics-port only")
    if not options.address or not options.address.isprintable() or " " in options.address:
        problems.append("--metrics-address: give an IP address or a host name")
    if options.push_url is not None:
        problems += _push_url_problems(options.push_url)
    elif options.job != DEFAULT_JOB:
        problems.append("--metrics-job applies to --metrics-push only")
    if not options.job or len(options.job) > _MAX_JOB_CHARS or not options.job.isprintable():
        problems.append(
            f"--metrics-job must be 1 to {_MAX_JOB_CHARS} printable characters "
            "(it becomes the job label)"
        )
    return problems


def _push_url_problems(url: str) -> list[str]:
    if not url.isprintable() or any(c.isspace() for c in url):
        return ["--metrics-push: the URL holds spaces or control characters"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return [f"--metrics-push {display_url(url)}: not a URL"]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            f"--metrics-push {display_url(url)}: give the Pushgateway's http:// or https:// URL"
        ]
    if parts.query or parts.fragment:
        return [
            f"--metrics-push {display_url(url)}: no query or fragment (the job's path is "
            "added to the URL)"
        ]
    return []


def display_url(url: str) -> str:
    """`url` without its user and password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(the URL given)"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


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
    return f"--metrics-port {port}: cannot listen on {where}: {exc.strerror or exc}"


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
