"""JSON documents read from an entry point's answer, with their nesting bounded. Pure.

Answers are hostile input: `[` repeated 30,000 times fits in 64 KiB and makes `json.loads`
raise RecursionError, and a document just under the interpreter's limit would overflow the
stack of the recursive comparison instead. Every JSON body shadowdiff reads goes through here.
"""

from __future__ import annotations

import json
from typing import Any, Final

# Deeper than any real API answer (GitHub's and Kubernetes' documents stay under 20 levels),
# and shallow enough for the recursive field comparison and json.dumps to stay well inside
# Python's default recursion limit of 1000.
MAX_DEPTH: Final = 128


class NotJson:
    """The type of `NOT_JSON`: the body is not JSON, or is JSON nested deeper than MAX_DEPTH."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Final = NotJson()


def load_json(body: bytes) -> Any:
    """The decoded document, or `NOT_JSON`. Never raises."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return NOT_JSON
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth_exceeds(document, MAX_DEPTH):
        return NOT_JSON
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` deep; iterative, so it cannot overflow."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
