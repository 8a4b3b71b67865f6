"""Route coverage: which Ingress, HTTPRoute and GRPCRoute rules a run's requests reached, matched as each
side documents it, and `coverage.min` as a threshold (exit 4) in a real run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shadowdiff.errors import UsageError
from shadowdiff.plan import coverage, coverage_rules, plan_files
from shadowdiff.plan.coverage import SentRequest, route_rules
from shadowdiff.run import run
from shadowdiff.scenario import load_scenario

from .conftest import EntryPoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "manifests" / "ingress-nginx"
HEALTHY_ROUTES = Path(__file__).resolve().parent / "manifests" / "gateway-healthy-ours.yaml"

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: web}
spec:
  rules:
  - host: app.example.com
    http:
      paths:
      - {path: /docs, pathType: Prefix, backend: {service: {name: docs, port: {number: 80}}}}
      - {path: /health, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /static, pathType: ImplementationSpecific, backend: {service: {name: s, port: {number: 80}}}}
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: fallback, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: web
  annotations: {nginx.ingress.kubernetes.io/use-regex: "true"}
spec:
  rules:
  - host: api.example.com
    http:
      paths:
      - {path: "/v[0-9]+/items", pathType: ImplementationSpecific, backend: {service: {name: api, port: {number: 80}}}}
"""


