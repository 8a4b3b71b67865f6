"""Route templates: a path with its identifiers generalised (`/orders/123` -> `/orders/{n}`).
The report folds signatures by them and recorded sources keep breadth by them. Pure."""

from __future__ import annotations

import re
from typing import Final

_ID_SEGMENTS: Final = (
    (re.compile(r"^\d+$"), "{n}"),
    (
        re.compile(
            r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ),
        "{uuid}",
    ),
    (re.compile(r"^[0-9a-fA-F]{16,}$"), "{hex}"),
)


def path_template(path: str) -> str:
    """`path` (no query) with identifier segments replaced by placeholders."""
    segments = (path or "/").split("/")
    for index, segment in enumerate(segments):
        # Called for every line of a recorded log: most segments are settled without a regex.
        # `isdecimal` is what `\d+` matches; a segment under 16 characters is no UUID or hex
        # ID; a newline (which `$` lets through at the end) takes the full rules.
        if "\n" not in segment:
            if segment.isdecimal():
                segments[index] = "{n}"
                continue
            if len(segment) < 16:
                continue
        for pattern, placeholder in _ID_SEGMENTS:
            if pattern.match(segment):
                segments[index] = placeholder
                break
    return "/".join(segments)
