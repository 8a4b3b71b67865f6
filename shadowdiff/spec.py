"""Request specs: the plain, fully resolved requests that the replay engine sends to both sides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["baseline", "candidate"]
SIDES: tuple[Side, Side] = ("baseline", "candidate")


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request as both entry points receive it (before per-target headers are added).

    `url` keeps the production hostname: it becomes the Host header, the TLS SNI and the name
    the certificate is checked against; only the connection goes to a target's own address.
    """

    name: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    repeat: int = 1
