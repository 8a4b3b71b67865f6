"""Remediation hints: the likely cause and fix for each kind of difference a migration makes,
and never a crash whatever the example values (they come from servers)."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.difference import DifferenceKind
from shadowdiff.report.hints import hint_for


@pytest.mark.parametrize(
    ("kind", "field", "example", "urls", "expected"),
    [
        ("status", "status", ("308", "302"), (), "statusCode: 308"),
        ("transport", "error", ("HTTP 200", "tls_handshake"), (), "offers h2 where"),
        ("status", "status", ("308", "301"), (), "statusCode: 308"),
        ("status", "status", ("200", "413"), (), "body-size"),
        ("status", "status", ("200", "404"), (), "PathPrefix"),
        ("status", "status", ("401", "200"), (), "security policy"),
        (
            "status",
            "status",
            ("404", "200"),
            ("http://shadowdiff-unknown-host.invalid/",),
            "catch-all",
        ),
        (
            "header_missing",
            "strict-transport-security",
            ("max-age=1", None),
            (),
            "ResponseHeaderModifier",
        ),
        ("header_changed", "access-control-allow-origin", ("a", "b"), (), "CORS"),
        ("backend_path", "path", ("/a", "/v1/a"), (), "ReplacePrefixMatch"),
        ("backend_header", "x-forwarded-for", ("1.2.3.4", "10.0.0.1"), (), "trusted hops"),
        ("backend_header", "x_custom", ("(absent)", "1"), (), "underscores"),
        ("tls_protocol", "TLSv1.1", ("accepted", "refused"), (), "TLS policy"),
        ("tls_certificate", "expiry", ("3000-01-01", "2026-12-13"), (), "renew"),
        ("grpc", "status", ("0 OK", "12 UNIMPLEMENTED"), (), "GRPCRoute for this host"),
        ("grpc", "status", ("0 OK", "14 UNAVAILABLE (from HTTP)"), (), "kubernetes.io/h2c"),
        ("grpc", "status", ("0 OK", "7 PERMISSION_DENIED"), (), "backendRefs"),
        ("grpc", "health", ("SERVING", "NOT_SERVING"), (), "pods are ready"),
        ("grpc", "answer", ("3 bytes", "4 bytes"), (), "backendRefs"),
    ],
)
def test_each_migration_mistake_gets_its_fix(
    kind: DifferenceKind,
    field: str,
    example: tuple[str | None, str | None],
    urls: tuple[str, ...],
    expected: str,
) -> None:
    hint = hint_for(kind, field, [example], urls)
    assert hint is not None and expected in hint["fix"], hint
    assert hint["source"].startswith("[")


def test_a_status_change_without_a_known_cause_has_no_hint() -> None:
    assert hint_for("status", "status", [("200", "500")]) is None


@given(
    kind=st.sampled_from(get_args(DifferenceKind)),
    field=st.text(max_size=40),
    before=st.none() | st.text(max_size=40),
    after=st.none() | st.text(max_size=40),
)
def test_any_values_give_a_hint_or_none(
    kind: DifferenceKind, field: str, before: str | None, after: str | None
) -> None:
    hint = hint_for(kind, field, [(before, after)])
    assert hint is None or set(hint) == {"cause", "fix", "source"}
    hint_for(kind, field, [])  # no examples: no crash either
