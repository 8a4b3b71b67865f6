"""The loopback fuzz server's short profile: generated malformed answers (status lines,
headers, chunk framing, lying lengths, encodings, resets, 1xx, TLS faults) replayed through
both transports; each pair ends as a status or a documented failure class, with no traceback,
no hang and nothing reported by the event loop. `./dev fuzz` runs the long profile."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings

from .fuzz.answers import Answer, answers
from .fuzz.server import Harness, harness

JSON_200 = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def with_length(head: bytes, body: bytes) -> bytes:
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


# Answers that once ended a run with a traceback, or let a head grow without bound.
DEEP_JSON = Answer(
    "none", with_length(JSON_200, b"[]"), None, False, "close", with_length(JSON_200, b"[" * 30_000)
)
GZIP_BOMB = Answer(
    "none",
    with_length(JSON_200, b"[]"),
    None,
    False,
    "close",
    with_length(
        JSON_200 + b"Content-Encoding: gzip, gzip\r\n", gzip.compress(gzip.compress(bytes(2**26)))
    ),
)
LONG_LINE = Answer(
    "none",
    with_length(JSON_200 + b"X-Big: " + b"a" * 200_000 + b"\r\n", b"[]"),
    None,
    False,
    "close",
)
MANY_HEADERS = Answer(
    "none",
    with_length(JSON_200 + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)), b"[]"),
    None,
    False,
    "close",
)


@pytest.fixture(scope="module")
def fuzz_harness() -> Iterator[Harness]:
    with harness() as running:
        yield running


@settings(
    max_examples=40,
    derandomize=True,  # the same answers on every run: the default suite must not flake
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(answer=answers())
@example(answer=DEEP_JSON)
@example(answer=GZIP_BOMB)
@example(answer=LONG_LINE)
@example(answer=MANY_HEADERS)
def test_generated_answers_end_as_a_status_or_a_failure_class(
    fuzz_harness: Harness, answer: Answer
) -> None:
    result = fuzz_harness.check(answer)
    assert result.ok, result
    if answer in (LONG_LINE, MANY_HEADERS):
        assert result.outcomes == [
            ("lean", "malformed_response"),
            ("aiohttp", "malformed_response"),
        ]


@pytest.mark.parametrize(
    ("answer", "lean", "aiohttp"),
    [
        (
            Answer("none", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", None, False, "close"),
            "200",
            "200",
        ),
        (
            Answer("ok", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", None, True, "close"),
            "200",
            "200",
        ),
        (Answer("reset", b"", None, False, "close"), "reset", "reset"),
        (Answer("alert", b"", None, False, "close"), "tls_handshake", "tls_handshake"),
        (
            Answer("none", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", None, False, "hold"),
            "200",
            "200",
        ),
        (
            Answer("none", b"HTTP/1.1 200 OK\r\n\r\nuntil", None, False, "hold"),
            "timeout",
            "timeout",
        ),
    ],
    ids=[
        "healthy",
        "healthy-tls",
        "tls-reset",
        "tls-alert",
        "held-open-after-answer",
        "held-open-mid-body",
    ],
)
def test_fuzz_harness_sees_what_the_server_did(
    fuzz_harness: Harness, answer: Answer, lean: str, aiohttp: str
) -> None:
    # The harness itself must be able to fail: known answers give known outcomes.
    result = fuzz_harness.check(answer)
    assert result.ok, result
    assert result.outcomes == [("lean", lean), ("aiohttp", aiohttp)]
