"""`shadowdiff plan`: Ingress manifests (the shared ingress-nginx examples as they are, and our
own) in, a scenario that validates out, with a probe or a stated reason for every annotation;
hostile manifests end as located errors or skipped rules, never as injected YAML."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.errors import ScenarioError
from shadowdiff.plan import plan_files
from shadowdiff.plan.ingress import NGINX_PREFIX
from shadowdiff.plan.probes import Plan, PlannedRequest
from shadowdiff.scenario import parse_scenario
from shadowdiff.spec import RequestSpec

from .test_cli import shadowdiff

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "manifests" / "ingress-nginx"
OURS = Path(__file__).resolve().parent / "manifests" / "annotations-ours.yaml"
ENVIRON = {"BASELINE_ADDRESS": "127.0.0.1", "CANDIDATE_ADDRESS": "127.0.0.2"}


def planned(text: str, tmp_path: Path) -> tuple[list[RequestSpec], list[str]]:
    scenario = parse_scenario(text, "plan.yaml", base_dir=tmp_path, environ=ENVIRON)
    comments = [line[4:] for line in text.splitlines() if line.startswith("#   ")]
    return list(scenario.requests), comments


def plan_documents(
    documents: list[dict[str, Any]], tmp_path: Path, *, allow_unsafe: bool = False
) -> tuple[list[RequestSpec], list[str]]:
    """Plan Ingress `documents` (as a `kind: List`) and load the scenario as `validate` does."""
    file = tmp_path / "ingresses.yaml"
    file.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": documents}))
    return planned(plan_files([str(file)], allow_unsafe=allow_unsafe)[0], tmp_path)


def ingress(
    name: str = "web",
    host: Any = "www.example.com",
    path: Any = "/docs",
    annotations: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """An Ingress with one rule and one Prefix path."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "annotations": {NGINX_PREFIX + k: v for k, v in (annotations or {}).items()},
        },
        "spec": {
            "rules": [{"host": host, "http": {"paths": [{"path": path, "pathType": "Prefix"}]}}],
            **spec,
        },
    }


def sent(spec: RequestSpec) -> tuple[object, ...]:
    return (spec.method, spec.url, spec.headers, spec.body)


def annotations_of(path: Path) -> set[str]:
    names: set[str] = set()
    for document in yaml.safe_load_all(path.read_text()):
        items = document.get("items", [document]) if isinstance(document, dict) else []
        for item in items:
            if isinstance(item, dict) and item.get("kind") == "Ingress":
                names.update((item["metadata"].get("annotations") or {}).keys())
    return names


