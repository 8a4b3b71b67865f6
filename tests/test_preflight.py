"""`shadowdiff preflight`: every failing condition of the status fixtures (ours, written from
the Gateway API specification) one line each with exit 1, nothing on a healthy set, and
unreadable files as located errors (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shadowdiff.plan import preflight_files
from shadowdiff.plan.preflight import host_matches

from .test_cli import shadowdiff

MANIFESTS = Path(__file__).resolve().parent / "manifests"
HEALTHY = MANIFESTS / "gateway-healthy-ours.yaml"
BROKEN = MANIFESTS / "gateway-broken-ours.yaml"
SECRETS = MANIFESTS / "secrets-ours.txt"

# One line per numbered failure in gateway-broken-ours.yaml.
EXPECTED = [
    "GatewayClass eg: Accepted is False (InvalidParameters, parametersRef not found)",  # 1
    "Gateway infra/public: Programmed is False (AddressNotAssigned, no address yet)",  # 5
    "Gateway infra/public listener http: Conflicted is True (HostnameConflict)",  # 6
    "Gateway infra/public listener https: Programmed is False (Invalid)",  # 7
    "Gateway infra/public listener https: ResolvedRefs is False (InvalidCertificateRef, "
    "secret infra/missing-tls not found)",  # 8
    "Gateway infra/public listener https: certificate Secret infra/missing-tls does not exist",
    "Gateway infra/public listener https: certificate Secret certs/shared-tls is in another "
    "namespace and no ReferenceGrant allows it",  # 3
    "Gateway infra/public listener tls-no-cert: no status reported for this listener",  # 20
    "Gateway infra/public listener tls-no-cert: HTTPS listener with no certificateRefs",  # 4
    "Gateway infra/stale: Accepted was reported for generation 1, the object is at 2: the "
    "controller has not seen the latest change",  # 9
    "Gateway infra/stale: no Programmed condition: no controller has reported on it",  # 10
    "Gateway infra/stale listener http: no status reported for this listener",  # 11
    "HTTPRoute shop/shop parent infra/public listener https: hostname shop.example.org is "
    "accepted by no listener",  # 14
    "HTTPRoute shop/shop parent infra/public listener https: Accepted is False "
    "(NoMatchingListenerHostname)",  # 17
    "HTTPRoute shop/shop parent infra/public listener https: ResolvedRefs is False "
    "(RefNotPermitted, backendRef api/api not permitted)",  # 18
    "HTTPRoute shop/shop parent infra/public listener grpc: the Gateway has no listener "
    "'grpc'",  # 12
    "HTTPRoute shop/shop parent infra/private: no such Gateway",  # 13
    "HTTPRoute shop/shop parent infra/public: the Gateway has no listener on port 9999",  # 22
    "HTTPRoute shop/shop rule 0 backend api/api: the Service is in another namespace and no "
    "ReferenceGrant in api allows HTTPRoutes from shop",  # 15
    "HTTPRoute shop/shop rule 0 backend shop/gone: no such Service",  # 16
    "HTTPRoute shop/shop rule 0 backend shop/ghost: no such Service",  # 23
    "GRPCRoute shop/orders parent infra/public listener http: the listeners take routes from "
    "infra only (allowedRoutes namespaces from: Same, the default); this route is in shop",  # 21
    "GRPCRoute shop/orders parent infra/public listener http: no status from this parent: "
    "not attached",  # 19
]


def test_every_failing_condition_is_one_line() -> None:
    assert [str(f) for f in preflight_files([str(BROKEN)], str(SECRETS))] == EXPECTED


def test_a_healthy_set_reports_nothing() -> None:
    assert preflight_files([str(HEALTHY)], str(SECRETS)) == []


def test_secrets_are_checked_only_when_listed() -> None:
    lines = [str(f) for f in preflight_files([str(BROKEN)])]
    assert not any("does not exist" in line for line in lines)
    assert len(lines) == len(EXPECTED) - 1


@pytest.mark.parametrize(
    ("listener", "route", "accepted"),
    [
        (None, "anything.example.org", True),
        ("*.example.com", "shop.example.com", True),
        ("*.example.com", "a.b.example.com", True),  # one or more labels
        ("*.example.com", "example.com", False),
        ("*.example.com", "*.example.com", True),
        ("shop.example.com", "*.example.com", True),
        ("shop.example.com", "SHOP.example.com", True),
        ("shop.example.com", "api.example.com", False),
    ],
)
def test_listener_hostnames_match_as_the_specification_says(
    listener: str | None, route: str, accepted: bool
) -> None:
    assert host_matches(listener, route) is accepted


async def test_cli_exit_codes(tmp_path: Path) -> None:
    code, out, err = await shadowdiff("preflight", str(BROKEN), "--secrets", str(SECRETS))
    assert code == 1 and out.splitlines() == EXPECTED
    assert err.strip() == f"preflight: {len(EXPECTED)} problems; fix them before sending traffic"
    code, out, _ = await shadowdiff("preflight", str(HEALTHY))
    assert code == 0 and out == ""
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    code, out, err = await shadowdiff("preflight", str(bad))
    assert code == 2 and out == "" and err.startswith(f"error: {bad}:")


def test_hostile_objects_never_crash(tmp_path: Path) -> None:
    """Wrong types everywhere: findings or nothing, never an exception."""
    path = tmp_path / "odd.yaml"
    path.write_text(
        "kind: List\nitems:\n"
        "- {kind: Gateway, metadata: 5, spec: {listeners: [7, {tls: x}]}, status: []}\n"
        "- {kind: HTTPRoute, metadata: {name: [1]}, spec: {parentRefs: [x, {name: 3}], "
        "rules: [{backendRefs: [5, {namespace: {}}]}], hostnames: [null, 4]}, status: x}\n"
        "- {kind: ReferenceGrant, spec: {from: 1, to: [2]}}\n"
        "- kind: GatewayClass\n"
        "  metadata: {name: c}\n"
        "  status:\n"
        "    conditions:\n"
        '    - {type: Accepted, status: "False", message: "two\\nlines"}\n'
        "- 17\n"
    )
    findings = preflight_files([str(path)])
    assert all("\n" not in str(finding) for finding in findings)
    assert "GatewayClass c: Accepted is False (two\\nlines)" in [str(f) for f in findings]


async def test_a_run_with_preflight_stops_before_sending_when_the_gateway_cannot_serve(
    start_entry_point: Any, write_scenario: Any, tmp_path: Path
) -> None:
    import shutil

    baseline = await start_entry_point("127.0.0.1", name="same")
    candidate = await start_entry_point("127.0.0.2", name="same")
    for fixture in (BROKEN, HEALTHY):
        shutil.copy(fixture, tmp_path / fixture.name)
    body = (
        "tls_probe: {probe: false}\ncompare: {noise: {share: 0}}\n"
        "requests:\n  - {name: a, url: 'http://app.example.com/'}\n"
    )
    broken = write_scenario(baseline, candidate, f"preflight: {BROKEN.name}\n" + body)
    code, out, err = await shadowdiff("run", str(broken))
    assert code == 1 and out.splitlines() == [
        line for line in EXPECTED if "does not exist" not in line
    ]
    assert "nothing was sent" in err
    assert baseline.requests == [] and candidate.requests == []
    healthy = write_scenario(
        baseline, candidate, f"preflight: [{HEALTHY.name}]\n" + body, name="healthy.yaml"
    )
    code, out, err = await shadowdiff("run", str(healthy), "--quiet")
    assert code == 0, err
    assert len(baseline.requests) == len(candidate.requests) == 1


@pytest.mark.parametrize("content", ["", "- a\n", "kind: Ingress\nmetadata: {name: x}\n"])
def test_files_without_gateway_objects_are_refused_not_passed(tmp_path: Path, content: str) -> None:
    from shadowdiff.errors import ScenarioError

    path = tmp_path / "g.yaml"
    path.write_text(content)
    with pytest.raises(ScenarioError, match="no GatewayClass, Gateway or route found"):
        preflight_files([str(path)])


def test_conditions_from_an_older_generation_are_flagged_on_listeners_and_route_parents(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stale.yaml"
    path.write_text(
        """
