"""Decoding a Content-Encoding for comparison: bounded by body_capture and a ratio limit."""

from __future__ import annotations

import gzip
import hashlib
import tracemalloc
import zlib

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.compare import compare
from shadowdiff.compare.options import CompareOptions
from shadowdiff.content_coding import MAX_RATIO, ContentDigest, decode

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
        (b"\x1b\x00", ["br"], 100, None, "incomplete br data"),
        (b"not brotli", ["br"], 100, None, "invalid br data"),
        (b"\x28\xb5\x2f\xfd", ["zstd"], 100, None, "zstd is not decoded"),
        # The ratio limit binds before body_capture does when body_capture is large.
        (
            gzip.compress(gzip.compress(bytes(16 * 2**20))),
            ["gzip", "gzip"],
            2**30,
            None,
            "more than",
        ),
    ],
    ids=[
        "at-limit",
        "over-limit",
        "deflate",
        "gzip-gzip",
        "truncated",
        "invalid",
        "br-incomplete",
        "br-invalid",
        "zstd",
        "ratio",
    ],
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


_TEXT = b"".join(b"line %d of a page that compresses well\n" % n for n in range(40_000))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 70_000), max_size=12), st.sampled_from([1, 6, 9]))
def test_the_content_digest_is_the_contents_whatever_the_reads_and_the_level(
    cuts: list[int], level: int
) -> None:
    body = gzip.compress(_TEXT, level)
    digest, at = ContentDigest(["gzip"]), 0
    for cut in sorted(cuts):
        digest.update(body[at:cut])
        at = max(at, cut)
    digest.update(body[at:])
    assert digest.hexdigest() == hashlib.sha256(_TEXT).hexdigest()


@pytest.mark.parametrize(
    ("body", "codings", "note"),
    [
        (gzip.compress(_TEXT)[:-100], ["gzip"], "incomplete gzip data"),
        (b"\x1f\x8b not gzip at all", ["gzip"], "invalid gzip data"),
        (b"\x28\xb5\x2f\xfd", ["zstd"], "zstd is not decoded"),
        (b"not brotli", ["br"], "invalid br data"),
        (b"", ["gzip"], "incomplete gzip data"),
    ],
)
def test_a_content_digest_that_cannot_be_made_says_why(
    body: bytes, codings: list[str], note: str
) -> None:
    digest = ContentDigest(codings)
    digest.update(body)
    assert digest.hexdigest() is None and digest.note is not None and note in digest.note


def test_a_streamed_bomb_stops_at_the_cap_in_bounded_memory() -> None:
    # 128 MiB of zeros in about 128 KB of gzip: decoded and hashed up to the cap, then let go.
    bomb = gzip_zeros(2**27)
    digest = ContentDigest(["gzip"])
    tracemalloc.start()
    try:
        for at in range(0, len(bomb), 65_536):
            digest.update(bomb[at : at + 65_536])
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() is None and "not compared" in (digest.note or "")
    assert peak_bytes < 8 * 2**20


@pytest.mark.parametrize("split", [1, 2, 1000])
def test_raw_deflate_under_the_name_deflate_is_read_as_browsers_read_it(split: int) -> None:
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = raw.compress(b"hello " * 100) + raw.flush()
    assert decode(body, ["deflate"], 10_000).content == b"hello " * 100
    digest = ContentDigest(["deflate"])
    digest.update(body[:split])
    digest.update(body[split:])
    assert digest.hexdigest() == hashlib.sha256(b"hello " * 100).hexdigest()


def test_brotli_bodies_compare_by_their_content() -> None:
    content = b'{"items": [1, 2, 3]}'
    headers = [("Content-Type", "application/json"), ("Content-Encoding", "br")]
    same = answer("candidate", headers=headers, body=brotli.compress(content, quality=11))
    baseline = answer(headers=headers, body=brotli.compress(content, quality=1))
    assert compare(REQUEST, baseline, same) == []
    other = answer("candidate", headers=headers, body=brotli.compress(b'{"items": [1, 2]}'))
    assert {(d.kind, d.field) for d in compare(REQUEST, baseline, other)} == {
        ("json_field", "$.items")
    }
    bomb = brotli.compress(bytes(64 * 2**20))
    assert decode(bomb, ["br"], 65_536).note == "decodes to more than 65536 bytes; not compared"


@pytest.mark.parametrize("split", [1, 7, 4096])
def test_a_brotli_body_streamed_in_any_reads_hashes_to_its_content(split: int) -> None:
    page = b"".join(b"line %d of a page\n" % n for n in range(20_000))
    body = brotli.compress(page, quality=5)
    digest = ContentDigest(["br"])
    for at in range(0, len(body), split):
        digest.update(body[at : at + split])
    assert digest.hexdigest() == hashlib.sha256(page).hexdigest()