@pytest.mark.parametrize("manifest", sorted(SHARED.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shared_manifest_plans_a_valid_scenario_that_accounts_for_each_annotation(
    manifest: Path, tmp_path: Path
) -> None:
    text, _ = plan_files([str(manifest)])
    requests, comments = planned(text, tmp_path)
    assert requests  # at least the unknown-host probe
    said = " ".join(comments) + " ".join(spec.origin or "" for spec in requests)
    for annotation in annotations_of(manifest):
        short = annotation.removeprefix(NGINX_PREFIX)
        assert f"{short}:" in said or f"{short} " in said, (
            f"{annotation} neither probed nor explained"
        )


def test_shared_manifests_get_their_probes(tmp_path: Path) -> None:
    requests, comments = planned(
        plan_files([str(SHARED / "auth-client-certs-ingress.yaml")])[0], tmp_path
    )
    assert [(spec.method, spec.url) for spec in requests] == [
        ("GET", "https://mydomain.com/"),
        ("GET", "http://mydomain.com/"),  # ssl-redirect, on by default for a TLS host
        ("GET", "http://shadowdiff-unknown-host.invalid/"),
    ]
    assert "without a client certificate" in (requests[0].origin or "")
    registry, comments = planned(
        plan_files([str(SHARED / "docker-registry-ingress-with-tls.yaml")])[0], tmp_path
    )
    assert [spec.url for spec in registry] == ["http://shadowdiff-unknown-host.invalid/"]
    assert any("registry.<your domain>" in c and "not a host to send to" in c for c in comments)
    assert any("proxy-body-size: 0 means no limit" in c for c in comments)


def test_annotation_probes(tmp_path: Path) -> None:
    text, _ = plan_files([str(OURS)], allow_unsafe=True)
    requests, comments = planned(text, tmp_path)
    by_url: dict[str, list[RequestSpec]] = {}
    for spec in requests:
        by_url.setdefault(f"{spec.method} {spec.url}", []).append(spec)
    # use-regex: the literal prefix, the capture groups of rewrite-target, a case variant.
    assert {
        "GET https://api.example.com/v1",
        "GET https://api.example.com/v1/shadowdiff/probe",
    } <= set(by_url)
    assert "GET https://api.example.com/V1" in by_url
    assert "GET https://api-old.example.com/v1" in by_url  # server-alias
    (preflight,) = by_url["OPTIONS https://api.example.com/v1"]
    assert dict(preflight.headers)["Origin"] == "https://app.example.com"
    (oversize,) = by_url["POST https://api.example.com/v1"]
    assert oversize.body is not None and len(oversize.body) == 1024**2 + 1
    assert oversize.allow_unsafe
    # Prefix: the path and its trailing slash; force-ssl-redirect: plain HTTP.
    docs = by_url["GET http://www.example.com/docs"]
    assert docs[0].repeat == 200  # canary-weight
    # Behind a weighted canary each side picks the backend at random: never compared pair by
    # pair there; the canary's own probes compare it in proportion.
    assert all(
        spec.ignore_kinds == {"backend"} for spec in requests if "www.example.com" in spec.url
    )
    assert docs[0].backend_split
    assert not any(spec.backend_split for spec in requests if "api.example.com" in spec.url)
    assert all(not spec.ignore_kinds for spec in requests if "api.example.com" in spec.url)
    assert any("www.example.com: canary-weight: the canary's probes compare" in c for c in comments)
    assert "GET http://www.example.com/docs/" in by_url
    canary = [s for s in by_url["GET http://www.example.com/docs"] if s.headers]
    assert sorted(dict(s.headers)["X-Canary"] for s in canary) == ["always", "never"]
    assert "GET http://www.example.com/" in by_url  # app-root
    assert any("limit-rps: a rate limit needs a burst" in c for c in comments)
    assert any("made-up-annotation: plan does not know what to send" in c for c in comments)
    assert any("rule 1: host: a rule for every host" in c for c in comments)
    # Without --allow-unsafe, no body is planned, and the reason is given.
    safe, comments = planned(plan_files([str(OURS)])[0], tmp_path)
    assert all(spec.method != "POST" for spec in safe)
    assert any("plan --allow-unsafe writes it" in c for c in comments)


def test_identical_rules_are_planned_once(tmp_path: Path) -> None:
    one, _ = plan_documents([ingress()], tmp_path)
    eight_thousand = ingress()
    eight_thousand["spec"]["rules"] *= 8000
    many, _ = plan_documents([eight_thousand], tmp_path)
    assert [sent(spec) for spec in many] == [sent(spec) for spec in one]
    assert "shop/web rule 0" in (many[0].origin or "")  # the first one's origin


def test_a_probe_equal_to_another_is_written_once_with_the_larger_repeat(tmp_path: Path) -> None:
    # force-ssl-redirect on a plain-HTTP host: its plain-HTTP probe is the base request;
    # app-root: `/` is also the rule's own path; use-regex: `/1` has no case variant to add.
    requests, _ = plan_documents(
        [
            ingress(path="/", annotations={"force-ssl-redirect": "true", "app-root": "/home"}),
            ingress(name="regex", path="/1(.*)", annotations={"use-regex": "true"}),
            ingress(name="plain"),
            ingress(name="canary", annotations={"canary-weight": "5"}),
        ],
        tmp_path,
    )
    assert len({sent(spec) for spec in requests}) == len(requests)
    (root,) = [spec for spec in requests if spec.url == "http://www.example.com/"]
    assert "force-ssl-redirect" in (root.origin or "") and "Prefix path" in (root.origin or "")
    (docs,) = [spec for spec in requests if spec.url == "http://www.example.com/docs"]
    assert docs.repeat == 200  # the canary's
    assert "shop/plain" in (docs.origin or "")  # the first one's


def test_plan_names_stay_unique_when_a_numbered_name_is_taken() -> None:
    plan = Plan()
    for name, url in [("x (2)", "a"), ("x", "b"), ("x", "c"), ("x", "d")]:
        plan.add(PlannedRequest(name, f"http://{url}.test/", "o"))
    assert [r.name for r in plan.requests] == ["x (2)", "x", "x (3)", "x (4)"]


@pytest.mark.parametrize("path", ["/x?y=1#frag", "/x#frag", "/x?"], ids=["both", "#", "?"])
def test_a_path_with_a_query_or_fragment_is_not_probed(tmp_path: Path, path: str) -> None:
    requests, comments = plan_documents(
        [ingress(path=path, annotations={"server-alias": "old.example.com"})], tmp_path
    )
    assert [spec.url for spec in requests] == ["http://shadowdiff-unknown-host.invalid/"]
    # Once, though the rule has two hosts.
    assert len([c for c in comments if f"path {path!r}: holds a query or fragment" in c]) == 1


def test_a_regex_path_is_probed_up_to_its_first_metacharacter(tmp_path: Path) -> None:
    requests, _ = plan_documents(
        [ingress(path="/api/?(.*)", annotations={"use-regex": "true"})], tmp_path
    )
    assert "http://www.example.com/api/" in {spec.url for spec in requests}


METHOD_OVERRIDES = ["X-HTTP-Method-Override", "x_method_override", "X-HTTP-METHOD"]
TRANSPORT_HEADERS = ["Host", "content-length", "Transfer-Encoding"]
CONNECTION_HEADERS = ["Connection", "Expect", "Upgrade", "TE", "Keep-Alive", "Proxy-Connection"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [(h, "can turn a GET into another method") for h in METHOD_OVERRIDES]
    + [(h, "set from the URL and the body") for h in TRANSPORT_HEADERS]
    + [(h, "hop-by-hop") for h in CONNECTION_HEADERS if h != "Expect"]
    + [("Expect", "changes how the request is sent")],
    ids=lambda value: value if " " not in value else "",
)
def test_a_canary_header_the_loader_refuses_is_not_probed_and_says_why(
    tmp_path: Path, header: str, reason: str
) -> None:
    requests, comments = plan_documents(
        [ingress(annotations={"canary-by-header": header})], tmp_path
    )
    assert all(not spec.headers for spec in requests)
    assert any("canary-by-header: " in c and reason in c for c in comments), comments


def test_a_canary_header_value_the_loader_refuses_is_not_sent(tmp_path: Path) -> None:
    requests, comments = plan_documents(
        [ingress(annotations={"canary-by-header": "X-Canary", "canary-by-header-value": "é"})],
        tmp_path,
    )
    assert [s.headers for s in requests if s.headers] == [(("X-Canary", "never"),)]
    assert any("canary-by-header: header X-Canary: the value holds" in c for c in comments)


def test_a_cors_origin_or_canary_cookie_the_loader_refuses_is_noted(tmp_path: Path) -> None:
    annotations = {
        "enable-cors": "true",
        "cors-allow-origin": "https://a.example.com\u00e9",
        "canary-by-cookie": "c\u00e9",
    }
    requests, comments = plan_documents([ingress(annotations=annotations)], tmp_path)
    assert all(not spec.headers for spec in requests)
    assert any("enable-cors: header Origin" in c for c in comments)
    assert any("canary-by-cookie: header Cookie" in c for c in comments)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("bad_host", "a label holds a character"),
        ("a..b", "an empty label"),
        ("b.example.com:8080", "a label holds a character"),
        ("a.example.com/admin?x=", "a label holds a character"),
        ("c.example.com#", "a label holds a character"),
        ("x" * 64 + ".example.com", "a label longer than 63 characters"),
        (".".join(["a" * 63] * 4), "longer than 253 characters"),
        ("*", "a label holds a character"),
    ],
    ids=["underscore", "empty-label", "port", "path", "fragment", "long-label", "long", "star"],
)
def test_a_host_or_alias_that_is_not_a_host_name_is_not_probed(
    tmp_path: Path, host: str, reason: str
) -> None:
    requests, comments = plan_documents(
        [
            ingress(host=host),
            ingress(name="aliased", host="www.example.com", annotations={"server-alias": host}),
        ],
        tmp_path,
    )
    assert {spec.url for spec in requests} == {
        "http://www.example.com/docs",
        "http://www.example.com/docs/",
        "http://shadowdiff-unknown-host.invalid/",
    }
    assert any(f"shop/web rule 0: host {host!r}: not a host" in c and reason in c for c in comments)
    assert any(f"shop/aliased: server-alias {host!r}: not a host" in c for c in comments)


