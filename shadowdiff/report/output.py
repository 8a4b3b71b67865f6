"""Writing an output file (a report, a rendered format, a comparison) the way a user's path
asks for it.

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
