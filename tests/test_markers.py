"""Echo markers: each built-in format is recognised, and what the backend saw is compared."""

from __future__ import annotations

import json

import pytest

from shadowdiff.compare import compare
from shadowdiff.echo import EchoIdentity, echo_document
from shadowdiff.markers import EchoMarkers, extract_markers, pod_workload
from shadowdiff.markers.custom import CustomExtractor, resolve_pointer
from shadowdiff.observation import Observation
from shadowdiff.scenario.model import MarkerSpec
from shadowdiff.spec import RequestSpec, Side

ECHO_BASIC = json.dumps(
    echo_document(
        EchoIdentity("shop", "shop-7d9c5b6f4-x2k4q", "prod"),
        method="GET",
        raw_path="/cart?x=1",
        host="shop.example.com",
        headers=[("X-Forwarded-Proto", "https"), ("x-real-ip", "10.0.0.1")],
        http_port=8080,
    )
).encode()
WHOAMI_TEXT = (
    b"Hostname: whoami-6b7f9d8c4-abcde\nIP: 127.0.0.1\nIP: 10.1.2.3\nRemoteAddr: 10.1.2.1:4242\n"
    b"GET /cart?x=1 HTTP/1.1\r\nHost: shop.example.com\r\nX-Forwarded-Proto: https\r\nX-Real-Ip: 10.0.0.1\r\n\r\n"
)
WHOAMI_API = json.dumps(
    {
        "hostname": "whoami-6b7f9d8c4-abcde",
        "ip": ["10.1.2.3"],
        "headers": {"X-Forwarded-Proto": ["https"]},
        "url": "/api?x=1",
        "host": "shop.example.com",
        "method": "GET",
    }
).encode()
EALEN = json.dumps(
    {
        "host": {"hostname": "echo-5f6d8c7b9-qwert", "ip": "10.1.2.3", "ips": []},
        "http": {"method": "GET", "baseUrl": "", "originalUrl": "/cart?x=1", "protocol": "http"},
        "request": {
            "params": {},
            "query": {"x": "1"},
            "cookies": {},
            "body": {},
            "headers": {"host": "shop.example.com", "x-forwarded-proto": "https"},
        },
        "environment": {},
    }
).encode()
MENDHAK = json.dumps(
    {
        "path": "/cart",
        "headers": {"host": "shop.example.com", "x-forwarded-proto": "https"},
        "method": "GET",
        "hostname": "shop.example.com",
        "ip": "10.1.2.1",
        "protocol": "http",
        "query": {"x": "1"},
        "os": {"hostname": "echo-7c9f8d6b5-zxcvb"},
        "connection": {"servername": "shop.example.com"},
    }
).encode()
HTTPBIN = json.dumps(
    {
        "args": {"x": "1"},
        "data": "",
        "headers": {"Host": "shop.example.com", "X-Forwarded-Proto": "https"},
        "json": None,
        "method": "GET",
        "origin": "10.0.0.1",
        "url": "https://shop.example.com/anything?x=1",
    }
).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            ECHO_BASIC,
            EchoMarkers(
                "echo-basic", "shop", "shop-7d9c5b6f4-x2k4q", "/cart?x=1", "shop.example.com", "GET"
            ),
        ),
        (
            WHOAMI_TEXT,
            EchoMarkers(
                "whoami", None, "whoami-6b7f9d8c4-abcde", "/cart?x=1", "shop.example.com", "GET"
            ),
        ),
        (
            WHOAMI_API,
            EchoMarkers(
                "whoami-api", None, "whoami-6b7f9d8c4-abcde", "/api?x=1", "shop.example.com", "GET"
            ),
        ),
        (
            EALEN,
            EchoMarkers(
                "ealen-echo-server",
                None,
                "echo-5f6d8c7b9-qwert",
                "/cart?x=1",
                "shop.example.com",
                "GET",
            ),
        ),
        (
            MENDHAK,
            EchoMarkers(
                "http-https-echo",
                None,
                "echo-7c9f8d6b5-zxcvb",
                "/cart?x=1",
                "shop.example.com",
                "GET",
            ),
        ),
        (HTTPBIN, EchoMarkers("httpbin", None, None, "/anything?x=1", "shop.example.com", "GET")),
    ],
    ids=["echo-basic", "whoami-text", "whoami-api", "ealen", "mendhak", "httpbin"],
)
def test_builtin_format_is_recognised(body: bytes, expected: EchoMarkers) -> None:
    markers = extract_markers((), body)
    assert markers is not None
    assert (
        markers.format,
        markers.service,
        markers.pod,
        markers.path,
        markers.host,
        markers.method,
    ) == (
        expected.format,
        expected.service,
        expected.pod,
        expected.path,
        expected.host,
        expected.method,
    )
    assert markers.headers is not None and markers.headers["x-forwarded-proto"] == ("https",)


