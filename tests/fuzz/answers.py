"""Generated answers for the fuzz server: mostly HTTP/1.1 answers wrong in one or two ways
(status lines, headers, chunk framing, lying and duplicate lengths, encodings and bombs, deep
JSON, 1xx), some random bytes, cut short, reset or held open, and TLS handshakes that go wrong.
Pure hypothesis strategies; the server is `tests.fuzz.server`."""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from typing import Literal

from hypothesis import strategies as st

TlsFault = Literal["none", "ok", "reset", "garbage", "alert"]
Ending = Literal["close", "reset", "hold"]


@dataclass(frozen=True)
class Answer:
    """What the server does with one connection."""

    tls: TlsFault  # none: plain HTTP; ok: a good handshake; else how the handshake goes wrong
    data: bytes  # written after the request head is read (or instead of a TLS handshake)
    cut: int | None  # write only data[:cut]
    pause: bool  # write in two parts with a pause between, so the client reads in pieces
    ending: Ending  # hold: keep the connection open until the client gives up
    # What the candidate's server writes instead of `data`; None: the same as the baseline's.
    candidate: bytes | None = None
    upload: bool = False  # the request is a POST with a 1 MiB body (a GET otherwise)

    def data_for(self, side: str) -> bytes:
        return self.candidate if side == "candidate" and self.candidate is not None else self.data

    def __repr__(self) -> str:
        def shown(data: bytes | None) -> str:
            if data is None:
                return "the same"
            return f"{len(data)} bytes {data[:300]!r}{'...' if len(data) > 300 else ''}"

        return (
            f"Answer(tls={self.tls!r}, baseline {shown(self.data)}, candidate "
            f"{shown(self.candidate)}, cut={self.cut}, pause={self.pause}, ending={self.ending!r}, "
            f"upload={self.upload})"
        )


@functools.cache
def _gzip_bomb() -> bytes:
    """`Content-Encoding: gzip, gzip` content: about 200 bytes that inflate to 64 MiB."""
    return gzip.compress(gzip.compress(bytes(64 * 2**20), 9), 9)


def _join(parts: list[bytes]) -> bytes:
    return b"".join(parts)


_STATUS_LINE = st.one_of(
    st.just(b"HTTP/1.1 200 OK\r\n"),
    st.sampled_from([b"HTTP/1.1 404 Not Found\r\n", b"HTTP/1.0 301 Moved\r\n"]),
    st.builds(
        lambda version, code, reason, end: version + b" " + code + b" " + reason + end,
        st.sampled_from(
            [
                b"HTTP/1.1",
                b"HTTP/1.0",
                b"HTTP/2",
                b"HTTP/1.1x",
                b"http/1.1",
                b"HTTP/9.9",
                b"",
                b"ICY",
            ]
        ),
        st.one_of(
            st.sampled_from([b"200", b"204", b"304", b"101", b"103", b"199", b"999", b"0200"]),
            st.integers(0, 1200).map(lambda n: b"%d" % n),
            st.binary(max_size=4),
        ),
        st.one_of(
            st.just(b"OK"),
            st.binary(max_size=20),
            st.integers(0, 200_000).map(lambda n: b"R" * n),
        ),
        st.sampled_from([b"\r\n", b"\n", b"\r", b""]),
    ),
)
_HEADER_NAME = st.one_of(
    st.sampled_from(
        [
            b"Content-Type",
            b"Content-Length",
            b"Transfer-Encoding",
            b"Content-Encoding",
            b"Set-Cookie",
            b"Location",
            b"Connection",
            b"Strict-Transport-Security",
            b"X-Request-ID",
            b"Server",
            b" Leading-Space",
            b"Bad Name",
            b"",
            b"X-\x00Null",
        ]
    ),
    st.binary(min_size=1, max_size=12),
)
_HEADER_VALUE = st.one_of(
    st.sampled_from(
        [
            b"chunked",
            b"gzip",
            b"gzip, gzip",
            b"deflate",
            b"br",
            b"identity",
            b"chunked, gzip",
            b"close",
            b"keep-alive",
            b"0",
            b"-1",
            b"10",
            b"99999999999999999999",
            b"application/json",
            b"//evil.example",
            b"sid=1; Secure; HttpOnly",
        ]
    ),
    st.binary(max_size=40),
)
_VALID_HEADER_LINE = st.sampled_from(
    [
        b"Content-Type: application/json\r\n",
        b"Content-Type: text/html; charset=utf-8\r\n",
        b"Set-Cookie: sid=1; Path=/; Secure; HttpOnly\r\n",
        b"Strict-Transport-Security: max-age=31536000\r\n",
        b"Location: /elsewhere\r\n",
        b"Connection: close\r\n",
        b"Connection: keep-alive\r\n",
        b"Server: fuzz\r\n",
        b"X-Request-ID: 4bf92f3577b34da6\r\n",
        b"Content-Security-Policy: default-src 'self'\r\n",
    ]
)
_HEADER_LINE = st.builds(
    lambda name, separator, value: name + separator + value + b"\r\n",
    _HEADER_NAME,
    st.sampled_from([b": ", b":", b" : ", b":\r\n "]),  # the last one is an obs-fold
    _HEADER_VALUE,
)
_BULK_HEADERS = st.one_of(
    st.just(b""),
    st.just(b""),
    st.just(b""),
    st.builds(
        lambda count, size: b"".join(b"X-Fill-%d: %s\r\n" % (i, b"v" * size) for i in range(count)),
        st.integers(0, 1200),
        st.integers(0, 600),
    ),
    st.integers(50_000, 300_000).map(lambda n: b"X-Big: " + b"a" * n + b"\r\n"),
)
_CONTENT = st.one_of(
    st.binary(max_size=512),
    st.just(b'{"a": [1, 2, {"b": null}], "service": "x"}'),
    st.integers(50, 40_000).map(lambda depth: b"[" * depth),
    st.integers(50, 20_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.binary(max_size=256).map(gzip.compress),
    st.just(b"bomb").map(lambda _: _gzip_bomb()),
)
_ENCODING = st.one_of(
    st.just(b""),
    st.sampled_from([b"gzip", b"gzip, gzip", b"deflate", b"br", b"x-unknown"]).map(
        lambda coding: b"Content-Encoding: " + coding + b"\r\n"
    ),
)


def _chunked(content: bytes, sizes: list[int], mutation: str) -> bytes:
    """`content` in chunks of `sizes`, then a framing `mutation`."""
    chunks, position = [], 0
    for size in [*sizes, len(content)]:
        piece = content[position : position + max(size, 1)]
        if not piece:
            break
        chunks.append(piece)
        position += len(piece)
    framed = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in chunks]
    end = b"0\r\n\r\n"
    if mutation == "wrong-size" and framed:
        framed[0] = b"%x\r\n%s\r\n" % (len(chunks[0]) + 3, chunks[0])
    elif mutation == "bad-hex":
        framed.insert(0, b"zz\r\nxx\r\n")
    elif mutation == "no-last-chunk":
        end = b""
    elif mutation == "extension":
        end = b"0;name=value\r\n\r\n"
    elif mutation == "trailers":
        end = b"0\r\nX-Trailer: t\r\n\r\n"
    elif mutation == "lf-only":
        framed = [f.replace(b"\r\n", b"\n") for f in framed]
    elif mutation == "huge-size":
        framed.insert(0, b"ffffffffffffffffff\r\n")
    return b"".join(framed) + end


