"""`--pairs PATH.ndjson`: one JSON line per pair, written as pairs complete, for analysis
after the run. Nothing is kept in memory; the file is bounded by a pair count and a size.

The file is versioned (docs/pairs-format.md): its first line is a header naming the schema
(`shadowdiff.pairs/1`), then one `pair` line per pair, then an `end` line with what was
written and what was left out past the bounds. A reader refuses a schema it does not know.
Several processes (`--workers`) append to the one file: each line is one `write` made under a
lock shared by all of them, which also keeps the bounds exact across processes.

Every line goes through the report's `Redactor`: no secret reaches the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol

from shadowdiff.errors import UsageError
from shadowdiff.observation import Observation
from shadowdiff.pair import Pair
from shadowdiff.redaction import Redactor

PAIRS_SCHEMA: Final = "shadowdiff.pairs/1"
DEFAULT_LIMIT_BYTES: Final = 1 << 30  # 1 GiB unless --pairs-max-bytes says otherwise
# A line past this is refused when read back (a pair's line is a few hundred bytes).
MAX_LINE_BYTES: Final = 1 << 20
# The shared counters: pairs written, bytes written, pairs left out.
_WRITTEN, _BYTES, _DROPPED = 0, 1, 2


class Counters(Protocol):
    """Three integers, in a list or in shared memory (multiprocessing.Array)."""

    def __getitem__(self, index: int, /) -> int: ...

    def __setitem__(self, index: int, value: int, /) -> None: ...


@dataclass(frozen=True, slots=True)
class PairStreamSettings:
    path: str
    limit_pairs: int | None = None  # None: no count bound (the size bound still holds)
    limit_bytes: int = DEFAULT_LIMIT_BYTES


def _side(observation: Observation, pair: Pair) -> dict[str, Any]:
    timings = observation.timings
    total_us = timings.total_ns // 1000
    latency_us = total_us
    if pair.intended_ns is not None:
        latency_us += max(timings.started_ns - pair.intended_ns, 0) // 1000
    # Whole microseconds written as milliseconds: exactly what the report's histograms count.
    return {
        "status": observation.status,
        "error": observation.failure.error_class if observation.failure else None,
        "total_ms": total_us / 1000,
        "latency_ms": latency_us / 1000,
        "connect_ms": None if timings.connect_ns is None else timings.connect_ns // 1000 / 1000,
        "tls_ms": None if timings.tls_ns is None else timings.tls_ns // 1000 / 1000,
        "first_byte_ms": None
        if timings.first_byte_ns is None
        else timings.first_byte_ns // 1000 / 1000,
        "retried": observation.retried,
    }


def pair_line(pair: Pair, shard: str | None) -> dict[str, Any]:
    """One pair as its `pair` line (before redaction)."""
    return {
        "type": "pair",
        "index": pair.index,
        "request": pair.request.name,
        "repetition": pair.repetition,
        "method": pair.request.method,
        "url": pair.request.url,
        "shard": shard,
        # One W3C trace id for both sides' requests: the pair in the APM of either data plane.
        "trace_id": pair.trace_id,
        "measured": pair.measured,
        "baseline": _side(pair.baseline, pair),
        "candidate": _side(pair.candidate, pair),
        "differences": [
            {"kind": d.kind, "field": d.field, "severity": d.severity} for d in pair.differences
        ],
        "noise": None if pair.noise is None else [[d.kind, d.field] for d in pair.noise],
    }


class PairStream:
    """A `PairSink` that appends each pair's line to the file, within the bounds.

    `counters` (pairs, bytes, left out) and `lock` are shared by every process writing the
    file; in one process a list and a null lock do."""

    def __init__(
        self,
        settings: PairStreamSettings,
        redactor: Redactor,
        *,
        shard: str | None = None,
        counters: Counters | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.settings, self.redactor, self.shard = settings, redactor, shard
        self.counters: Counters = counters if counters is not None else [0, 0, 0]
        self.lock: AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self.descriptor = os.open(settings.path, os.O_WRONLY | os.O_APPEND)

    def __call__(self, pair: Pair) -> None:
        record = self.redactor.walk(pair_line(pair, self.shard))
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        limit = self.settings.limit_pairs
        with self.lock:
            counters = self.counters
            if (limit is not None and counters[_WRITTEN] >= limit) or counters[_BYTES] + len(
                line
            ) > self.settings.limit_bytes:
                counters[_DROPPED] += 1
                return
            try:
                _write_all(self.descriptor, line)
            except OSError:
                # A disk that filled up mid-run: the pair is left out, counted as such in
                # the end line, and the run goes on (its report is what matters most).
                counters[_DROPPED] += 1
                return
            counters[_WRITTEN] += 1
            counters[_BYTES] += len(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.descriptor)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def start_pair_stream(settings: PairStreamSettings, header: dict[str, Any]) -> None:
    """Create (or empty) the file and write its header line; `UsageError` naming the flag
    when it cannot be written (before anything is sent)."""
    line = {"type": "header", "schema": PAIRS_SCHEMA, **header}
    try:
        with open(settings.path, "w", encoding="utf-8") as file:
            file.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    except OSError as exc:
        raise UsageError(f"--pairs {settings.path}: cannot write: {exc.strerror or exc}") from None


def end_pair_stream(settings: PairStreamSettings, counters: Counters) -> None:
    """Append the `end` line: what was written and what the bounds left out."""
    line = {
        "type": "end",
        "pairs_written": counters[_WRITTEN],
        "pairs_left_out": counters[_DROPPED],
        "bytes": counters[_BYTES],
    }
    with contextlib.suppress(OSError), open(settings.path, "a", encoding="utf-8") as file:
        file.write(json.dumps(line, separators=(",", ":")) + "\n")


class PairsFileError(ValueError):
    """A pairs file that cannot be read: the message names the file and line."""


def read_pair_lines(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The `pair` lines of a pairs file, one at a time, after checking its header's schema.
    A line that is not a JSON object, or longer than MAX_LINE_BYTES, is a `PairsFileError`."""
    with open(path, "rb") as file:
        for number, raw in enumerate(iter(lambda: file.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_LINE_BYTES:
                raise PairsFileError(f"{path}:{number}: line longer than {MAX_LINE_BYTES} bytes")
            try:
                line = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise PairsFileError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(line, dict):
                raise PairsFileError(f"{path}:{number}: not a JSON object")
            if number == 1:
                if line.get("type") != "header" or line.get("schema") != PAIRS_SCHEMA:
                    raise PairsFileError(
                        f"{path}:1: schema {line.get('schema')!r} is not {PAIRS_SCHEMA!r}"
                    )
                continue
            if line.get("type") == "pair":
                yield line
