"""`shadowdiff demo`: start the two embedded entry points on loopback with TLS from a throwaway
CA, point the bundled demo scenario at them, and replay it. No cluster, no network."""

from __future__ import annotations

import dataclasses
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import trustme
from aiohttp import web

from shadowdiff.demo.entrypoints import BASELINE, CANDIDATE, EntryPointProfile, make_entry_point
from shadowdiff.report.pair_stream import PairStreamSettings
from shadowdiff.report.schema import Report
from shadowdiff.run import RunOptions, run
from shadowdiff.scenario import Scenario, load_scenario
from shadowdiff.scenario.model import Ports, Targets, TargetTls

DEMO_HOSTS = ("shop.demo.test", "api.demo.test")


def demo_scenario_path() -> Path:
    """The bundled scenarios/demo.yaml: inside the wheel, or in the source tree."""
    packaged = resources.files("shadowdiff.demo").joinpath("demo.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


@asynccontextmanager
async def serve_entry_point(
    profile: EntryPointProfile, server_tls: ssl.SSLContext
) -> AsyncIterator[Ports]:
    """Start the plain and TLS listeners of `profile` on 127.0.0.1; yield their ports."""
    runners = []
    ports: dict[str, int] = {}
    try:
        for scheme in ("http", "https"):
            app = make_entry_point(profile, tls=scheme == "https")
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(
                runner, "127.0.0.1", 0, ssl_context=server_tls if scheme == "https" else None
            )
            await site.start()
            ports[scheme] = runner.addresses[0][1]
        yield Ports(http=ports["http"], https=ports["https"])
    finally:
        for runner in runners:
            await runner.cleanup()


async def run_demo(
    scenario_path: Path | None = None, *, pairs: PairStreamSettings | None = None
) -> tuple[Scenario, Report]:
    """Replay the demo scenario against the embedded entry points; return the report. With
    `pairs`, each pair is also written to that file as it completes (`--pairs`)."""
    authority = trustme.CA()
    now = datetime.now(UTC)
    baseline_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(*DEMO_HOSTS).configure_cert(baseline_tls)
    # Planted: the candidate's certificate was issued for a short test and expires in 10 days.
    candidate_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(*DEMO_HOSTS, not_after=now + timedelta(days=10, hours=12)).configure_cert(
        candidate_tls
    )
    with tempfile.TemporaryDirectory(prefix="shadowdiff-demo-") as folder:
        ca_file = Path(folder) / "demo-ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        scenario = load_scenario(scenario_path or demo_scenario_path())
        async with (
            serve_entry_point(BASELINE, baseline_tls) as baseline_ports,
            serve_entry_point(CANDIDATE, candidate_tls) as candidate_ports,
        ):
            tls = TargetTls(ca=str(ca_file))
            scenario = dataclasses.replace(
                scenario,
                targets=Targets(
                    baseline=scenario.targets.baseline.model_copy(
                        update={"ports": baseline_ports, "tls": tls}
                    ),
                    candidate=scenario.targets.candidate.model_copy(
                        update={"ports": candidate_ports, "tls": tls}
                    ),
                ),
            )
            result = await run(scenario, RunOptions(seed=0, pairs=pairs), now=now)
    return scenario, result.report