_FRAMED_BODY = st.one_of(
    st.builds(lambda c: b"Content-Length: %d\r\n\r\n%s" % (len(c), c), _CONTENT),
    st.builds(lambda c: b"Content-Length: %d\r\n\r\n%s" % (len(c), c), _CONTENT),
    st.builds(
        lambda c, lie: b"Content-Length: %d\r\n\r\n%s" % (len(c) + lie, c),
        _CONTENT,
        st.integers(-20, 20),
    ),
    st.builds(
        lambda c, sizes, mutation: (
            b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(c, sizes, mutation)
        ),
        _CONTENT,
        st.lists(st.integers(1, 300), max_size=4),
        st.sampled_from(
            [
                "valid",
                "valid",
                "wrong-size",
                "bad-hex",
                "no-last-chunk",
                "extension",
                "trailers",
                "lf-only",
                "huge-size",
            ]
        ),
    ),
    st.builds(
        lambda c: (
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(c, [], "valid")
        ),
        _CONTENT,
    ),
    st.builds(lambda c: b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n" + c, _CONTENT),
    st.builds(lambda c: b"\r\n" + c, _CONTENT),  # delimited by the close
)
_INTERIM = st.one_of(
    st.just(b""),
    st.just(b""),
    st.just(b"HTTP/1.1 100 Continue\r\n\r\n"),
    st.just(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"),
)
_HTTP_ANSWER = st.builds(
    lambda interim, status, headers, bulk, encoding, body: _join(
        [interim, status, *headers, bulk, encoding, body]
    ),
    _INTERIM,
    _STATUS_LINE,
    st.one_of(
        st.lists(_VALID_HEADER_LINE, max_size=6),
        st.lists(_VALID_HEADER_LINE, max_size=6),
        st.lists(st.one_of(_VALID_HEADER_LINE, _HEADER_LINE), max_size=6),
    ),
    _BULK_HEADERS,
    _ENCODING,
    _FRAMED_BODY,
)


def answers() -> st.SearchStrategy[Answer]:
    """Mostly HTTP answers that are wrong in one or two ways, some random bytes, TLS faults."""
    data = st.one_of(*[_HTTP_ANSWER] * 5, st.binary(max_size=200))
    # Different answers on the two sides reach the comparison (bodies, headers, statuses).
    healthy = st.builds(
        lambda content: (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(content), content)
        ),
        _CONTENT,
    )
    return st.builds(
        Answer,
        tls=st.sampled_from(["none", "none", "none", "ok", "ok", "reset", "garbage", "alert"]),
        data=data,
        cut=st.one_of(st.none(), st.none(), st.none(), st.integers(0, 4000)),
        pause=st.booleans(),
        # Holding costs TOTAL_S per answer: rare enough to keep the long profile short.
        ending=st.sampled_from(["close"] * 12 + ["reset"] * 4 + ["hold"]),
        candidate=st.one_of(st.none(), st.none(), healthy, data),
        upload=st.sampled_from([False] * 4 + [True]),
    )