def test_wildcard_hosts_and_aliases_are_probed_with_a_label_for_the_star(tmp_path: Path) -> None:
    requests, _ = plan_documents(
        [ingress(host="*.example.com", annotations={"server-alias": "*.example.org"})], tmp_path
    )
    assert {spec.url for spec in requests} >= {
        "http://shadowdiff-wildcard.example.com/docs",
        "http://shadowdiff-wildcard.example.org/docs",
    }


def test_a_host_of_the_wrong_type_is_noted_not_read_as_every_host(tmp_path: Path) -> None:
    requests, comments = plan_documents(
        [ingress(host=["a.example.com", "b.example.com"])], tmp_path
    )
    assert [spec.url for spec in requests] == ["http://shadowdiff-unknown-host.invalid/"]
    assert "shop/web: rule 0 host: a list, not a host name" in comments
    assert not any("a rule for every host" in c for c in comments)


def test_an_annotation_of_the_wrong_type_is_named_by_its_type(tmp_path: Path) -> None:
    _, comments = plan_documents(
        [ingress(annotations={"proxy-body-size": ["1m"]})], tmp_path, allow_unsafe=True
    )
    assert "shop/web: proxy-body-size: a list, not text: not read" in comments


def test_a_path_of_the_wrong_type_is_noted_and_the_others_keep_their_numbers(
    tmp_path: Path,
) -> None:
    document = ingress()
    document["spec"]["rules"][0]["http"]["paths"].insert(0, {"path": {"a": 1}})
    requests, comments = plan_documents([document], tmp_path)
    assert "shop/web: rule 0 path 0: a mapping, not a path" in comments
    assert [spec.url for spec in requests][:2] == [
        "http://www.example.com/docs",
        "http://www.example.com/docs/",
    ]
    assert "rule 0 path 1 (Prefix /docs" in (requests[0].origin or "")


