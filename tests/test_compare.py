"""The pure comparison: what counts as a difference and what is noise."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.compare import compare
from shadowdiff.compare.headers import combined
from shadowdiff.compare.observations import normalize_location
from shadowdiff.observation import ErrorClass, Observation, TransportFailure
from shadowdiff.spec import RequestSpec, Side

REQUEST = RequestSpec("r", "GET", "https://app.example.com/shop/cart", (), None)


def answer(
    side: Side = "baseline",
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    failure: ErrorClass | None = None,
) -> Observation:
    if failure:
        return Observation(side=side, failure=TransportFailure(failure, "boom"))
    return Observation(
        side=side,
        status=status,
        headers=tuple(headers or ()),
        body=body,
        body_bytes=len(body),
        body_sha256=hashlib.sha256(body).hexdigest(),
    )


def differences(
    baseline: Observation, candidate: Observation, request: RequestSpec = REQUEST
) -> set[tuple[str, str, str]]:
    return {(d.kind, d.field, d.severity) for d in compare(request, baseline, candidate)}


@pytest.mark.parametrize(
    ("baseline_headers", "candidate_headers"),
    [
        ([("Date", "Mon, 30 Nov 2026 10:00:00 GMT")], [("date", "Mon, 30 Nov 2026 10:00:01 GMT")]),
        ([("Content-Length", "10")], [("Transfer-Encoding", "chunked")]),
        ([("Connection", "keep-alive")], []),
        ([("X-Request-ID", "a" * 32)], [("X-Request-ID", "b" * 32)]),
        (
            [
                ("Date", "Sun, 29 Nov 2026 10:00:00 GMT"),
                (
                    "Set-Cookie",
                    "sid=123; Path=/; Secure; HttpOnly; Expires=Mon, 30 Nov 2026 10:00:00 GMT",
                ),
            ],
            [
                ("Date", "Sun, 29 Nov 2026 10:00:01 GMT"),
                (
                    "set-cookie",
                    "sid=987; Path=/; Secure; HttpOnly; Expires=Tue, 01 Dec 2026 10:00:00 GMT",
                ),
            ],
        ),
        ([("Location", "/shop/cart/")], [("Location", "https://app.example.com:443/shop/cart/")]),
        ([("X-Envoy-Upstream-Service-Time", "3")], [("x-envoy-upstream-service-time", "9")]),
    ],
    ids=[
        "date",
        "framing",
        "hop-by-hop",
        "generated-request-id",
        "cookie-value",
        "location-forms",
        "envoy-timing",
    ],
)
def test_by_design_noise_is_not_a_difference(
    baseline_headers: list[tuple[str, str]], candidate_headers: list[tuple[str, str]]
) -> None:
    assert (
        differences(
            answer(headers=baseline_headers), answer("candidate", headers=candidate_headers)
        )
        == set()
    )


@pytest.mark.parametrize(
    ("baseline", "candidate", "expected"),
    [
        (answer(status=308), answer("candidate", status=302), {("status", "status", "error")}),
        (
            answer(headers=[("Strict-Transport-Security", "max-age=31536000; includeSubDomains")]),
            answer("candidate"),
            {("header_missing", "strict-transport-security", "error")},
        ),
        (
            answer(),
            answer("candidate", headers=[("Server", "envoy")]),
            {("header_added", "server", "warning")},
        ),
        (
            answer(headers=[("Cache-Control", "no-store")]),
            answer("candidate", headers=[("cache-control", "max-age=60")]),
            {("header_changed", "cache-control", "warning")},
        ),
        (
            answer(headers=[("Set-Cookie", "sid=1; Path=/; Secure; HttpOnly")]),
            answer("candidate", headers=[("Set-Cookie", "sid=2; Path=/; HttpOnly")]),
            {("cookie", "sid", "error")},
        ),
        (
            answer(status=301, headers=[("Location", "https://app.example.com/shop/cart/")]),
            answer(
                "candidate", status=301, headers=[("Location", "http://app.example.com/shop/cart/")]
            ),
            {("redirect", "location", "error")},
        ),
        (
            answer(body=b"<p>one</p>"),
            answer("candidate", body=b"<p>two</p>"),
            {("body", "body", "warning")},
        ),
        (
            answer(body=json.dumps({"service": "api-v2", "pod": "p1"}).encode()),
            answer("candidate", body=json.dumps({"pod": "p1", "service": "api-v1"}).encode()),
            {("json_field", "$.service", "error")},
        ),
        (answer(), answer("candidate", failure="refused"), {("transport", "error", "error")}),
        (
            answer(
                status=301,
                headers=[("Location", "/x/"), ("Strict-Transport-Security", "max-age=1")],
            ),
            answer("candidate", status=404, headers=[("Content-Type", "text/plain")]),
            {
                ("status", "status", "error"),
                ("header_missing", "strict-transport-security", "error"),
            },
        ),
    ],
    ids=[
        "redirect-status",
        "hsts-lost",
        "server-added",
        "cache-control",
        "cookie-lost-secure",
        "location-scheme",
        "body-hash",
        "json-service",
        "refused",
        "status-hides-consequences",
    ],
)
def test_real_change_is_reported(
    baseline: Observation, candidate: Observation, expected: set[tuple[str, str, str]]
) -> None:
    assert differences(baseline, candidate) == expected


def test_request_id_sent_by_the_client_must_come_back_unchanged() -> None:
    request = RequestSpec("r", "GET", "https://app.example.com/", (("X-Request-ID", "abc"),), None)
    baseline = answer(headers=[("X-Request-ID", "abc")])
    candidate = answer("candidate", headers=[("X-Request-ID", "0f8e-uuid")])
    assert differences(baseline, candidate, request) == {
        ("header_changed", "x-request-id", "warning")
    }


def test_same_failure_on_both_sides_is_alike() -> None:
    assert differences(answer(failure="timeout"), answer("candidate", failure="timeout")) == set()


def test_json_bodies_equal_in_content_are_alike_whatever_the_layout() -> None:
    baseline = answer(body=b'{"a": 1, "b": [1, 2]}')
    candidate = answer("candidate", body=b'{"b":[1,2],"a":1}')
    assert differences(baseline, candidate) == set()


def captured(observation: Observation, capture_bytes: int) -> Observation:
    """`observation` as a transport keeps it with `body_capture: capture_bytes`."""
    return dataclasses.replace(observation, body=observation.body[:capture_bytes])


def test_json_past_body_capture_says_it_was_compared_as_text() -> None:
    """JSON longer than body_capture is compared as text; the value says why, and that a
    larger body_capture would compare it field by field."""
    items = [{"id": n, "v": "x" * 20} for n in range(3000)]
    compact = json.dumps({"items": items}).encode()
    indented = json.dumps({"items": items}, indent=2).encode()
    (found,) = compare(
        REQUEST,
        captured(answer(body=compact), 65_536),
        captured(answer("candidate", body=indented), 65_536),
    )
    assert found.kind == "body" and found.detail is not None
    for value in (found.baseline, found.candidate):
        assert value is not None
        assert "JSON not parsed: longer than body_capture (65536 bytes)" in value
        assert "a larger body_capture compares it field by field" in value
    # Kept whole, the same documents are alike; a text body past body_capture has no such note.
    assert differences(answer(body=compact), answer("candidate", body=indented)) == set()
    (text,) = compare(
        REQUEST,
        captured(answer(body=b"a" * 70_000), 65_536),
        captured(answer("candidate", body=b"b" * 70_000), 65_536),
    )
    assert text.baseline is not None and "JSON" not in text.baseline


def test_the_terminal_shows_why_json_past_body_capture_was_compared_as_text(
    tmp_path: Path,
) -> None:
    """The note sits at the end of the body's summary: the terminal cut every value to 40
    characters and showed `(JSON n…`, so only the file reports said it."""
    from rich.console import Console

    from shadowdiff.pair import Pair
    from shadowdiff.render.terminal import render_report
    from shadowdiff.report import RunCollector, build_report
    from shadowdiff.scenario import parse_scenario

    scenario = parse_scenario(
        "targets:\n  baseline: {address: 127.0.0.1}\n  candidate: {address: 127.0.0.2}\n"
        "requests:\n  - {name: r, url: 'https://app.example.com/shop/cart'}\n",
        "s.yaml",
        base_dir=tmp_path,
        environ={},
    )
    items = [{"id": n, "v": "x" * 20} for n in range(3000)]
    baseline = captured(answer(body=json.dumps(items).encode()), 65_536)
    candidate = captured(answer("candidate", body=json.dumps(items, indent=2).encode()), 65_536)
    collector = RunCollector()
    collector(
        Pair(
            0,
            scenario.requests[0],
            baseline,
            candidate,
            tuple(compare(REQUEST, baseline, candidate)),
        )
    )
    console = Console(width=400, record=True)
    console.print(render_report(build_report(scenario, collector, started_at="t", duration_s=1.0)))
    assert "JSON not parsed: longer than body_capture" in console.export_text()


def test_head_requests_do_not_compare_bodies() -> None:
    request = RequestSpec("r", "HEAD", "https://app.example.com/", (), None)
    assert differences(answer(body=b"a"), answer("candidate", body=b"b"), request) == set()


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/a", "https://app.example.com/a"),
        ("b", "https://app.example.com/shop/b"),
        ("https://app.example.com:443/a", "https://app.example.com/a"),
        ("http://app.example.com:80/a", "http://app.example.com/a"),
        ("https://app.example.com:8443/a", "https://app.example.com:8443/a"),
        # RFC 3986 section 6.2.2: the same URI in another spelling.
        ("HTTPS://App.Example.COM/a", "https://app.example.com/a"),
        ("/a%2fb/%7Eme/%41", "https://app.example.com/a%2Fb/~me/A"),
        ("/a%2Fb?q=%e9", "https://app.example.com/a%2Fb?q=%E9"),
    ],
)
def test_normalize_location(location: str, expected: str) -> None:
    assert normalize_location(location, REQUEST.url) == expected


def test_a_cookie_domain_with_and_without_its_leading_dot_is_alike() -> None:
    assert (
        differences(
            answer(headers=[("Set-Cookie", "a=1; Domain=.Example.com; Path=/")]),
            answer("candidate", headers=[("Set-Cookie", "a=2; domain=example.com; Path=/")]),
        )
        == set()
    )
    assert differences(
        answer(headers=[("Set-Cookie", "a=1; Domain=.example.com")]),
        answer("candidate", headers=[("Set-Cookie", "a=1; Domain=shop.example.com")]),
    ) == {("cookie", "a", "warning")}


def test_cookie_added_by_candidate_is_a_warning_and_lost_cookie_an_error() -> None:
    baseline = answer(headers=[("Set-Cookie", "INGRESSCOOKIE=abc; Path=/; HttpOnly")])
    candidate = answer("candidate", headers=[("Set-Cookie", "session=1; Path=/")])
    assert differences(baseline, candidate) == {
        ("cookie", "INGRESSCOOKIE", "error"),
        ("cookie", "session", "warning"),
    }


def test_gzip_body_with_same_content_reports_only_the_encoding() -> None:
    import gzip

    content = b'{"items": [1, 2, 3]}'
    baseline = answer(body=content)
    candidate = answer(
        "candidate", headers=[("Content-Encoding", "gzip")], body=gzip.compress(content)
    )
    assert differences(baseline, candidate) == {("content_encoding", "content-encoding", "warning")}


def test_gzip_body_with_other_content_is_compared_decoded() -> None:
    import gzip

    baseline = answer(body=b'{"a": 1}')
    candidate = answer(
        "candidate", headers=[("Content-Encoding", "gzip")], body=gzip.compress(b'{"a": 2}')
    )
    assert differences(baseline, candidate) == {
        ("content_encoding", "content-encoding", "warning"),
        ("json_field", "$.a", "error"),
    }


def test_ignored_json_paths_and_headers_are_skipped() -> None:
    from shadowdiff.compare.options import CompareOptions, json_path_pattern

    options = CompareOptions(
        ignore_headers=frozenset({"x-cache"}),
        ignore_json=(json_path_pattern("$.items[*].token"), json_path_pattern("$.meta.**")),
    )
    baseline = answer(
        headers=[("X-Cache", "HIT")],
        body=b'{"items": [{"token": "a", "id": 1}], "meta": {"t": {"u": 1}}, "keep": 1}',
    )
    candidate = answer(
        "candidate",
        headers=[("X-Cache", "MISS")],
        body=b'{"items": [{"token": "b", "id": 1}], "meta": {"t": {"u": 2}}, "keep": 2}',
    )
    found = {(d.kind, d.field) for d in compare(REQUEST, baseline, candidate, options)}
    assert found == {("json_field", "$.keep")}


@pytest.mark.parametrize(
    ("baseline_headers", "candidate_headers"),
    [
        ([("Vary", "Accept, Origin")], [("Vary", "Accept"), ("vary", "Origin")]),
        ([("Vary", "Accept,Origin")], [("Vary", "Accept ,  Origin")]),
        ([("Cache-Control", "no-cache, , private")], [("Cache-Control", "no-cache, private")]),
        (
            [("Access-Control-Allow-Methods", "GET, POST")],
            [("Access-Control-Allow-Methods", "GET"), ("Access-Control-Allow-Methods", "POST")],
        ),
        ([("Content-Encoding", "gzip")], [("Content-Encoding", " gzip ")]),
    ],
    ids=["one-line-vs-two", "spacing", "empty-member", "cors-methods", "encoding-spacing"],
)
def test_list_headers_compare_as_rfc_9110_combines_them(
    baseline_headers: list[tuple[str, str]], candidate_headers: list[tuple[str, str]]
) -> None:
    assert (
        differences(
            answer(headers=baseline_headers), answer("candidate", headers=candidate_headers)
        )
        == set()
    )


@pytest.mark.parametrize(
    ("name", "baseline_value", "candidate_value"),
    [
        (
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
            'max-age="31536000";includesubdomains',
        ),
        ("Strict-Transport-Security", "max-age=63072000; preload", "preload; max-age=63072000"),
        (
            "Content-Security-Policy",
            "default-src 'self'; img-src *",
            "Default-Src  'self';img-src *;",
        ),
        ("X-Frame-Options", "DENY", "deny"),
        ("X-Content-Type-Options", "nosniff", "NoSniff"),
        ("Vary", "Accept-Encoding, Origin", "origin, accept-encoding"),
        ("Access-Control-Allow-Headers", "Content-Type, X-A", "x-a, content-type"),
        ("Access-Control-Allow-Methods", "GET, POST", "POST,GET"),
        ("Cache-Control", "public, max-age=60", "Max-Age=60, public"),
        ("Content-Type", "text/html; charset=utf-8", 'Text/HTML;charset="UTF-8"'),
    ],
)
def test_values_equal_in_their_fields_grammar_are_alike(
    name: str, baseline_value: str, candidate_value: str
) -> None:
    # Each pair says the same to every browser and cache: data planes write them so.
    assert (
        differences(
            answer(headers=[(name, baseline_value)]),
            answer("candidate", headers=[(name, candidate_value)]),
        )
        == set()
    )


@pytest.mark.parametrize(
    ("name", "baseline_value", "candidate_value", "severity"),
    [
        (
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
            "max-age=31536000",
            "error",
        ),
        ("Strict-Transport-Security", "max-age=31536000", "max-age=300", "error"),
        (
            "Content-Security-Policy",
            "default-src 'self'; img-src *",
            "img-src *; default-src 'self'",
            "error",
        ),
        ("Content-Security-Policy", "default-src 'self'", "default-src 'SELF' https:", "error"),
        ("X-Frame-Options", "DENY", "SAMEORIGIN", "error"),
        ("Access-Control-Allow-Methods", "GET, POST", "get, post", "error"),
        ("Cache-Control", "max-age=60", "max-age=600", "warning"),
        ("Content-Type", "text/html; charset=utf-8", "text/html", "warning"),
        (
            "Content-Type",
            'multipart/mixed; boundary="AB"',
            "multipart/mixed; boundary=ab",
            "warning",
        ),
    ],
)
def test_a_change_in_meaning_is_still_a_difference(
    name: str, baseline_value: str, candidate_value: str, severity: str
) -> None:
    assert differences(
        answer(headers=[(name, baseline_value)]),
        answer("candidate", headers=[(name, candidate_value)]),
    ) == {("header_changed", name.lower(), severity)}


def test_a_list_member_lost_or_reordered_is_still_a_change() -> None:
    assert differences(
        answer(headers=[("Vary", "Accept, Origin")]),
        answer("candidate", headers=[("Vary", "Accept")]),
    ) == {("header_changed", "vary", "warning")}
    assert differences(
        answer(headers=[("Content-Encoding", "gzip, br")]),
        answer("candidate", headers=[("Content-Encoding", "br, gzip")]),
    ) == {("content_encoding", "content-encoding", "warning")}


def test_commas_inside_quoted_strings_do_not_split_members() -> None:
    from shadowdiff.compare.headers import combined

    assert combined(['W/"a,b", "c"']) == 'W/"a,b", "c"'
    assert combined(["a ,b", "c"]) == "a, b, c"


def test_a_text_body_difference_carries_a_short_unified_diff() -> None:
    before = b"<html>\n<h1>Welcome</h1>\n<p>Price: 10 EUR</p>\n<footer>v1</footer>\n</html>\n"
    after = b"<html>\n<h1>Welcome</h1>\n<p>Price: 12 EUR</p>\n<footer>v1</footer>\n</html>\n"
    found = compare(REQUEST, answer(body=before), answer("candidate", body=after))
    body = [d for d in found if d.kind == "body"]
    assert len(body) == 1 and body[0].detail is not None
    assert body[0].detail.splitlines() == [
        "@@ -2,3 +2,3 @@",
        " <h1>Welcome</h1>",
        "-<p>Price: 10 EUR</p>",
        "+<p>Price: 12 EUR</p>",
        " <footer>v1</footer>",
    ]


def test_binary_bodies_have_no_text_diff_and_long_ones_stay_short() -> None:
    from shadowdiff.compare.text_diff import MAX_DIFF_LINES, text_diff

    assert text_diff(b"\x00\x01", b"\x00\x02") is None
    minified_before = b"".join(b"<li>item %d</li>" % i for i in range(4000))
    minified_after = b"".join(b"<li>item %d!</li>" % i for i in range(4000))
    diff = text_diff(minified_before, minified_after)
    assert diff is not None and len(diff.splitlines()) == MAX_DIFF_LINES + 1
    assert diff.splitlines()[-1] == "…"


# RFC 9110 section 5.6.4 by its definition: a comma followed by an even number of quotes is
# outside a quoted string. Slow (quadratic), so only a reference for short values.
_REFERENCE_SEPARATOR = re.compile(r'\s*,\s*(?=(?:[^"]*"[^"]*")*[^"]*$)')


@given(st.lists(st.text(st.sampled_from(' \t,"ab'), max_size=24), max_size=3))
def test_combined_header_values_split_at_commas_outside_quotes(values: list[str]) -> None:
    members = (m.strip(" \t") for v in values for m in _REFERENCE_SEPARATOR.split(v))
    assert combined(values) == ", ".join(m for m in members if m)


def test_a_hostile_line_of_quotes_and_commas_is_combined_in_one_pass() -> None:
    """64 KiB of a quote and commas took the look-ahead pattern minutes per header."""
    assert combined(['"' + "," * 65_536]) == '"'  # each comma has no quote after it
    assert combined(['a, "b, c", d']) == 'a, "b, c", d'


def as_served(observation: Observation, version: str, reason: str | None) -> Observation:
    observation.http_version, observation.reason = version, reason
    return observation


H1_HEADERS = [
    ("Server", "nginx"),
    ("Content-Type", "text/plain"),
    ("Content-Length", "5"),
    ("Connection", "keep-alive"),
    ("Strict-Transport-Security", "max-age=31536000"),
]
H2_HEADERS = [(name.lower(), value) for name, value in H1_HEADERS if name.lower() != "connection"]


@pytest.mark.parametrize(
    ("baseline_version", "candidate_version", "expected"),
    [
        ("2", "1.1", {("protocol", "http_version", "warning")}),
        ("1.1", "2", {("protocol", "http_version", "info")}),
        ("2", "2", set()),
        ("1.1", "1.0", set()),
    ],
    ids=["h2-lost", "h2-gained", "both-h2", "http1-versions"],
)
def test_the_protocol_served_is_compared_and_nothing_else_of_it(
    baseline_version: str, candidate_version: str, expected: set[tuple[str, str, str]]
) -> None:
    # HTTP/2 writes header names in lower case, has no reason phrase and no Connection
    # header: none of that may show as a header or status difference.
    def served(side: Side, version: str) -> Observation:
        headers = H2_HEADERS if version == "2" else H1_HEADERS
        reason = None if version == "2" else "OK"
        return as_served(answer(side, headers=headers, body=b"hello"), version, reason)

    baseline = served("baseline", baseline_version)
    candidate = served("candidate", candidate_version)
    assert differences(baseline, candidate) == expected
    if expected:
        (difference,) = compare(REQUEST, baseline, candidate)
        assert (difference.baseline, difference.candidate) == (
            f"HTTP/{baseline_version}",
            f"HTTP/{candidate_version}",
        )


def test_the_protocol_difference_stays_beside_a_status_difference() -> None:
    baseline = as_served(answer(status=200, headers=H2_HEADERS), "2", None)
    candidate = as_served(answer("candidate", status=404, headers=H1_HEADERS), "1.1", "Not Found")
    assert differences(baseline, candidate) == {
        ("protocol", "http_version", "warning"),
        ("status", "status", "error"),
    }
