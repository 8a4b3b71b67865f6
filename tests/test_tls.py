"""The TLS probe with real handshakes on loopback: one test per comparison rule, each asserting
the exact finding, so that removing the rule fails it."""

from __future__ import annotations

import datetime
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import hashes

from shadowdiff.tls.compare import TlsRules, compare_tls
from shadowdiff.tls.probe import ProbeTarget, TlsPosture, probe_host

from .conftest import unused_port
from .tls_servers import ServerSpec, issue_with_hash, tls_server

HOST = "app.example.com"
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def authorities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two trusted CAs in one bundle, and a third that nobody trusts."""
    first, second, stranger = trustme.CA(), trustme.CA(organization_name="Second CA"), trustme.CA()
    bundle = tmp_path_factory.mktemp("tls") / "bundle.pem"
    bundle.write_bytes(first.cert_pem.bytes() + second.cert_pem.bytes())
    return {"first": first, "second": second, "stranger": stranger, "bundle": bundle}


def posture(port: int, bundle: Path, side: str) -> TlsPosture:
    return probe_host(ProbeTarget(side, "127.0.0.1", port, bundle, timeout_s=3), HOST, NOW)


DEFAULT_RULES = TlsRules()


def differences(
    baseline: ServerSpec, candidate: ServerSpec, bundle: Path, rules: TlsRules = DEFAULT_RULES
) -> set[tuple[str, str, str]]:
    with tls_server(baseline) as baseline_port, tls_server(candidate) as candidate_port:
        found = compare_tls(
            posture(baseline_port, bundle, "baseline"),
            posture(candidate_port, bundle, "candidate"),
            rules,
        )
    return {(d.kind, d.field, d.severity) for d in found}


def test_alike_entry_points_have_no_tls_difference(authorities: dict[str, Any]) -> None:
    leaf = authorities["first"].issue_cert(HOST)
    assert (
        differences(ServerSpec({HOST: leaf}), ServerSpec({HOST: leaf}), authorities["bundle"])
        == set()
    )


def test_probe_reads_certificate_chain_versions_ciphers_and_alpn(
    authorities: dict[str, Any],
) -> None:
    leaf = authorities["first"].issue_cert(HOST)
    spec = ServerSpec({HOST: leaf}, default=leaf, ciphers="ECDHE+AESGCM")
    with tls_server(spec) as port:
        result = posture(port, authorities["bundle"], "baseline")
    assert result.failure is None and result.verified and result.hostname_covered
    assert result.leaf is not None and result.leaf.names == (HOST,)
    assert (
        result.leaf.key_type == "EC P-256"
        and result.leaf.signature_algorithm == "ecdsa-with-SHA256"
    )
    assert len(result.chain) == 1 and result.chain_in_order
    assert result.version == "TLSv1.3" and result.alpn == "h2"
    assert result.versions == {"TLSv1.0": False, "TLSv1.1": False, "TLSv1.2": True, "TLSv1.3": True}
    assert (
        result.cipher_families["ECDHE-ECDSA-AESGCM"]
        and not result.cipher_families["ECDHE-CHACHA20"]
    )
    assert result.no_sni is not None and result.no_sni.accepted
    assert result.days_to_expiry is not None and result.days_to_expiry > 300


def test_hostname_not_covered_is_an_error(authorities: dict[str, Any]) -> None:
    found = differences(
        ServerSpec({HOST: authorities["first"].issue_cert(HOST)}),
        ServerSpec({HOST: authorities["first"].issue_cert("other.example.com")}),
        authorities["bundle"],
    )
    assert ("tls_certificate", "hostname", "error") in found


def test_chain_that_does_not_verify_is_an_error(authorities: dict[str, Any]) -> None:
    found = differences(
        ServerSpec({HOST: authorities["first"].issue_cert(HOST)}),
        ServerSpec({HOST: authorities["stranger"].issue_cert(HOST)}),
        authorities["bundle"],
    )
    assert ("tls_certificate", "verification", "error") in found


def test_other_issuer_is_a_warning(authorities: dict[str, Any]) -> None:
    found = differences(
        ServerSpec({HOST: authorities["first"].issue_cert(HOST)}),
        ServerSpec({HOST: authorities["second"].issue_cert(HOST)}),
        authorities["bundle"],
    )
    assert found == {("tls_certificate", "issuer", "warning")}


@pytest.mark.parametrize(
    ("baseline_days", "candidate_days", "expected"),
    [
        (400, 5, "error"),  # inside the 7-day error window: fails the run by default
        (400, 20, "warning"),  # inside the 30-day warning window
        (400, -3, "error"),  # expired
        (400, 45, None),
        (5, 5, "info"),  # the baseline expires as soon: a renewal to plan, not a regression
        (20, 20, "info"),
    ],
    ids=["5-days", "20-days", "expired", "45-days", "both-5-days", "both-20-days"],
)
def test_candidate_certificate_expiry(
    authorities: dict[str, Any], baseline_days: int, candidate_days: int, expected: str | None
) -> None:
    authority: trustme.CA = authorities["first"]

    def expiring(days: int) -> trustme.LeafCert:
        # Half a day more, so that whole days to expiry read `days` during the test.
        return authority.issue_cert(
            HOST,
            not_before=NOW - datetime.timedelta(days=30),
            not_after=NOW + datetime.timedelta(days=days, hours=12),
        )

    found = differences(
        ServerSpec({HOST: expiring(baseline_days)}),
        ServerSpec({HOST: expiring(candidate_days)}),
        authorities["bundle"],
    )
    expiry = {severity for kind, field, severity in found if field == "expiry"}
    assert expiry == ({expected} if expected else set()), found


def test_expiry_windows_are_settings(authorities: dict[str, Any]) -> None:
    authority = authorities["first"]
    soon = authority.issue_cert(HOST, not_after=NOW + datetime.timedelta(days=10, hours=12))
    found = differences(
        ServerSpec({HOST: authority.issue_cert(HOST)}),
        ServerSpec({HOST: soon}),
        authorities["bundle"],
        TlsRules(expiry_error_days=14, expiry_warning_days=60),
    )
    assert ("tls_certificate", "expiry", "error") in found


def test_weaker_key_is_an_error(authorities: dict[str, Any]) -> None:
    authority = authorities["first"]
    found = differences(
        ServerSpec({HOST: authority.issue_cert(HOST, key_type=trustme.KeyType.ECDSA)}),
        ServerSpec({HOST: authority.issue_cert(HOST, key_type=trustme.KeyType.RSA)}),
        authorities["bundle"],
    )
    assert ("tls_certificate", "key", "error") in found
    stronger = differences(
        ServerSpec({HOST: authority.issue_cert(HOST, key_type=trustme.KeyType.RSA)}),
        ServerSpec({HOST: authority.issue_cert(HOST, key_type=trustme.KeyType.ECDSA)}),
        authorities["bundle"],
    )
    assert not any(field == "key" for _, field, _ in stronger)


def test_weaker_signature_hash_is_an_error(authorities: dict[str, Any], tmp_path: Path) -> None:
    authority = authorities["first"]
    found = differences(
        ServerSpec({HOST: issue_with_hash(authority, tmp_path, HOST, hashes.SHA384())}),
        ServerSpec({HOST: issue_with_hash(authority, tmp_path, HOST, hashes.SHA256())}),
        authorities["bundle"],
    )
    assert ("tls_certificate", "signature_algorithm", "error") in found


def test_reissued_certificate_is_info(authorities: dict[str, Any]) -> None:
    authority = authorities["first"]
    found = differences(
        ServerSpec({HOST: authority.issue_cert(HOST)}),
        ServerSpec({HOST: authority.issue_cert(HOST)}),
        authorities["bundle"],
    )
    assert found == {("tls_certificate", "reissued", "info")}


def test_protocol_refused_by_candidate_is_a_warning_or_an_error_when_needed(
    authorities: dict[str, Any],
) -> None:
    leaf = authorities["first"].issue_cert(HOST)
    baseline = ServerSpec({HOST: leaf})
    candidate = ServerSpec({HOST: leaf}, minimum=ssl.TLSVersion.TLSv1_3)
    assert differences(baseline, candidate, authorities["bundle"]) >= {
        ("tls_protocol", "TLSv1.2", "warning")
    }
    needed = TlsRules(needed_versions=frozenset({"TLSv1.2"}))
    assert ("tls_protocol", "TLSv1.2", "error") in differences(
        baseline, candidate, authorities["bundle"], needed
    )


def test_legacy_protocol_accepted_by_candidate_is_a_warning(authorities: dict[str, Any]) -> None:
    leaf = authorities["first"].issue_cert(HOST)
    found = differences(
        ServerSpec({HOST: leaf}),
        ServerSpec({HOST: leaf}, minimum=ssl.TLSVersion.TLSv1),
        authorities["bundle"],
    )
    assert found == {("tls_protocol", "TLSv1.0", "warning"), ("tls_protocol", "TLSv1.1", "warning")}


def test_cipher_families_lost_and_static_rsa_gained(authorities: dict[str, Any]) -> None:
    leaf = authorities["first"].issue_cert(HOST, key_type=trustme.KeyType.RSA)
    found = differences(
        ServerSpec({HOST: leaf}, ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305"),
        ServerSpec({HOST: leaf}, ciphers="ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256"),
        authorities["bundle"],
    )
    assert found == {("tls_cipher", "ECDHE-CHACHA20", "warning"), ("tls_cipher", "RSA", "warning")}


def test_http2_lost_is_a_warning(authorities: dict[str, Any]) -> None:
    leaf = authorities["first"].issue_cert(HOST)
    found = differences(
        ServerSpec({HOST: leaf}), ServerSpec({HOST: leaf}, alpn=["http/1.1"]), authorities["bundle"]
    )
    assert found == {("tls_alpn", "h2", "warning")}


def test_refused_handshake_for_unknown_sni_instead_of_a_default_certificate(
    authorities: dict[str, Any],
) -> None:
    leaf = authorities["first"].issue_cert(HOST)
    fake = trustme.CA().issue_cert(
        "ingress.local", common_name="Kubernetes Ingress Controller Fake Certificate"
    )
    found = differences(
        ServerSpec({HOST: leaf}, default=fake), ServerSpec({HOST: leaf}), authorities["bundle"]
    )
    assert found == {
        ("tls_default_certificate", "no SNI", "warning"),
        ("tls_default_certificate", "unknown SNI", "warning"),
    }


def test_candidate_without_tls_listener_is_a_handshake_error(authorities: dict[str, Any]) -> None:
    leaf = authorities["first"].issue_cert(HOST)
    with tls_server(ServerSpec({HOST: leaf})) as port:
        baseline = posture(port, authorities["bundle"], "baseline")
    candidate = posture(unused_port(), authorities["bundle"], "candidate")
    assert candidate.failure is not None and candidate.failure.startswith("refused")
    found = compare_tls(baseline, candidate, TlsRules())
    assert [(d.kind, d.field, d.severity) for d in found] == [
        ("tls_handshake", "handshake", "error")
    ]


def test_client_certificate_is_presented_when_configured(
    authorities: dict[str, Any], tmp_path: Path
) -> None:
    authority = authorities["first"]
    client = authority.issue_cert("client.example.com", common_name="shadowdiff probe client")
    client_file = tmp_path / "client.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(client_file))
    spec = ServerSpec({HOST: authority.issue_cert(HOST)}, client_ca=authority)
    with tls_server(spec) as port:
        anonymous = probe_host(
            ProbeTarget("c", "127.0.0.1", port, authorities["bundle"], timeout_s=3), HOST, NOW
        )
        assert spec.client_subjects == []
        with_certificate = probe_host(
            ProbeTarget(
                "c", "127.0.0.1", port, authorities["bundle"], client_file, client_file, timeout_s=3
            ),
            HOST,
            NOW,
        )
        # Every handshake that completed presented it: the main one, the verification, and
        # each accepted version and cipher family. (The server records them on its threads.)
        completed = (
            2
            + sum(with_certificate.versions.values())
            + sum(with_certificate.cipher_families.values())
        )
        deadline = time.monotonic() + 2
        while len(spec.client_subjects) < completed and time.monotonic() < deadline:
            time.sleep(0.01)
    assert (
        anonymous.failure is None and with_certificate.failure is None and with_certificate.verified
    )
    assert spec.client_subjects == ["shadowdiff probe client"] * completed


def test_tls_only_run_prints_a_table_per_hostname(
    authorities: dict[str, Any], tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    hosts = [f"host-{index:02d}.example.com" for index in range(20)]
    authority = authorities["first"]
    baseline_cert, candidate_cert = authority.issue_cert(*hosts), authority.issue_cert(*hosts)
    with (
        tls_server(ServerSpec(dict.fromkeys(hosts, baseline_cert))) as baseline_port,
        tls_server(
            ServerSpec(dict.fromkeys(hosts, candidate_cert)), address="127.0.0.2"
        ) as candidate_port,
    ):
        scenario = tmp_path / "tls.yaml"
        scenario.write_text(
            "targets:\n"
            f"  baseline: {{address: 127.0.0.1, ports: {{https: {baseline_port}}}, tls: {{ca: {authorities['bundle']}}}}}\n"
            f"  candidate: {{address: 127.0.0.2, ports: {{https: {candidate_port}}}, tls: {{ca: {authorities['bundle']}}}}}\n"
            "matrix:\n"
            f"  - {{name: hosts, hosts: [{', '.join(hosts)}], paths: [/]}}\n"
        )
        report_path = tmp_path / "tls.json"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "shadowdiff",
                "run",
                str(scenario),
                "--tls-only",
                "--json",
                str(report_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    titles = [line.strip() for line in result.stdout.splitlines() if line.startswith("TLS host-")]
    assert titles == [f"TLS {host}" for host in hosts]
    report = json.loads(report_path.read_text())
    assert report["totals"]["pairs"] == 0 and len(report["tls"]) == 20
    # The candidate's certificate was issued separately: same names and issuer, new serial.
    assert {line["field"] for line in report["signatures"]} == {"reissued"}
    assert "no difference at error level in TLS of 20 hosts" in result.stdout


def test_tls_only_run_that_reaches_nothing_fails_instead_of_passing(tmp_path: Path) -> None:
    """A wrong port or a closed firewall: both sides refuse every handshake, so they are
    "alike", but nothing was checked; a CI stage must not pass on that (exit 3)."""
    import json

    from shadowdiff.cli import main

    from .conftest import unused_port

    port = unused_port()
    scenario = tmp_path / "tls.yaml"
    scenario.write_text(
        f"targets:\n  baseline: {{address: 127.0.0.1, ports: {{https: {port}}}}}\n"
        f"  candidate: {{address: 127.0.0.1, ports: {{https: {port}}}}}\n"
        "requests:\n  - {name: a, url: 'https://app.example.com/'}\n"
    )
    report = tmp_path / "report.json"
    assert main(["run", str(scenario), "--tls-only", "--json", str(report)]) == 3
    outcome = json.loads(report.read_text())["outcome"]
    assert outcome["reason"] == "the baseline completed no TLS handshake (1 host probed)"
