"""TLS posture: probe both entry points for every HTTPS hostname of a scenario and compare
certificates and handshakes. `probe_scenario` is the I/O; `compare_tls` is pure."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from shadowdiff.difference import Difference
from shadowdiff.scenario import Scenario
from shadowdiff.spec import SIDES
from shadowdiff.tls.compare import TlsRules, compare_tls
from shadowdiff.tls.probe import ProbeTarget, TlsPosture, probe_hosts


@dataclass(frozen=True)
class HostTls:
    """Both sides' posture for one hostname and what differs."""

    host: str
    baseline: TlsPosture
    candidate: TlsPosture
    differences: tuple[Difference, ...]


def tls_rules(scenario: Scenario) -> TlsRules:
    settings = scenario.tls_probe
    return TlsRules(
        expiry_error_days=settings.expiry_error_days,
        expiry_warning_days=settings.expiry_warning_days,
        needed_versions=frozenset(settings.clients_need.versions),
        needed_cipher_families=frozenset(settings.clients_need.cipher_families),
    )


def probe_targets(scenario: Scenario, production_port: int = 443) -> dict[str, ProbeTarget]:
    targets: dict[str, ProbeTarget] = {}
    for side in SIDES:
        target = getattr(scenario.targets, side)
        tls = target.tls
        targets[side] = ProbeTarget(
            side=side,
            address=target.address,
            port=scenario.port_map(side).get(production_port, production_port),
            ca_file=scenario.resolve_path(tls.ca) if tls.ca else None,
            client_cert=scenario.resolve_path(tls.client_cert) if tls.client_cert else None,
            client_key=scenario.resolve_path(tls.client_key) if tls.client_key else None,
            timeout_s=scenario.defaults.timeouts.connect_s,
        )
    return targets


async def probe_scenario(scenario: Scenario, now: datetime.datetime) -> list[HostTls]:
    """Probe every HTTPS hostname of the scenario on both targets."""
    rules = tls_rules(scenario)
    results: list[HostTls] = []
    by_port: dict[int, list[str]] = {}
    for host, port in scenario.https_hosts():
        by_port.setdefault(port, []).append(host)
    for port, hosts in by_port.items():
        for host, baseline, candidate in await probe_hosts(
            probe_targets(scenario, port), hosts, now
        ):
            results.append(
                HostTls(host, baseline, candidate, tuple(compare_tls(baseline, candidate, rules)))
            )
    return results


__all__ = ["HostTls", "TlsPosture", "TlsRules", "compare_tls", "probe_scenario", "tls_rules"]
