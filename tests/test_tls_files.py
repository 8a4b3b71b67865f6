"""TLS settings that name unusable files are located scenario errors (exit 2), found when
the file is loaded, never a traceback once the run has started."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from shadowdiff.errors import ScenarioError
from shadowdiff.scenario import load_scenario

from .test_cli import shadowdiff


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> dict[str, Path]:
    """Good and bad TLS files, by name."""
    folder = tmp_path_factory.mktemp("tls-files")
    client = ca.issue_cert("client.example.com")
    other = ca.issue_cert("other.example.com")
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    contents = {
        "ca.pem": ca.cert_pem.bytes(),
        "not-a-cert.pem": b"this is not a certificate\n",
        "empty.pem": b"",
        "truncated-ca.pem": ca.cert_pem.bytes()[:200],
        "client.pem": client.cert_chain_pems[0].bytes(),
        "client.key": client.private_key_pem.bytes(),
        "client-with-key.pem": client.private_key_and_cert_chain_pem.bytes(),
        "other.key": other.private_key_pem.bytes(),
        "encrypted.key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
    }
    for name, content in contents.items():
        (folder / name).write_bytes(content)
    return {name: folder / name for name in contents}


def scenario_text(tls: str) -> str:
    return (
        "targets:\n"
        "  baseline: {address: 127.0.0.1}\n"
        "  candidate:\n"
        "    address: 127.0.0.1\n"
        f"    tls: {tls}\n"
        "requests:\n"
        "  - {name: home, url: 'https://app.example.com/'}\n"
    )


@pytest.mark.parametrize(
    ("tls", "field", "message"),
    [
        ("{ca: not-a-cert.pem}", "ca", "not a usable CA bundle"),
        ("{ca: empty.pem}", "ca", "not a usable CA bundle"),
        ("{ca: truncated-ca.pem}", "ca", "not a usable CA bundle"),
        ("{ca: client.key}", "ca", "not a usable CA bundle"),
        ("{client_cert: client.pem, client_key: other.key}", "client_key", "does not belong"),
        ("{client_cert: client.pem, client_key: encrypted.key}", "client_key", "encrypted"),
        ("{client_cert: client.pem}", "client_cert", "not a usable certificate and key"),
        ("{client_cert: not-a-cert.pem, client_key: client.key}", "client_cert", "not a usable"),
        ("{client_cert: client.pem, client_key: not-a-cert.pem}", "client_cert", "not a usable"),
    ],
    ids=[
        "ca-not-a-certificate",
        "ca-empty",
        "ca-truncated",
        "ca-is-a-key",
        "key-of-another-certificate",
        "encrypted-key",
        "certificate-without-key",
        "client-cert-not-a-certificate",
        "client-key-not-a-key",
    ],
)
def test_unusable_tls_file_is_a_located_error(
    files: dict[str, Path], tls: str, field: str, message: str
) -> None:
    path = files["ca.pem"].parent / "scenario.yaml"
    path.write_text(scenario_text(tls))
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    [problem] = raised.value.problems
    assert (problem.line, problem.field) == (5, f"targets.candidate.tls.{field}")
    assert message in problem.message


@pytest.mark.parametrize(
    "tls",
    [
        "{ca: ca.pem}",
        "{client_cert: client.pem, client_key: client.key}",
        "{client_cert: client-with-key.pem}",
    ],
    ids=["ca", "client-pair", "client-cert-with-key-inside"],
)
def test_usable_tls_files_load(files: dict[str, Path], tls: str) -> None:
    path = files["ca.pem"].parent / "good.yaml"
    path.write_text(scenario_text(tls))
    assert load_scenario(path).targets.candidate.tls is not None


async def test_run_with_a_ca_that_is_not_a_certificate_exits_2_with_one_line(
    files: dict[str, Path],
) -> None:
    # The TLS probe is on by default: it used to load the file first, and raise.
    path = files["ca.pem"].parent / "run.yaml"
    path.write_text(scenario_text("{ca: not-a-cert.pem}"))
    code, _, stderr = await shadowdiff("run", str(path))
    assert code == 2
    assert "Traceback" not in stderr
    [line] = stderr.strip().splitlines()
    assert (
        line.startswith(f"error: {path}:5:") and "targets.candidate.tls.ca: not a usable CA" in line
    )
