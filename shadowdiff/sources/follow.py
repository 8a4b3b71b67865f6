"""Following a growing log, as `tail -F` does: the lines written after following began, across
rotations and truncations, read through the same readers and `select` as a log read whole.

Blocking and synchronous, with no asyncio: the replay runs `FollowedLog.feed` in a thread of
its own (shadowdiff/replay/stream.py). Waiting for the log to grow goes through a `wait`
callable and every loop asks `keep_going()`, so a stop ends the reading at once. Memory does
not grow with the log: one line (at most `MAX_LINE_BYTES`) is held, plus the counts.

What can be followed: one `ingress_nginx_log` (any format) or `jsonl` source, a regular file
that exists when following begins. Not a HAR file (one JSON document, never complete while it
grows), not GoReplay (records span several lines), not `-` (a pipe cannot be rotated or
truncated, and a read from it cannot be interrupted by a stop), not `.gz`.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from shadowdiff.endpoint import resolved_path
from shadowdiff.sources import _OVERLONG, MAX_LINE_BYTES
from shadowdiff.sources.jsonl import read_jsonl
from shadowdiff.sources.nginx_log import UPSTREAMINFO, read_json_log, read_log
from shadowdiff.sources.record import Recorded, Skipped
from shadowdiff.sources.select import Selection, SourceSummary, select
from shadowdiff.spec import RequestSpec

if TYPE_CHECKING:
    from shadowdiff.scenario.model import RecordedSource
    from shadowdiff.sources.record import SkipReason

# How long to wait before looking again at a log that has not grown: `tail -F` looks every
# second; a fifth keeps a followed request within a fifth of a second of production.
POLL_S: Final = 0.2
FOLLOWED_KINDS: Final = ("ingress_nginx_log", "jsonl")
# The counts are published for other threads this often (in items) and whenever idle.
_PUBLISH_EVERY: Final = 1024


def follow_problems(recorded: Sequence[RecordedSource], base_dir: Path) -> list[str]:
    """Why these sources cannot be followed (one line each), or nothing when they can."""
    if len(recorded) != 1:
        found = f"{len(recorded)} sources" if recorded else "no `sources:` section"
        return [f"--follow follows exactly one recorded source; the scenario has {found}"]
    source = recorded[0]
    if source.kind not in FOLLOWED_KINDS:
        why = (
            "a HAR file is one JSON document, complete only once written"
            if source.kind == "har"
            else "a GoReplay record spans several lines"
        )
        return [
            f"--follow reads a growing ingress_nginx_log or jsonl file, not {source.kind}: {why}"
        ]
    if source.path == "-":
        return [
            "--follow needs a file, not standard input (-): write the stream to a file "
            "(kubectl logs -f ... > access.log) and follow that"
        ]
    if source.path.endswith(".gz"):
        return [f"--follow cannot follow {source.path}: a compressed log does not grow"]
    path = resolved_path(base_dir, source.path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return [f"--follow cannot follow {source.path}: {exc.strerror or exc}"]
    if not stat.S_ISREG(mode):
        return [f"--follow cannot follow {source.path}: not a regular file"]
    if not os.access(path, os.R_OK):
        return [f"--follow cannot follow {source.path}: not readable"]
    return []


def _open_regular(path: Path) -> IO[bytes] | None:
    """The file at `path` if it is a regular file that can be read now, else None (rotated
    away and not created again yet, or replaced by something that is no log)."""
    try:
        file = path.open("rb")
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.close()
        return None
    return file


def _replaced(path: Path, file: IO[bytes]) -> bool:
    """Whether `path` no longer names the open file: renamed away (rotated), removed, or
    another file created in its place."""
    try:
        now = os.stat(path)
    except OSError:
        return True
    opened = os.fstat(file.fileno())
    return (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino)


def follow_lines(
    path: Path,
    keep_going: Callable[[], bool],
    *,
    poll_s: float = POLL_S,
    wait: Callable[[float], object] = time.sleep,
    from_start: bool = False,
) -> Iterator[bytes]:
    """Each complete line written to `path` from now on (from its start with `from_start`),
    as `tail -F` follows a file name, until `keep_going()` says no.

    - A line is yielded once its newline is written; a partial line waits for the rest.
    - Rotation (the name now names another file, or none): the old file is read to its end
      (a last line without newline included), then the new file from its start, once it exists.
    - Truncation (the file is shorter than what was read, as logrotate's `copytruncate`
      leaves it): read again from its start. A file truncated and written past the old size
      between two looks cannot be told from one that grew; `tail -F` has the same blind spot.
    - A line longer than `MAX_LINE_BYTES` is dropped as it is read, never held whole, and
      stands as one marker line that no reader accepts (counted as malformed).
    """
    file = None
    skip_existing = not from_start  # the first file only: every later one is new
    pending = b""  # the start of a line whose newline is not written yet
    overlong = False  # inside an overlong line: its bytes are dropped up to its newline
    rotated = False  # `path` names another file: finish this one, then switch
    try:
        while keep_going():
            if file is None:
                file = _open_regular(path)
                if file is None:
                    skip_existing = False  # created after following began: all of it is new
                    wait(poll_s)
                    continue
                if skip_existing:
                    file.seek(0, os.SEEK_END)
                    skip_existing = False
            chunk = file.readline(MAX_LINE_BYTES + 1 - len(pending))
            if chunk:
                if overlong:
                    overlong = not chunk.endswith(b"\n")
                    continue
                line = pending + chunk
                if line.endswith(b"\n"):
                    pending = b""
                    yield line
                elif len(line) > MAX_LINE_BYTES:
                    pending, overlong = b"", True
                    yield _OVERLONG
                else:
                    pending = line
                continue
            # At the end of what has been written so far.
            if rotated:
                if pending:
                    yield pending  # the old file's last line: nothing will complete it now
                file.close()
                file, pending, overlong, rotated = None, b"", False, False
                continue
            if _replaced(path, file):
                rotated = True  # lines written since the last read are read first
                continue
            if os.fstat(file.fileno()).st_size < file.tell():
                file.seek(0)
                pending, overlong = b"", False
                continue
            wait(poll_s)
    finally:
        if file is not None:
            file.close()


def followed_records(
    source: RecordedSource,
    base_dir: Path,
    keep_going: Callable[[], bool],
    *,
    poll_s: float = POLL_S,
    wait: Callable[[float], object] = time.sleep,
    from_start: bool = False,
) -> Iterator[Recorded | Skipped]:
    """The source's reader over the followed lines. Locations number lines from where following
    began (`access.log:12` is the twelfth line read), across rotations."""
    lines = (
        line.decode("utf-8", "surrogateescape")
        for line in follow_lines(
            resolved_path(base_dir, source.path),
            keep_going,
            poll_s=poll_s,
            wait=wait,
            from_start=from_start,
        )
    )
    name = source.path
    if source.kind == "jsonl":
        yield from read_jsonl(lines, name)
    elif source.format == "json":
        yield from read_json_log(lines, name, source.json_keys)
    else:
        log_format = UPSTREAMINFO if source.format == "upstreaminfo" else source.format
        yield from read_log(lines, name, log_format)


def select_followed(
    items: Iterable[Recorded | Skipped],
    selection: Selection,
    summary: SourceSummary,
    admit: Callable[[RequestSpec], bool],
) -> Iterator[RequestSpec]:
    """`select` for a followed log: each spec that `admit` takes (it may go now), in order.

    `per_route` and `sample: N` count requests sent, so they are decided after `select`'s
    other rules and before `admit`, and a request that `admit` refuses (the rate is reached,
    or the replay has no room) is counted as sampled out without using up its route's share.
    `sample: N` ends the following once N went out; a share (`10%`) applies per line."""
    per_route, sample_count = selection.per_route, selection.sample_count
    # Nothing is kept in memory: the run's cap on kept requests does not apply.
    rules = dataclasses.replace(selection, per_route=None, sample_count=None, max_kept=None)
    sent_per_template: Counter[str] = Counter()
    sent = 0
    for spec in select(items, rules, summary):
        if (per_route is not None and sent_per_template[spec.name] >= per_route) or not admit(spec):
            _unselect(summary, spec.name)
            continue
        sent_per_template[spec.name] += 1
        sent += 1
        yield spec
        if sample_count is not None and sent >= sample_count:
            return


def _unselect(summary: SourceSummary, template: str) -> None:
    """Count as sampled out a request that `select` counted as replayed."""
    summary.replayed -= 1
    summary.templates[template] -= 1
    if not summary.templates[template]:
        del summary.templates[template]
    summary.skipped["sampled_out"] += 1


@dataclasses.dataclass(frozen=True, slots=True)
class FollowCounts:
    """The counts of a followed log at one moment, safe to read from another thread."""

    lines: int = 0
    skipped: tuple[tuple[SkipReason, int], ...] = ()


class FollowedLog:
    """One followed source: `feed` reads it in a thread of its own and offers each selected
    request; `summary` (complete once `feed` returned) and `counts` (a snapshot, any time)
    say what became of its lines."""

    def __init__(
        self,
        source: RecordedSource,
        base_dir: Path,
        selection: Selection,
        *,
        poll_s: float = POLL_S,
        from_start: bool = False,
    ) -> None:
        self.source, self.base_dir, self.selection = source, base_dir, selection
        self.poll_s, self.from_start = poll_s, from_start
        self.summary = SourceSummary(source.path)
        self.counts = FollowCounts()

    def feed(self, offer: Callable[[RequestSpec], bool], stopping: threading.Event) -> None:
        """Read until `stopping` is set (or `sample: N` is reached), offering each request."""

        def wait(seconds: float) -> None:
            self._publish()
            stopping.wait(seconds)

        items = followed_records(
            self.source,
            self.base_dir,
            lambda: not stopping.is_set(),
            poll_s=self.poll_s,
            wait=wait,
            from_start=self.from_start,
        )
        try:
            for _ in select_followed(self._publishing(items), self.selection, self.summary, offer):
                pass
        finally:
            self._publish()

    def unsent(self, spec: RequestSpec) -> None:
        """Count as sampled out a request that was offered and taken but never sent (the run
        stopped first). Call once `feed` has returned."""
        _unselect(self.summary, spec.name)
        self._publish()

    def _publishing(self, items: Iterator[Recorded | Skipped]) -> Iterator[Recorded | Skipped]:
        for count, item in enumerate(items, start=1):
            if count % _PUBLISH_EVERY == 0:
                self._publish()
            yield item

    def _publish(self) -> None:
        # Built in the reading thread, which alone changes the summary; replaced whole, so a
        # reader in another thread sees one snapshot or the next, never half of one.
        self.counts = FollowCounts(self.summary.lines, tuple(sorted(self.summary.skipped.items())))
