"""Transports send one request to one target and return an `Observation`, never raising for
anything that happens on the wire. The engine only knows the `Transport` protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, Protocol

from shadowdiff import __version__
from shadowdiff.observation import Observation
from shadowdiff.spec import RequestSpec, Side

if TYPE_CHECKING:
    from shadowdiff.scenario import Scenario

# Both transports send it, so the two entry points cannot tell them apart.
USER_AGENT: Final = f"shadowdiff/{__version__}"

TransportName = Literal["lean", "aiohttp"]
TRANSPORT_NAMES: Final[tuple[TransportName, ...]] = ("lean", "aiohttp")


class Transport(Protocol):
    async def send(self, request: RequestSpec) -> Observation: ...

    async def close(self) -> None: ...


def open_transport(
    scenario: Scenario, side: Side, pool_size: int, name: TransportName | None = None
) -> Transport:
    """The scenario's transport (`defaults.transport`) for one target. Call inside a running
    event loop."""
    chosen = name or scenario.defaults.transport
    if chosen == "aiohttp":
        from shadowdiff.transport.aiohttp_client import AiohttpTransport

        return AiohttpTransport(scenario, side, pool_size=pool_size)
    from shadowdiff.transport.lean import LeanTransport

    return LeanTransport(scenario, side, pool_size=pool_size)
