"""Transports send one request to one target and return an `Observation`, never raising for
anything that happens on the wire. The engine only knows the `Transport` protocol."""

from __future__ import annotations

from typing import Protocol

from shadowdiff.observation import Observation
from shadowdiff.spec import RequestSpec


class Transport(Protocol):
    async def send(self, request: RequestSpec) -> Observation: ...

    async def close(self) -> None: ...
