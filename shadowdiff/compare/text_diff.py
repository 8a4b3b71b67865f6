"""A short unified diff of two captured text bodies, so a `body` difference reads as what
changed rather than two hashes (as httpdiff and Diffy show it). Pure, and bounded: the bodies
are at most `body_capture` bytes, lines are cut to a few thousand, and the diff to a screenful.
"""

from __future__ import annotations

import difflib
import re
from typing import Final

MAX_LINES_COMPARED: Final = 2000
MAX_DIFF_LINES: Final = 24
MAX_LINE_CHARS: Final = 160
# Minified HTML, JSON and scripts come as one long line: break it where a reader would.
_BREAK_AFTER: Final = re.compile(r"(?<=>)|(?<=[;}])(?=\S)")
_LONG_LINE_CHARS: Final = 200


def _text(body: bytes) -> str | None:
    """The body as text, or None when it is not text (a NUL, or not UTF-8)."""
    if b"\x00" in body:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A capture may cut a multi-byte character in two at its very end.
        if exc.start < len(body) - 3:
            return None
        return body[: exc.start].decode("utf-8")


def _lines(text: str) -> list[str]:
    lines: list[str] = []
    for line in text.splitlines():
        if len(line) > _LONG_LINE_CHARS:
            lines.extend(part for part in _BREAK_AFTER.split(line) if part)
        else:
            lines.append(line)
        if len(lines) >= MAX_LINES_COMPARED:
            break
    return lines[:MAX_LINES_COMPARED]


def text_diff(baseline: bytes, candidate: bytes) -> str | None:
    """The changed lines with one line of context, `-` baseline and `+` candidate; None when
    either body is not text or they do not differ as text."""
    before, after = _text(baseline), _text(candidate)
    if before is None or after is None or before == after:
        return None
    diff = difflib.unified_diff(_lines(before), _lines(after), n=1, lineterm="")
    shown: list[str] = []
    for line in diff:
        if line.startswith(("---", "+++")):
            continue
        if len(shown) == MAX_DIFF_LINES:
            shown.append("…")
            break
        shown.append(line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…")
    return "\n".join(shown) or None
