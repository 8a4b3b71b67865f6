"""Report files as a user's path asks: reading one bounded, writing one without replacing
what the path names.

Reading: only a regular file (opening a FIFO would wait for a writer; /dev/zero never ends),
and at most a given size, each refusal one line naming the file (exit 2).

A regular file, or one that does not exist yet, is written atomically: a temporary file beside
it renamed over it, so an interrupted write never leaves half a report behind. Anything else is
written straight through, since renaming over it would replace it with a file: a FIFO a reader
waits on, /dev/stdout, /dev/null (which a run as root would turn into a file for the whole
machine). A symlink is followed to its target first, and that target decides. A full disk or
any other failure is an OSError for the caller to name the flag with.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from shadowdiff.errors import UsageError


def read_file_bounded(path: str | os.PathLike[str], limit_bytes: int, what: str) -> bytes:
    """The bytes of the regular file at `path`, or `UsageError`: missing, not a regular file,
    unreadable, or larger than `limit_bytes` ("not {what}")."""
    name = os.fspath(path)
    try:
        if not stat.S_ISREG(os.stat(name).st_mode):
            raise UsageError(f"{name}: not a regular file: not {what}")
        with open(name, "rb") as file:
            data = file.read(limit_bytes + 1)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit_bytes:
        raise UsageError(f"{name}: larger than {limit_bytes // 2**20} MiB: not {what}")
    return data


def write_text_file(path: str | os.PathLike[str], text: str) -> None:
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with target.open("w", encoding="utf-8") as stream:
            stream.write(text)
        return
    temporary = target.with_name(f".{target.name}.partial")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