@pytest.mark.parametrize("hosts", ["www.example.com", ["www.example.com"]], ids=["string", "list"])
def test_tls_hosts_given_as_one_string_is_one_host(tmp_path: Path, hosts: Any) -> None:
    requests, _ = plan_documents(
        [ingress(tls=[{"hosts": hosts, "secretName": "web-tls"}])], tmp_path
    )
    assert [spec.url for spec in requests] == [
        "https://www.example.com/docs",
        "https://www.example.com/docs/",
        "http://www.example.com/docs",  # ssl-redirect
        "http://shadowdiff-unknown-host.invalid/",
    ]


HOSTILE_MANIFEST = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: "evil\\n  - {name: injected, url: 'http://x.test/'}"
  namespace: "${HOME}"
  annotations:
    nginx.ingress.kubernetes.io/server-alias: "ok.example.com bad\\r\\nhost.example.com"
    "nginx.ingress.kubernetes.io/x\\n# done\\nrequests: []": "v"
spec:
  rules:
  - host: "shop.example.com"
    http:
      paths:
      - path: "/a\\r\\nX-Injected: 1"
        pathType: Exact
        backend: {service: {name: s, port: {number: 80}}}
      - path: "/${HOME}/ü"
        pathType: Exact
        backend: {service: {name: s, port: {number: 80}}}