def rules_of(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "ingress.yaml"
    path.write_text(text)
    return coverage_rules([str(path)], [], tmp_path)[0]


def get(url: str, method: str = "GET", **headers: str) -> SentRequest:
    return SentRequest(method, url, tuple(headers.items()))


@pytest.mark.parametrize(
    ("sent", "uncovered"),
    [
        (
            [
                get("http://app.example.com/docs/intro"),
                get("http://app.example.com/health"),
                get("http://app.example.com/static.css"),  # ingress-nginx: a plain prefix
                get("http://other.example.com/"),  # the rule without host
                get("http://API.example.com/V1/items"),  # regex: case-insensitive prefix
            ],
            [],
        ),
        (
            [
                get("http://app.example.com/docsearch"),  # not the /docs element
                get("http://app.example.com/health/"),  # Exact
                get("http://api.example.com/v2/items"),  # under the regex's literal prefix
            ],
            [
                "Ingress web/shop rule 0 path 0 (app.example.com Prefix /docs)",
                "Ingress web/shop rule 0 path 1 (app.example.com Exact /health)",
            ],
        ),
    ],
)
def test_ingress_rules_match_as_ingress_nginx_does(
    tmp_path: Path, sent: list[SentRequest], uncovered: list[str]
) -> None:
    rules = rules_of(tmp_path, INGRESS)
    result = coverage(rules, sent)
    assert result.rules == 5
    assert [u for u in result.uncovered if "rule 1" not in u and "static" not in u] == uncovered


def test_httproute_rules_need_host_path_method_headers_and_query() -> None:
    route = yaml.safe_load(
        """
kind: HTTPRoute
metadata: {name: r, namespace: n}
spec:
  hostnames: ["*.example.com"]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
      method: POST
    - path: {type: Exact, value: /search}
      headers: [{name: X-Version, value: "2"}]
      queryParams: [{name: q, value: shoes}]
  - {}
"""
    )
    rules = route_rules([route])
    assert [r.name for r in rules] == ["HTTPRoute n/r rule 0", "HTTPRoute n/r rule 1"]
    missed = coverage(
        rules,
        [
            get("http://shop.example.com/api/x"),  # GET, not POST
            get("http://shop.example.com/search?q=shoes"),  # no X-Version
            get("http://example.com/other"),  # `*.` needs a label before
        ],
    )
    assert missed.covered == 1 and missed.uncovered == ["HTTPRoute n/r rule 0"]
    hit = coverage(rules, [get("http://a.example.com/search?q=shoes", **{"x-version": "2"})])
    assert hit.covered == 2


def test_grpcroute_rules_are_reached_by_the_calls_their_method_matches_name() -> None:
    route = yaml.safe_load(
        """
kind: GRPCRoute
metadata: {name: g, namespace: n}
spec:
  hostnames: [api.example.com]
  rules:
  - matches: [{method: {service: orders.v1.Orders, method: Get}}]
  - matches: [{method: {service: grpc.health.v1.Health}}]
  - matches: [{method: {method: List}, headers: [{name: x-tenant, value: acme}]}]
  - matches: [{method: {type: RegularExpression, service: "inv.*"}}]
"""
    )
    rules = route_rules([route])
    assert [r.name for r in rules] == [f"GRPCRoute n/g rule {i}" for i in range(4)]

    def call(path: str, **headers: str) -> SentRequest:
        return SentRequest("POST", f"https://api.example.com{path}", tuple(headers.items()))

    reached = coverage(
        rules,
        [
            call("/orders.v1.Orders/Get"),
            call("/grpc.health.v1.Health/Check"),
            call("/orders.v1.Orders/List"),  # without x-tenant
        ],
    )
    # The regex rule counts any call to its host, as said (rule 3).
    assert reached.covered == 3 and reached.uncovered == ["GRPCRoute n/g rule 2"]
    typo = coverage(rules[:1], [call("/orders.v1.Orders/get"), call("/orders.v1.Order/Get")])
    assert typo.covered == 0, "service and method match exactly, case included"
    listed = coverage(rules[2:3], [call("/shop.v2.Items/List", **{"x-tenant": "acme"})])
    assert listed.covered == 1


def test_shared_manifests_and_our_routes_give_rules(tmp_path: Path) -> None:
    files = sorted(str(p) for p in SHARED.glob("*.yaml"))
    ingress, routes = coverage_rules(files, [str(HEALTHY_ROUTES)], tmp_path)
    assert len(ingress) >= 8 and len(routes) == 1


async def test_a_run_reports_coverage_and_fails_under_its_minimum(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    tmp_path: Path,
) -> None:
    (tmp_path / "ingress.yaml").write_text(INGRESS)
    baseline: EntryPoint = await start_entry_point("127.0.0.1", name="same")
    candidate: EntryPoint = await start_entry_point("127.0.0.2", name="same")
    planned, _ = plan_files([str(tmp_path / "ingress.yaml")])
    requests = planned[planned.index("requests:") :]
    full = write_scenario(
        baseline,
        candidate,
        "tls_probe: {probe: false}\ncoverage: {ingress: [ingress.yaml], min: 100%}\n" + requests,
    )
    result = await run(load_scenario(full))
    entry = result.report["coverage"]
    assert entry is not None and entry["ingress"] is not None
    assert entry["ingress"]["covered"] == entry["ingress"]["rules"] == 5 and entry["share"] == 1.0
    assert [t["passed"] for t in result.report["thresholds"]] == [True]
    # One request only: it reaches /docs and the rule for every host; three rules are not
    # reached, the threshold fails, exit 4.
    partial = write_scenario(
        baseline,
        candidate,
        "tls_probe: {probe: false}\ncoverage: {ingress: [ingress.yaml], min: 100%}\n"
        "requests:\n  - {name: docs, url: 'http://app.example.com/docs'}\n",
        name="partial.yaml",
    )
    result = await run(load_scenario(partial))
    entry = result.report["coverage"]
    assert entry is not None and entry["share"] == 0.4
    assert result.report["thresholds"][0]["check"] == "coverage >= 100%"
    assert result.report["outcome"]["exit_code"] == 4


def test_a_coverage_manifest_that_cannot_be_read_stops_the_run_first(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    import asyncio

    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    target = "address: 127.0.0.1\n    ports: {http: 9}"
    path = write_scenario(
        target,
        target,
        "coverage: {ingress: [bad.yaml]}\nrequests:\n  - {name: a, url: 'http://a.test/'}\n",
    )
    with pytest.raises(UsageError, match=r"bad\.yaml"):
        asyncio.run(run(load_scenario(path)))
