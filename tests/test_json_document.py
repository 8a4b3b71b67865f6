"""JSON read from answers: nesting is bounded, so any body ends as a comparison."""

from __future__ import annotations

import json

import pytest

from shadowdiff.compare import compare
from shadowdiff.json_document import MAX_DEPTH, NOT_JSON, load_json
from shadowdiff.markers import extract_markers

from .test_compare import REQUEST, answer

JSON = [("Content-Type", "application/json")]


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "body",
    [b"[" * 30_000, nested(30_000), nested(990), b'{"a":' * 990 + b"1" + b"}" * 990],
    ids=["unclosed-30000", "closed-30000", "closed-990", "objects-990"],
)
def test_deeply_nested_json_is_a_body_difference(body: bytes) -> None:
    assert len(body) < 64 * 1024
    found = compare(
        REQUEST, answer(body=b"[]", headers=JSON), answer("candidate", body=body, headers=JSON)
    )
    assert [(d.kind, d.field) for d in found] == [("body", "body")]


def test_deeply_nested_echo_is_not_an_echo() -> None:
    body = b'{"service": ' + nested(30_000) + b"}"
    assert extract_markers((), body) is None


def test_json_at_the_depth_limit_compares_field_by_field() -> None:
    def document(leaf: int) -> bytes:
        return json.dumps(
            {"a": json.loads(b"[" * (MAX_DEPTH - 2) + b"%d" % leaf + b"]" * (MAX_DEPTH - 2))}
        ).encode()

    assert load_json(document(1)) is not NOT_JSON
    found = compare(
        REQUEST,
        answer(body=document(1), headers=JSON),
        answer("candidate", body=document(2), headers=JSON),
    )
    assert [(d.kind, d.baseline, d.candidate) for d in found] == [("json_field", "1", "2")]
    assert load_json(nested(MAX_DEPTH + 1)) is NOT_JSON