"""


def test_hostile_manifest_cannot_inject_keys_requests_or_environment(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text(HOSTILE_MANIFEST)
    text, _ = plan_files([str(path)])
    requests, comments = planned(text, tmp_path)
    assert "injected" not in {spec.name for spec in requests}
    # The path's `${HOME}` stays text (never the run's environment); CR/LF in an alias list
    # separate aliases, as whitespace does.
    assert sorted(spec.url for spec in requests) == [
        "http://bad/${HOME}/%C3%BC",
        "http://host.example.com/${HOME}/%C3%BC",
        "http://ok.example.com/${HOME}/%C3%BC",
        "http://shadowdiff-unknown-host.invalid/",
        "http://shop.example.com/${HOME}/%C3%BC",
    ]
    assert not any(str(Path.home()) in spec.url for spec in requests)
    assert all("\n" not in comment and "\r" not in comment for comment in comments)
    assert any("control character" in comment for comment in comments)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("kind: Service\nmetadata: {name: s}\n", "no Ingress found"),
        ("a: [1, 2\n", "YAML:"),
        ("!!python/object:os.system {}\n", "YAML tags are not supported"),
        ("[" * 200 + "]" * 200 + "\n", "nested deeper than 64 levels"),
        (
            'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
                for i in range(8)
            ),
            "YAML aliases expand the file to more than 100,000 values",
        ),
    ],
)
def test_unusable_manifests_are_located_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(content)
    with pytest.raises(ScenarioError) as raised:
        plan_files([str(path)])
    assert message in str(raised.value)


def kubectl_ingress(index: int) -> dict[str, Any]:
    """An Ingress as `kubectl get ingress -A -o yaml` prints it, about 700 bytes of YAML."""
    host = f"app-{index}.team-{index % 40}.example.com"
    backend = {"service": {"name": f"app-{index}", "port": {"number": 8080}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "annotations": {
                NGINX_PREFIX + "proxy-body-size": "8m",
                NGINX_PREFIX + "ssl-redirect": "true",
                "meta.helm.sh/release-name": f"app-{index}",
            },
            "creationTimestamp": "2026-01-05T10:00:00Z",
            "generation": 3,
            "labels": {"app": f"app-{index}", "team": f"team-{index % 40}"},
            "name": f"app-{index}",
            "namespace": f"team-{index % 40}",
            "resourceVersion": str(1000000 + index),
            "uid": f"5c1e6f0a-0000-4000-8000-{index:012d}",
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {"path": "/", "pathType": "Prefix", "backend": backend},
                            {"path": "/api", "pathType": "Prefix", "backend": backend},
                        ]
                    },
                }
            ],
            "tls": [{"hosts": [host], "secretName": f"app-{index}-tls"}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}},
    }


def test_a_cluster_sized_list_of_ingresses_is_planned(tmp_path: Path) -> None:
    documents = [kubectl_ingress(index) for index in range(2600)]
    file = tmp_path / "ingresses.yaml"
    # As kubectl writes it: no anchors, though the backends are shared objects here.
    file.write_text(
        yaml.dump(
            {"apiVersion": "v1", "kind": "List", "items": documents},
            Dumper=type("NoAliases", (yaml.CSafeDumper,), {"ignore_aliases": lambda *_: True}),
        )
    )
    assert file.stat().st_size > 1_500_000
    text, _ = plan_files([str(file)])
    assert "https://app-2599.team-39.example.com/api" in text


def test_an_alias_bomb_the_size_of_a_manifest_is_still_refused(tmp_path: Path) -> None:
    # Nine levels of ten aliases: a billion values from a file of a few hundred bytes.
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for level in range(9):
        mine, below = chr(98 + level), chr(97 + level)
        lines.append(f"{mine}: &{mine} [" + ",".join([f"*{below}"] * 10) + "]")
    file = tmp_path / "laughs.yaml"
    file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScenarioError) as raised:
        plan_files([str(file)])
    assert "YAML aliases expand the file to more than 100,000 values" in str(raised.value)


_TEXT = st.text(min_size=0, max_size=30)


_HEADER_NAME = st.one_of(
    st.sampled_from(METHOD_OVERRIDES + TRANSPORT_HEADERS + CONNECTION_HEADERS + ["X-Canary"]),
    _TEXT,
)


@settings(max_examples=150, deadline=None)
@given(
    host=_TEXT,
    path=_TEXT,
    annotation=_TEXT,
    value=_TEXT,
    header=_HEADER_NAME,
    header_value=_TEXT,
    cors_origin=_TEXT,
    aliases=_TEXT,
    cookie=_TEXT,
)
def test_any_strings_in_a_manifest_give_a_scenario_that_validates(
    tmp_path_factory: pytest.TempPathFactory,
    host: str,
    path: str,
    annotation: str,
    value: str,
    header: str,
    header_value: str,
    cors_origin: str,
    aliases: str,
    cookie: str,
) -> None:
    annotations = {
        "canary-by-header": header,
        "canary-by-header-value": header_value,
        "enable-cors": "true",
        "cors-allow-origin": cors_origin,
        "server-alias": aliases,
        "canary-by-cookie": cookie,
        annotation: value,
    }
    document = ingress(name=value, host=host, path=path, annotations=annotations)
    folder = tmp_path_factory.mktemp("plan")
    file = folder / "m.yaml"
    file.write_text(yaml.safe_dump(document, allow_unicode=True))
    text, _ = plan_files([str(file)], allow_unsafe=True)
    # `planned` runs the scenario loader's whole validation, as `shadowdiff validate` does.
    requests, comments = planned(text, folder)
    assert requests[-1].url == "http://shadowdiff-unknown-host.invalid/"
    assert all(not re.search(r"[\r\n]", comment) for comment in comments)


async def test_cli_writes_the_plan_to_stdout_and_refuses_a_missing_file(tmp_path: Path) -> None:
    code, out, err = await shadowdiff("plan", str(SHARED / "affinity-cookie-ingress.yaml"))
    assert code == 0 and err == ""
    requests, _ = planned(out, tmp_path)
    assert requests[0].repeat == 3 and "affinity" in (requests[0].origin or "")
    missing = tmp_path / "missing.yaml"
    code, out, err = await shadowdiff("plan", str(missing))
    assert code == 2 and out == ""
    assert err.startswith(f"error: {missing}") and "cannot read" in err


def test_a_grpc_backend_gets_the_health_check_where_its_path_takes_it(tmp_path: Path) -> None:
    grpc = {"backend-protocol": "GRPC"}
    tls = {"tls": [{"hosts": ["api.example.com"]}]}
    requests, comments = plan_documents(
        [
            ingress("root", "api.example.com", "/", grpc, **tls),
            ingress("service", "api.example.com", "/orders.v1.Orders", grpc, **tls),
            ingress("plain", "plain.example.com", "/", grpc),
        ],
        tmp_path,
    )
    (health,) = [spec for spec in requests if spec.grpc is not None]
    assert (health.method, health.url) == (
        "POST",
        "https://api.example.com/grpc.health.v1.Health/Check",
    )
    assert health.grpc_health and health.unsafe_reason is None, "sent without --allow-unsafe"
    assert health.origin is not None and "shop/root rule 0 path 0" in health.origin
    assert any("shop/service" in c and "outside this path" in c for c in comments), comments
    assert any("shop/plain" in c and "over TLS only" in c for c in comments), comments
