"""Remove a body's Content-Encoding, with bounded work and memory. Pure (no I/O).

An answer is hostile input: `Content-Encoding: gzip, gzip` on a 2 KB body can inflate to a
gigabyte. Each layer is inflated incrementally (zlib's `max_length`) and stops at a limit, so
decoding never holds more than that limit, nor inflates further than DEFLATE itself can.

Two uses:
- `decode`: the comparison decodes a captured body (at most `body_capture` bytes) whole.
- `ContentDigest`: a transport hashes the content of a body longer than `body_capture` as its
  bytes arrive, so that two answers of the same content at other compression levels (or one
  compressed, one not) are seen to be alike past what was captured.

gzip, deflate and br (Brotli, RFC 7932, by Google's `brotli`) are decoded; zstd is not (said
so in the note). `deflate` is the zlib format (RFC 9110 section 8.4.1.2), but some servers send
raw DEFLATE under that name and every browser reads it: a body without a zlib header is read
as raw.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import brotli

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
# Brotli (RFC 7932): every browser asks for it, so every recorded request replays it.
_DECODED: Final = frozenset({*_WBITS, "br"})
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
        if coding not in _DECODED:
            return Decoded(None, f"{coding} is not decoded")
        layer = _Layer(coding, step_bytes=limit + 1)
        pieces: list[bytes] = []
        size = 0
        try:
            for piece in layer.outputs(content):
                pieces.append(piece)
                size += len(piece)
                if size > limit:
                    return Decoded(None, f"decodes to more than {limit} bytes; not compared")
        except _Invalid:
            return Decoded(None, f"invalid {coding} data")
        if not layer.finished:
            return Decoded(None, f"incomplete {coding} data")
        content = b"".join(pieces)
    return Decoded(content)


class _Invalid(Exception):
    """The data is not valid in its coding."""


class _Layer:
    """One coding being removed as its data arrives, a step of output at a time."""

    __slots__ = ("coding", "decoder", "start", "step_bytes")

    def __init__(self, coding: str, step_bytes: int = _STEP_BYTES) -> None:
        self.coding = coding
        self.step_bytes = step_bytes
        # zlib's is made once the first two bytes say which format (see _window_bits).
        self.decoder: Any = brotli.Decompressor() if coding == "br" else None
        self.start = b""

    def outputs(self, data: bytes | bytearray) -> Iterator[bytes]:
        """What `data` (the next bytes of this coding) decodes to, in steps of at most about
        `step_bytes`. Raises `_Invalid`."""
        if self.coding == "br":
            yield from self._brotli(data)
            return
        if self.decoder is None:
            self.start += data
            if len(self.start) < 2:
                return
            self.decoder = zlib.decompressobj(_window_bits(self.coding, self.start))
            data, self.start = self.start, b""
        while data:
            try:
                piece: bytes = self.decoder.decompress(data, self.step_bytes)
            except zlib.error:
                raise _Invalid from None
            yield piece
            data = self.decoder.unconsumed_tail

    def _brotli(self, data: bytes | bytearray) -> Iterator[bytes]:
        # brotli 1.2 bounds a step (`output_buffer_limit`); the rest of what the input makes
        # comes from steps with no input, until one gives nothing and it takes input again.
        try:
            piece: bytes = self.decoder.process(bytes(data), output_buffer_limit=self.step_bytes)
            yield piece
            while piece or not self.decoder.can_accept_more_data():
                piece = self.decoder.process(b"", output_buffer_limit=self.step_bytes)
                yield piece
        except brotli.error:
            raise _Invalid from None

    @property
    def finished(self) -> bool:
        """Whether the coded data has come to its end."""
        if self.decoder is None:
            return False
        return bool(self.decoder.is_finished() if self.coding == "br" else self.decoder.eof)


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
            (f"{coding} is not decoded" for coding in codings if coding not in _DECODED), None
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
                if not layer.finished:
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
        try:
            for content in layer.outputs(data):
                self._feed(index + 1, content)
                if self.note is not None:
                    return
        except _Invalid:
            self.note = f"invalid {layer.coding} data"


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
