"""Everything a transport needs to know about the target it sends to, as plain data: where to
connect, which TLS to use, the headers it adds, and the limits it enforces. Built from a
scenario (`Scenario.endpoint`), so that transports depend on this and not on the scenario."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shadowdiff.spec import HttpVersion, RequestTls, Side


def expanded_path(value: str) -> Path:
    """`value` with a leading `~` or `~name` expanded; a `~name` of no user on this machine
    is taken as written, as a shell takes it (Path.expanduser raises RuntimeError)."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        return Path(value)


def resolved_path(base_dir: Path, value: str) -> Path:
    """`value` (`~` expanded) as an absolute path, or relative to `base_dir` (the folder of
    the scenario that names it)."""
    path = expanded_path(value)
    return path if path.is_absolute() else base_dir / path


TransportName = Literal["lean", "aiohttp"]


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """The largest response head a transport accepts; a larger one is `malformed_response`."""

    header_line_bytes: int
    header_bytes: int
    header_fields: int


@dataclass(frozen=True, slots=True)
class ClientTls:
    """A target's client TLS settings, with file paths resolved. A request's `RequestTls` may
    name files of its own: `base_dir` is where its relative paths start."""

    ca: Path | None = None
    insecure: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None
    base_dir: Path = Path(".")

    def resolve(self, path: str) -> Path:
        return resolved_path(self.base_dir, path)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One target as a transport sees it."""

    side: Side
    address: str  # an IP address or a DNS name to connect to, never the production host
    port_map: dict[int, int]  # production URL port -> the port this target listens on
    tls: ClientTls
    headers: tuple[tuple[str, str], ...]  # added to every request sent to this target
    connect_timeout_s: float
    total_timeout_s: float
    body_capture_bytes: int  # bytes of each body kept for comparison (all are hashed)
    limits: HeadLimits
    transport: TransportName = "lean"
    # The requests' TLS overrides and whether any request is HTTPS: contexts are built before
    # the run (an unusable TLS file stops it before anything is sent), and never for plain HTTP.
    tls_overrides: tuple[RequestTls, ...] = field(default=())
    any_https: bool = False
    # The HTTP version of a request that does not say its own (`targets.<side>.http`), and
    # every version the requests ask for: their TLS contexts are built before the run too.
    http: HttpVersion = "1.1"
    http_versions: frozenset[HttpVersion] = frozenset()