@pytest.mark.parametrize("body", [b"<html>hello</html>", b'{"path": "/x"}', b"[1, 2]", b""])
def test_ordinary_bodies_are_not_echoes(body: bytes) -> None:
    assert extract_markers((), body) is None


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("shop-7d9c5b6f4-x2k4q", "shop"),
        ("api-v1-84c7f9d6b-p2m7n", "api-v1"),
        ("db-0", "db"),
        ("node-agent-x7k2q", "node-agent"),  # DaemonSet
        ("static", None),  # a custom POD_NAME: no workload can be told from it
        ("api-admin", None),  # vowels: not a generated suffix
    ],
)
def test_pod_workload_drops_the_replica_suffix(pod: str, workload: str | None) -> None:
    assert pod_workload(pod) == workload


def test_custom_markers_read_pointer_header_and_regex() -> None:
    spec = MarkerSpec.model_validate(
        {
            "name": "app",
            "service": {"header": "X-Served-By"},
            "pod": {"json": "/meta/pod"},
            "path": {"regex": "seen (?P<value>/\\w+)"},
        }
    )
    markers = CustomExtractor(spec)(
        (("x-served-by", "cart"),), b'{"meta": {"pod": "cart-1"}, "m": "seen /x"}'
    )
    assert markers == EchoMarkers("app", service="cart", pod="cart-1", path="/x")
    assert resolve_pointer({"a/b": [0, {"~k": 1}]}, "/a~1b/1/~0k") == 1


def echo(side: Side, body: bytes) -> Observation:
    import hashlib

    return Observation(
        side=side,
        status=200,
        body=body,
        body_bytes=len(body),
        body_sha256=hashlib.sha256(body).hexdigest(),
    )


def basic(
    service: str, pod: str, path: str = "/x", headers: list[tuple[str, str]] | None = None
) -> bytes:
    return json.dumps(
        echo_document(
            EchoIdentity(service, pod),
            method="GET",
            raw_path=path,
            host="a.example.com",
            headers=headers or [],
            http_port=8080,
        )
    ).encode()


REQUEST = RequestSpec("r", "GET", "https://a.example.com/x", (("X-Request-ID", "client-id"),), None)


