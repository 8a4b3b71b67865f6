"""Remove a body's Content-Encoding for comparison, with bounded work and memory. Pure.

An answer is hostile input: `Content-Encoding: gzip, gzip` on a 2 KB body can inflate to a
gigabyte. Each layer is inflated incrementally (zlib's `max_length`) and stops at the limit, so
decoding never holds more than `limit_bytes` (the scenario's `body_capture`) per layer, nor
inflates further than DEFLATE itself can.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

# DEFLATE cannot compress better than about 1032:1 (zlib's technical notes), and stacking
# layers adds nothing on real content: a body decoding to more than this many times its
# encoded size is a decompression bomb.
MAX_RATIO: Final = 1100
# zlib window bits per coding: gzip wrapper, zlib wrapper (RFC 9110 section 8.4.1.2).
_WBITS: Final = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}


@dataclass(frozen=True, slots=True)
class Decoded:
    """The decoded content, or None with the reason it is not compared as content."""

    content: bytes | None
    note: str | None = None


def content_codings(headers: tuple[tuple[str, str], ...]) -> list[str]:
    """The codings applied, in the order they were applied (identity left out)."""
    codings = [
        coding.strip().lower()
        for name, value in headers
        if name.lower() == "content-encoding"
        for coding in value.split(",")
    ]
    return [c for c in codings if c and c != "identity"]


def decode(body: bytes, codings: list[str], limit_bytes: int) -> Decoded:
    """`body` with `codings` removed, last applied first; at most `limit_bytes` of output
    (and at most MAX_RATIO times the input) from any layer."""
    limit = min(limit_bytes, MAX_RATIO * max(len(body), 1))
    content = body
    for coding in reversed(codings):
        wbits = _WBITS.get(coding)
        if wbits is None:
            return Decoded(None, f"{coding} is not decoded")
        inflater = zlib.decompressobj(wbits)
        try:
            content = inflater.decompress(content, limit + 1)
        except zlib.error:
            return Decoded(None, f"invalid {coding} data")
        if len(content) > limit or inflater.unconsumed_tail:
            return Decoded(None, f"decodes to more than {limit} bytes; not compared")
        if not inflater.eof:
            return Decoded(None, f"incomplete {coding} data")
    return Decoded(content)
