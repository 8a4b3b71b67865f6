"""Decoding a Content-Encoding for comparison: bounded by body_capture and a ratio limit."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from shadowdiff.compare import compare
from shadowdiff.compare.content_coding import MAX_RATIO, decode
from shadowdiff.compare.options import CompareOptions

from .test_compare import REQUEST, answer


def gzip_zeros(size_bytes: int) -> bytes:
    """gzip of `size_bytes` zero bytes, compressed in steps so the test holds little memory."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(2**20)
    parts = [deflater.compress(chunk) for _ in range(size_bytes // len(chunk))]
    return b"".join([*parts, deflater.flush()])


@pytest.fixture(scope="module")
def double_gzip_bomb() -> bytes:
    """`Content-Encoding: gzip, gzip`: a few hundred bytes that inflate to 256 MiB."""
    return gzip.compress(gzip_zeros(256 * 2**20), 9)


def test_gzip_bomb_is_a_body_difference_decoded_within_body_capture(
    double_gzip_bomb: bytes,
) -> None:
    baseline = answer(body=b'{"ok": true}', headers=[("Content-Type", "application/json")])
    candidate = answer(
        "candidate",
        body=double_gzip_bomb,
        headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip, gzip")],
    )
    assert len(double_gzip_bomb) < 2048
    tracemalloc.start()
    try:
        found = compare(
            REQUEST, baseline, candidate, CompareOptions(decoded_body_limit_bytes=65_536)
        )
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 4 * 2**20
    assert {(d.kind, d.field) for d in found} == {
        ("content_encoding", "content-encoding"),
        ("body", "body"),
    }
    body = next(d for d in found if d.kind == "body")
    assert body.candidate is not None and "not compared" in body.candidate


def test_same_content_with_and_without_gzip_compares_alike() -> None:
    content = b'{"items": [1, 2, 3]}' * 100
    baseline = answer(body=content)
    candidate = answer(
        "candidate", body=gzip.compress(content), headers=[("Content-Encoding", "gzip")]
    )
    assert {(d.kind, d.field) for d in compare(REQUEST, baseline, candidate)} == {
        ("content_encoding", "content-encoding")
    }


@pytest.mark.parametrize(
    ("body", "codings", "limit", "content", "note"),
    [
        (gzip.compress(b"x" * 1000), ["gzip"], 1000, b"x" * 1000, None),
        (gzip.compress(b"x" * 1001), ["gzip"], 1000, None, "decodes to more than 1000 bytes"),
        (zlib.compress(b"abc"), ["deflate"], 100, b"abc", None),
        (gzip.compress(gzip.compress(b"abc")), ["gzip", "gzip"], 100, b"abc", None),
        (gzip.compress(b"abc")[:-6], ["gzip"], 100, None, "incomplete gzip data"),
        (b"not gzip", ["gzip"], 100, None, "invalid gzip data"),
        (b"\x1b\x00", ["br"], 100, None, "br is not decoded"),
        # The ratio limit binds before body_capture does when body_capture is large.
        (
            gzip.compress(gzip.compress(bytes(16 * 2**20))),
            ["gzip", "gzip"],
            2**30,
            None,
            "more than",
        ),
    ],
    ids=["at-limit", "over-limit", "deflate", "gzip-gzip", "truncated", "invalid", "br", "ratio"],
)
def test_decode_is_bounded_and_says_why_not(
    body: bytes, codings: list[str], limit: int, content: bytes | None, note: str | None
) -> None:
    decoded = decode(body, codings, limit)
    assert decoded.content == content
    assert (decoded.note is None) if note is None else (note in (decoded.note or ""))


def test_ratio_limit_leaves_real_compressed_content_alone() -> None:
    # Highly repetitive JSON compresses about 200:1, well under what DEFLATE allows.
    content = b'{"id": 1, "name": "item", "tags": []},' * 5000
    assert decode(gzip.compress(content, 9), ["gzip"], 2**30).content == content
    assert len(content) / len(gzip.compress(content, 9)) < MAX_RATIO
