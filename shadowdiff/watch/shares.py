"""Which entry point DNS answers point to: each answered address is the baseline's, the
candidate's or another's, and an interval's answers become shares per target. Pure.

A target's address may be an IP address, or a name (a cloud load balancer's): then the
addresses that name has at the same nameserver, and a CNAME chain through it, count as that
target's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from shadowdiff.watch.dns import Resolution

Pointed = Literal["baseline", "candidate", "other"]
POINTED: Final[tuple[Pointed, ...]] = ("baseline", "candidate", "other")


def normal_address(text: str) -> str | None:
    """An IP address in one canonical text form (`::1`, not `0:0::1`), or None for a name."""
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class TargetAddresses:
    """What counts as each target's: addresses, and names a CNAME chain may pass through."""

    addresses: Mapping[str, Pointed]  # canonical address -> target
    names: Mapping[str, Pointed] = field(default_factory=dict)  # lower-case name -> target

    def which(self, address: str, cnames: Iterable[str] = ()) -> Pointed:
        found = self.addresses.get(normal_address(address) or address)
        if found is not None:
            return found
        for name in cnames:
            if (by_name := self.names.get(name.rstrip(".").lower())) is not None:
                return by_name
        return "other"


def target_addresses(
    baseline: str, candidate: str, resolved: Mapping[str, Resolution] | None = None
) -> TargetAddresses:
    """Each target's addresses: its own when it is an IP address, else what its name resolved
    to (`resolved`, by name). When both targets share an address (one load balancer with two
    ports) it counts as the baseline's: DNS alone cannot tell them apart."""
    addresses: dict[str, Pointed] = {}
    names: dict[str, Pointed] = {}
    for side, address in (("candidate", candidate), ("baseline", baseline)):
        pointed: Pointed = "baseline" if side == "baseline" else "candidate"
        literal = normal_address(address)
        if literal is not None:
            addresses[literal] = pointed
            continue
        name = address.rstrip(".").lower()
        names[name] = pointed
        found = (resolved or {}).get(name)
        for resolved_address in found.addresses if found is not None else ():
            addresses[resolved_address] = pointed
    return TargetAddresses(addresses, names)


@dataclass(frozen=True, slots=True)
class HostShares:
    """One hostname's answer in one interval: how many of its records point at each target,
    and the TTL; or the DNS failure."""

    host: str
    counts: Mapping[Pointed, int]
    ttl_s: int | None
    error: str | None
    message: str = ""

    @property
    def answered(self) -> int:
        return sum(self.counts.values())


def host_shares(resolution: Resolution, targets: TargetAddresses) -> HostShares:
    counts = dict.fromkeys(POINTED, 0)
    for address in resolution.addresses:
        counts[targets.which(address, resolution.cnames)] += 1
    return HostShares(
        resolution.host, counts, resolution.ttl_s, resolution.error, resolution.message
    )


def overall_shares(hosts: Iterable[HostShares]) -> dict[Pointed, float] | None:
    """The share of all answered records per target, each hostname weighted alike (a name
    with many records does not outweigh one with a single record); None when no name
    answered."""
    answered = [host for host in hosts if host.answered]
    if not answered:
        return None
    shares = dict.fromkeys(POINTED, 0.0)
    for host in answered:
        for pointed in POINTED:
            shares[pointed] += host.counts[pointed] / host.answered / len(answered)
    return {pointed: round(share, 4) for pointed, share in shares.items()}
