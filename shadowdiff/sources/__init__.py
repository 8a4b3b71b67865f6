"""Recorded traffic as request specs: what production clients actually sent, read from
ingress-nginx access logs, HAR files, GoReplay files and shadowdiff's own JSONL, then selected
(`select`). One reader per format, each streaming and pure; `open_source` is the one place that
opens files (plain, .gz, or `-` for standard input)."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from shadowdiff.endpoint import resolved_path
from shadowdiff.sources.goreplay import read_gor
from shadowdiff.sources.har import MAX_HAR_BYTES, read_har
from shadowdiff.sources.jsonl import read_jsonl
from shadowdiff.sources.nginx_log import UPSTREAMINFO, read_json_log, read_log
from shadowdiff.sources.record import Recorded, Skipped
from shadowdiff.sources.select import Selection, SourceSummary, select

if TYPE_CHECKING:
    from shadowdiff.scenario.model import RecordedSource, SourceSelection


class _ByteStream(Protocol):
    """What the readers use of a file: a plain one, a GzipFile (no IO[bytes] to typeshed) and
    standard input alike."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


@contextmanager
def _binary(path: str, base_dir: Path) -> Iterator[_ByteStream]:
    if path == "-":
        yield sys.stdin.buffer
        return
    file = resolved_path(base_dir, path)
    with file.open("rb") as raw:
        if file.suffix != ".gz":
            yield raw
            return
        with gzip.GzipFile(fileobj=raw) as unpacked:
            yield unpacked


# A line longer than this is no log line: it is skipped (counted as malformed) without ever
# being held whole, so a file with no newline cannot take the memory of its size.
MAX_LINE_BYTES: Final = 1024 * 1024
_OVERLONG: Final = b"\x00a line longer than 1 MiB\n"


def _bounded_lines(stream: _ByteStream) -> Iterator[bytes]:
    while line := stream.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield _OVERLONG
            continue
        yield line


def _text_lines(stream: _ByteStream) -> Iterator[str]:
    # Undecodable bytes survive as surrogates; the wire rules refuse them later, counted.
    for line in _bounded_lines(stream):
        yield line.decode("utf-8", "surrogateescape")


def records(source: RecordedSource, base_dir: Path) -> Iterator[Recorded | Skipped]:
    """Every item of one source, as its reader yields them. Raises OSError for a file that
    cannot be opened (the loader turns it into a located problem)."""
    name = source.path
    with _binary(name, base_dir) as stream:
        if source.kind == "har":
            yield from read_har(stream.read(MAX_HAR_BYTES + 1), name)
        elif source.kind == "goreplay":
            yield from read_gor(_bounded_lines(stream), name)
        elif source.kind == "jsonl":
            yield from read_jsonl(_text_lines(stream), name)
        elif source.format == "json":
            yield from read_json_log(_text_lines(stream), name, source.json_keys)
        else:
            log_format = UPSTREAMINFO if source.format == "upstreaminfo" else source.format
            yield from read_log(_text_lines(stream), name, log_format)


def selection_for(source: RecordedSource, settings: SourceSelection) -> Selection:
    share, count = settings.sample_parts
    return Selection(
        hosts_by_upstream=dict(source.hosts),
        default_host=source.default_host,
        default_scheme=source.scheme,
        methods=frozenset(settings.methods) if settings.methods is not None else None,
        hosts=tuple(settings.hosts),
        paths_exclude=tuple(settings.paths_exclude),
        per_route=settings.per_route,
        sample_share=share,
        sample_count=count,
        allow_unsafe=settings.allow_unsafe,
        replay_credentials=settings.replay_credentials,
    )


__all__ = [
    "Recorded",
    "Selection",
    "Skipped",
    "SourceSummary",
    "records",
    "select",
    "selection_for",
]
