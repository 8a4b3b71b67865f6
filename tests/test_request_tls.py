"""Per-request TLS: a request overrides its targets' TLS settings (CA, insecure, versions) and
may send an SNI other than its Host, on both transports, without sharing a connection with a
request whose TLS differs; the loader checks the request's CA like a target's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from shadowdiff.endpoint import TransportName
from shadowdiff.errors import ScenarioError
from shadowdiff.pair import Pair
from shadowdiff.replay.engine import replay
from shadowdiff.scenario import load_scenario
from shadowdiff.spec import RequestTls
from shadowdiff.transport import TRANSPORT_NAMES, open_transport

from .conftest import EntryPoint
from .test_cli import shadowdiff


@pytest.fixture(params=TRANSPORT_NAMES)
def transport_name(request: pytest.FixtureRequest) -> TransportName:
    name: TransportName = request.param
    return name


async def _replay(path: Path, transport_name: TransportName) -> dict[str, list[Pair]]:
    scenario = load_scenario(path)
    pairs: list[Pair] = []
    await replay(
        scenario,
        pairs.append,
        transport_factory=lambda endpoint, n: open_transport(endpoint, n, transport_name),
    )
    by_name: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_name.setdefault(pair.request.name, []).append(pair)
    return by_name


async def test_one_scenario_looks_behind_an_untrusted_certificate_and_checks_another(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    stranger = trustme.CA().issue_cert("app.example.com")
    entry = await start_entry_point(cert=stranger)
    # One pair at a time, the insecure request first: a connection it left in the pool must
    # not carry the request that checks the certificate.
    path = write_scenario(
        entry,
        entry,
        """\
        defaults: {concurrency: 1}
        compare: {noise: {share: 0}}
        requests:
          - name: behind the untrusted cert
            url: https://app.example.com/behind
            tls: {insecure: true}
            repeat: 3
          - name: checked
            url: https://app.example.com/checked
            repeat: 3
        """,
        ca_file,
    )
    pairs = await _replay(path, transport_name)

    for pair in pairs["behind the untrusted cert"]:
        assert (pair.baseline.status, pair.candidate.status) == (200, 200)
    for pair in pairs["checked"]:
        for observation in (pair.baseline, pair.candidate):
            assert observation.failure is not None
            assert observation.failure.error_class == "tls_verify"
    assert {seen.raw_path for seen in entry.requests} == {"/behind"}


async def test_request_ca_replaces_the_targets(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    other_ca = trustme.CA()
    entry = await start_entry_point(cert=other_ca.issue_cert("app.example.com"))
    other_ca.cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    path = write_scenario(
        entry,
        entry,
        """\
        defaults: {concurrency: 1}
        compare: {noise: {share: 0}}
        requests:
          - {name: other ca, url: "https://app.example.com/", tls: {ca: other-ca.pem}}
          - {name: target ca, url: "https://app.example.com/"}
        """,
        ca_file,
    )
    pairs = await _replay(path, transport_name)
    assert pairs["other ca"][0].baseline.status == 200
    assert pairs["other ca"][0].candidate.status == 200
    failure = pairs["target ca"][0].baseline.failure
    assert failure is not None and failure.error_class == "tls_verify"


async def test_sni_other_than_host_reaches_the_server_with_host_unchanged(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    entry: EntryPoint = await start_entry_point()
    path = write_scenario(
        entry,
        "address: 127.0.0.1\n    ports: {http: 9, https: 9}",
        """\
        defaults: {concurrency: 1}
        compare: {noise: {share: 0}}
        tls_probe: {probe: false}
        requests:
          - {name: misdirected, url: "https://app.example.com/m", tls: {sni: api.example.com}}
          - {name: plain, url: "https://app.example.com/p"}
        """,
        ca_file,
    )
    scenario = load_scenario(path)
    assert scenario.requests[0].tls == RequestTls(sni="api.example.com")
    transport = open_transport(scenario.endpoint("baseline"), 4, transport_name)
    try:
        for request in scenario.requests:
            observation = await transport.send(request)
            assert observation.status == 200, observation.failure
    finally:
        await transport.close()
    # The second request does not ride on the first one's connection: a handshake of its
    # own, with the URL's host as SNI.
    assert entry.server_names == ["api.example.com", "app.example.com"]
    assert [(seen.host, seen.raw_path) for seen in entry.requests] == [
        ("app.example.com", "/m"),
        ("app.example.com", "/p"),
    ]


async def test_request_versions_limit_the_handshake(
    transport_name: TransportName,
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    async def large(request: web.Request) -> web.Response:
        # The aiohttp transport reads the session from the connection, which aiohttp has
        # already released when a small answer arrived whole.
        return web.Response(body=b"x" * 2**20)

    entry = await start_entry_point(handler=large)
    path = write_scenario(
        entry,
        entry,
        """\
        requests:
          - {name: old, url: "https://app.example.com/", tls: {versions: [TLSv1.2]}}
          - {name: new, url: "https://app.example.com/", tls: {versions: [TLSv1.3]}}
        """,
        ca_file,
    )
    scenario = load_scenario(path)
    transport = open_transport(scenario.endpoint("baseline"), 4, transport_name)
    try:
        versions = []
        for request in scenario.requests:
            observation = await transport.send(request)
            assert observation.tls is not None, observation.failure
            versions.append(observation.tls.version)
    finally:
        await transport.close()
    assert versions == ["TLSv1.2", "TLSv1.3"]


@pytest.mark.parametrize(
    ("tls", "url", "field", "message"),
    [
        ("{insecure: true}", "http://app.example.com/", "tls", "https"),
        (
            "{versions: [TLSv1.1, TLSv1.3]}",
            "https://app.example.com/",
            "tls.versions",
            "consecutive",
        ),
        ("{ca: missing.pem}", "https://app.example.com/", "tls.ca", "file not found"),
        ("{ca: not-a-cert.pem}", "https://app.example.com/", "tls.ca", "not a usable CA bundle"),
        ("{sni: 'bad host'}", "https://app.example.com/", "tls.sni", "hostname"),
        ("{verify: false}", "https://app.example.com/", "tls.verify", "unknown field"),
    ],
    ids=["http-url", "versions-gap", "ca-missing", "ca-not-a-cert", "sni-not-a-name", "typo"],
)
def test_request_tls_problems_are_located(
    tmp_path: Path, tls: str, url: str, field: str, message: str
) -> None:
    (tmp_path / "not-a-cert.pem").write_text("this is not a certificate\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        "targets:\n"
        "  baseline: {address: 127.0.0.1}\n"
        "  candidate: {address: 127.0.0.1}\n"
        "requests:\n"
        f"  - {{name: a, url: '{url}', tls: {tls}}}\n"
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    (problem,) = raised.value.problems
    assert problem.field == f"requests[0].{field}"
    assert message in problem.message
    assert problem.line == 5


async def test_insecure_request_prints_the_warning_a_target_gets(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    entry = await start_entry_point(cert=trustme.CA().issue_cert("app.example.com"))
    path = write_scenario(
        entry,
        entry,
        """\
        tls_probe: {probe: false}
        requests:
          - {name: "[bold]behind", url: "https://app.example.com/", tls: {insecure: true}}
        """,
        ca_file,
    )
    code, _, stderr = await shadowdiff("run", str(path), "-q")
    assert code == 0, stderr
    assert (
        "warning: certificate verification is off for request '[bold]behind' (tls.insecure)"
        in " ".join(stderr.split())
    )
