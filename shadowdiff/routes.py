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
    segments = []
    for segment in (path or "/").split("/"):
        for pattern, placeholder in _ID_SEGMENTS:
            if pattern.match(segment):
                segment = placeholder
                break
        segments.append(segment)
    return "/".join(segments)