@pytest.mark.parametrize(
    ("baseline", "candidate", "expected"),
    [
        (
            basic("shop", "shop-7d9c5b6f4-x2k4q", headers=[("X-Request-ID", "client-id")]),
            basic("shop", "shop-7d9c5b6f4-m3n4p", headers=[("X-Request-ID", "client-id")]),
            set(),
        ),
        (
            basic("api-v2", "api-v2-84c7f9d6b-p2m7n"),
            basic("api-v1", "api-v1-6c4d8b7f5-kq9wz"),
            {("backend", "service")},
        ),
        (
            basic("shop", "shop-a-7d9c5b6f4-x2k4q"),
            basic("shop", "shop-b-7d9c5b6f4-x2k4q"),
            {("backend", "workload")},
        ),
        (
            basic("shop", "p", path="/x"),
            basic("shop", "p", path="/app/x"),
            {("backend_path", "path")},
        ),
        (
            basic("shop", "p", headers=[("X-Forwarded-Host", "a.example.com")]),
            basic("shop", "p"),
            {("backend_header", "x-forwarded-host")},
        ),
        (
            basic("shop", "p", headers=[("X-Request-ID", "client-id")]),
            basic("shop", "p", headers=[("X-Request-ID", "0c5b-uuid")]),
            {("backend_header", "x-request-id")},
        ),
    ],
    ids=[
        "replicas-alike",
        "wrong-service",
        "other-workload",
        "rewrite-lost",
        "forwarded-host-lost",
        "request-id-replaced",
    ],
)
def test_marker_differences(
    baseline: bytes, candidate: bytes, expected: set[tuple[str, str]]
) -> None:
    found = {
        (d.kind, d.field)
        for d in compare(REQUEST, echo("baseline", baseline), echo("candidate", candidate))
    }
    assert found == expected


def backend_differences(baseline: EchoMarkers, candidate: EchoMarkers) -> set[tuple[str, str, str]]:
    from shadowdiff.compare.markers import compare_markers
    from shadowdiff.compare.options import CompareOptions

    found = compare_markers(REQUEST, baseline, candidate, CompareOptions())
    return {(d.kind, d.field, d.severity) for d in found if d.kind == "backend"}


@pytest.mark.parametrize(
    ("baseline_pod", "candidate_pod"),
    [
        ("web-0", "web-1"),  # StatefulSet
        ("node-agent-x7k2q", "node-agent-b9tzn"),  # DaemonSet
        ("echo-green", "echo-blue"),  # custom POD_NAME values
        ("replica-one", "replica-two"),
    ],
    ids=["statefulset", "daemonset", "custom-1", "custom-2"],
)
def test_replicas_of_one_service_are_never_a_difference(
    baseline_pod: str, candidate_pod: str
) -> None:
    """Before: replicas whose names did not follow the Deployment pattern were an error."""
    baseline = EchoMarkers("echo-basic", service="shop", pod=baseline_pod)
    candidate = EchoMarkers("echo-basic", service="shop", pod=candidate_pod)
    assert backend_differences(baseline, candidate) == set()


def test_custom_named_pods_of_two_services_are_still_an_error() -> None:
    baseline = EchoMarkers("echo-basic", service="cart", pod="echo-green")
    candidate = EchoMarkers("echo-basic", service="orders", pod="echo-blue")
    assert backend_differences(baseline, candidate) == {("backend", "service", "error")}


def test_without_a_service_custom_pod_names_are_shown_but_do_not_fail() -> None:
    baseline = EchoMarkers("whoami", pod="echo-green")
    candidate = EchoMarkers("whoami", pod="echo-blue")
    assert backend_differences(baseline, candidate) == {("backend", "pod", "info")}
    patterned = backend_differences(
        EchoMarkers("whoami", pod="cart-7d9c5b6f4-x2k4q"),
        EchoMarkers("whoami", pod="orders-7d9c5b6f4-x2k4q"),
    )
    assert patterned == {("backend", "workload", "error")}


def test_a_named_workload_field_makes_custom_names_exact() -> None:
    spec = MarkerSpec.model_validate(
        {"name": "app", "pod": {"json": "/pod"}, "workload": {"json": "/app"}}
    )
    extract = CustomExtractor(spec)

    def markers(body: bytes) -> EchoMarkers:
        found = extract((), body)
        assert found is not None, body
        return found

    same = backend_differences(
        markers(b'{"pod": "echo-green", "app": "cart"}'),
        markers(b'{"pod": "echo-blue", "app": "cart"}'),
    )
    other = backend_differences(
        markers(b'{"pod": "echo-green", "app": "cart"}'),
        markers(b'{"pod": "echo-green", "app": "orders"}'),
    )
    assert same == set() and other == {("backend", "workload", "error")}
