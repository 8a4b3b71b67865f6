"""Paths a scenario names (CA bundles, client certificates and keys, manifests, a secrets
file; resolved by shadowdiff.endpoint.resolved_path), checked for what they are: a regular file,
or one line saying what the path names instead. Reads file metadata only."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Final

# TLS files are loaded when the scenario is validated and again by the run (each TLS context):
# a pipe gives its bytes once.
READ_AGAIN: Final = "; name a regular file (it is read more than once)"


def file_problem(path: Path, why_regular: str = "") -> str | None:
    """None for a regular file (or a symlink to one), else why the setting cannot name `path`:
    missing, unreadable, or something else than a file (`why_regular` says why it must be
    one)."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return f"file not found: {path}"
    except ValueError:
        return f"not a file name (it holds a NUL byte): {str(path)!r}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file ({_kind(mode)}): {path}{why_regular}"


def is_regular(path: Path) -> bool:
    """Whether `path` is a regular file; False where file_problem has a reason (Path.is_file
    raises for a name past the system's limit)."""
    return file_problem(path) is None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"
