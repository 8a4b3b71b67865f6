"""Remove a body's Content-Encoding, with bounded work and memory. Pure (no I/O).

An answer is hostile input: `Content-Encoding: gzip, gzip` on a 2 KB body can inflate to a
gigabyte. Each layer is inflated incrementally (zlib's `max_length`) and stops at a limit, so
decoding never holds more than that limit, nor inflates further than DEFLATE itself can.

Two uses:
- `decode`: the comparison decodes a captured body (at most `body_capture` bytes) whole.
- `ContentDigest`: a transport hashes the content of a body longer than `body_capture` as its
  bytes arrive, so that two answers of the same content at other compression levels (or one
  compressed, one not) are seen to be alike past what was captured.

`deflate` is the zlib format (RFC 9110 section 8.4.1.2), but some servers send raw DEFLATE
under that name and every browser reads it: a body without a zlib header is read as raw.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import Any, Final

# DEFLATE cannot compress better than about 1032:1 (zlib's technical notes), and stacking
# layers adds nothing on real content: a body decoding to more than this many times its
# encoded size is a decompression bomb.
MAX_RATIO: Final = 1100
# The content `ContentDigest` hashes at most: any page, bundle or API answer, while a bomb
# costs at most this much inflating and hashing.
MAX_STREAMED_CONTENT_BYTES: Final = 64 << 20
# zlib window bits per coding: gzip wrapper, zlib wrapper (RFC 9110 section 8.4.1.2).
_WBITS: Final = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}
_RAW_DEFLATE: Final = -zlib.MAX_WBITS
# Output asked of zlib at a time while streaming: memory per layer stays at this.
_STEP_BYTES: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Decoded:
    """The decoded content, or None with the reason it is not compared as content."""

    content: bytes | None
    note: str | None = None


def content_codings(headers: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> list[str]:
    """The codings applied, in the order they were applied (identity left out)."""
    codings = [
        coding.strip().lower()
        for name, value in headers
        if name.lower() == "content-encoding"
        for coding in value.split(",")
    ]
    return [c for c in codings if c and c != "identity"]


def _window_bits(coding: str, start: bytes) -> int:
    """zlib's window bits for `coding`, given the first two bytes of its data."""
    # A zlib header: compression method 8, and the two bytes a multiple of 31 (RFC 1950).
    zlib_header = len(start) >= 2 and start[0] & 0x0F == 8 and (start[0] << 8 | start[1]) % 31 == 0
    return _RAW_DEFLATE if coding == "deflate" and not zlib_header else _WBITS[coding]


def decode(body: bytes, codings: list[str], limit_bytes: int) -> Decoded:
    """`body` with `codings` removed, last applied first; at most `limit_bytes` of output
    (and at most MAX_RATIO times the input) from any layer."""
    limit = min(limit_bytes, MAX_RATIO * max(len(body), 1))
    content = body
    for coding in reversed(codings):
        if coding not in _WBITS:
            return Decoded(None, f"{coding} is not decoded")
        inflater = zlib.decompressobj(_window_bits(coding, content[:2]))
        try:
            content = inflater.decompress(content, limit + 1)
        except zlib.error:
            return Decoded(None, f"invalid {coding} data")
        if len(content) > limit or inflater.unconsumed_tail:
            return Decoded(None, f"decodes to more than {limit} bytes; not compared")
        if not inflater.eof:
            return Decoded(None, f"incomplete {coding} data")
    return Decoded(content)


class _Layer:
    """One coding being removed as its data arrives."""

    __slots__ = ("coding", "inflater", "start")

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.inflater: Any = None  # made once the first two bytes say which format
        self.start = b""


class ContentDigest:
    """The SHA-256 of a body's content with its Content-Encoding removed, fed the body's bytes
    in order as they arrive (`update`). `hexdigest()` is None, with `note` saying why, for a
    coding not decoded here, invalid or incomplete data, or content over
    MAX_STREAMED_CONTENT_BYTES or MAX_RATIO times the body."""

    __slots__ = ("_content_bytes", "_digest", "_encoded_bytes", "_layers", "note")

    def __init__(self, codings: list[str]) -> None:
        self._digest = hashlib.sha256()
        self._encoded_bytes = 0
        self._content_bytes = 0
        self.note: str | None = next(
            (f"{coding} is not decoded" for coding in codings if coding not in _WBITS), None
        )
        self._layers = [] if self.note else [_Layer(coding) for coding in reversed(codings)]

    @classmethod
    def of(cls, headers: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> ContentDigest:
        """The digest for an answer with these headers: one that hashes nothing when no
        Content-Encoding is named (the body's own digest is its content's)."""
        codings = content_codings(headers)
        return cls(codings) if codings else _NOT_ENCODED

    def update(self, data: bytes | bytearray) -> None:
        if self.note is not None:
            return
        self._encoded_bytes += len(data)
        self._feed(0, data)

    def hexdigest(self) -> str | None:
        if self.note is None:
            for layer in self._layers:
                if layer.inflater is None or not layer.inflater.eof:
                    self.note = f"incomplete {layer.coding} data"
                    break
        return None if self.note is not None else self._digest.hexdigest()

    def _feed(self, index: int, data: bytes | bytearray) -> None:
        if index == len(self._layers):
            self._content_bytes += len(data)
            if self._content_bytes > MAX_STREAMED_CONTENT_BYTES:
                self.note = f"decodes to more than {MAX_STREAMED_CONTENT_BYTES} bytes; not compared"
            elif self._content_bytes > MAX_RATIO * max(self._encoded_bytes, 64):
                self.note = f"decodes to more than {MAX_RATIO} times its size; not compared"
            else:
                self._digest.update(data)
            return
        layer = self._layers[index]
        if layer.inflater is None:
            layer.start += data
            if len(layer.start) < 2:
                return
            layer.inflater = zlib.decompressobj(_window_bits(layer.coding, layer.start))
            data, layer.start = layer.start, b""
        while data and self.note is None:
            try:
                content = layer.inflater.decompress(data, _STEP_BYTES)
            except zlib.error:
                self.note = f"invalid {layer.coding} data"
                return
            self._feed(index + 1, content)
            data = layer.inflater.unconsumed_tail


def past_capture(
    content: ContentDigest | None,
    headers: list[tuple[str, str]],
    captured: bytearray,
    data: bytes,
    room_bytes: int,
) -> ContentDigest:
    """Take `data`, which does not fit in the `room_bytes` left of `captured` (the body kept
    for comparison): the room is filled, and the content's digest (begun here, with what was
    captured before, on the first call) is given `data`. Returns that digest."""
    if content is None:
        content = ContentDigest.of(headers)
        content.update(captured)
    content.update(data)
    if room_bytes > 0:
        captured += data[:room_bytes]
    return content


# Shared: it never changes, its note being set from the start.
_NOT_ENCODED: Final = ContentDigest([])
_NOT_ENCODED.note = "no content coding"
