"""Transports send one request to one target and return an `Observation`, never raising for
anything that happens on the wire. The engine only knows the `Transport` protocol."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any, Final, Protocol

from shadowdiff import __version__
from shadowdiff.endpoint import Endpoint, TransportName
from shadowdiff.observation import Observation
from shadowdiff.spec import RequestSpec
from shadowdiff.trace import is_traceparent
from shadowdiff.wire import unsafe_reason

# Both transports send it, so the two entry points cannot tell them apart.
USER_AGENT: Final = f"shadowdiff/{__version__}"

TRANSPORT_NAMES: Final[tuple[TransportName, ...]] = ("lean", "aiohttp")


def may_retry(request: RequestSpec, extra_headers: Iterable[tuple[str, str]]) -> bool:
    """Whether a request that failed on a reused keep-alive connection before any byte of the
    answer may be sent once more, on a new connection.

    The server may have closed the idle connection while the request was on its way (nginx's
    keepalive_timeout, Envoy's idle_timeout, a load balancer's): RFC 9112 section 9.3.1 lets a
    client retry an idempotent request then, and browsers and curl do. Only what is safe to
    send twice qualifies (GET, HEAD, OPTIONS, no body, no method override, the target's headers
    included), whatever `allow_unsafe` or `repeat_under_load` say: an allowed POST is sent
    exactly as often as written. A failure on a new connection is the server's answer, and
    is never retried.
    """
    return (
        unsafe_reason(
            request.method,
            (*request.headers, *extra_headers),
            request.body,
            grpc_health=request.grpc_health,
        )
        is None
    )


class Pending(Protocol):
    """A send under way: awaiting it gives the observation; `cancel` gives it up. An
    `asyncio.Task` is one."""

    def __await__(self) -> Generator[Any, None, Observation]: ...

    def cancel(self) -> bool: ...


class Transport(Protocol):
    async def send(self, request: RequestSpec, traceparent: str | None = None) -> Observation:
        """`traceparent`, when given, goes out as that header after the request's own (a
        W3C value the engine made for this one send; see shadowdiff.trace)."""
        ...

    def start(self, request: RequestSpec, traceparent: str | None = None) -> Pending:
        """`send`, started now and awaited later: the engine starts both sides of a pair
        before awaiting either."""
        ...

    async def close(self) -> None: ...


def traceparent_problem(traceparent: str | None) -> str | None:
    """Why `traceparent` cannot be written as the header, or None: the same last line of
    defence as for a request's own headers, for a value made per send."""
    if traceparent is None or is_traceparent(traceparent):
        return None
    return "header traceparent: not a W3C traceparent value"


def open_transport(
    endpoint: Endpoint, pool_size: int, name: TransportName | None = None
) -> Transport:
    """The endpoint's transport (`defaults.transport` of its scenario, unless `name` says
    another), for at most `pool_size` sends in flight. Call inside a running event loop."""
    chosen = name or endpoint.transport
    if chosen == "aiohttp":
        from shadowdiff.transport.aiohttp_client import AiohttpTransport

        return AiohttpTransport(endpoint, pool_size=pool_size)
    from shadowdiff.transport.lean import LeanTransport

    return LeanTransport(endpoint, pool_size=pool_size)