kind: List
items:
- kind: Gateway
  metadata: {name: g, namespace: n, generation: 5}
  spec: {listeners: [{name: web, protocol: HTTP, port: 80}]}
  status:
    conditions:
    - {type: Accepted, status: "True", observedGeneration: 5}
    - {type: Programmed, status: "True", observedGeneration: 5}
    listeners:
    - name: web
      conditions:
      - {type: Accepted, status: "True", observedGeneration: 4}
      - {type: Programmed, status: "True", observedGeneration: 5}
      - {type: ResolvedRefs, status: "True", observedGeneration: 5}
- kind: HTTPRoute
  metadata: {name: r, namespace: n, generation: 7}
  spec: {parentRefs: [{name: g}]}
  status:
    parents:
    - parentRef: {name: g}
      conditions:
      - {type: Accepted, status: "True", observedGeneration: 6}
      - {type: ResolvedRefs, status: "True", observedGeneration: 7}
"""
    )
    assert [str(f) for f in preflight_files([str(path)])] == [
        "Gateway n/g listener web: Accepted was reported for generation 4, the object is at 5: "
        "the controller has not seen the latest change",
        "HTTPRoute n/r parent n/g: Accepted was reported for generation 6, the object is at 7: "
        "the controller has not seen the latest change",
    ]


def test_secret_lists_in_kubectl_default_columns_are_read() -> None:
    from shadowdiff.plan.preflight import secret_names

    listed = (
        "NAMESPACE   NAME           TYPE                DATA   AGE\n"
        "infra       wildcard-tls   kubernetes.io/tls   2      3d\n"
        "secret/other\n"
    )
    assert secret_names(listed) == {("infra", "wildcard-tls"), ("", "other")}
