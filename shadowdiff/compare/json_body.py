"""Structural comparison of two JSON documents, field by field. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from shadowdiff.json_document import NOT_JSON, load_json

_MISSING = object()


def parse_json(body: bytes) -> Any:
    """The decoded document, or `_MISSING` when `body` is not a JSON object or array (or nests
    too deep to compare field by field: it is then compared as a body)."""
    stripped = body.lstrip()
    if not stripped or stripped[:1] not in (b"{", b"["):
        return _MISSING
    document = load_json(body)
    return _MISSING if document is NOT_JSON else document


def is_json(value: Any) -> bool:
    return value is not _MISSING


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.replace("-", "").replace("_", "").isalnum():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def json_differences(
    baseline: Any, candidate: Any, path: str = "$"
) -> Iterator[tuple[str, Any, Any]]:
    """Yield (path, baseline value, candidate value) for each differing leaf.

    A missing key is reported with the sentinel `MISSING` on that side.
    """
    if isinstance(baseline, dict) and isinstance(candidate, dict):
        for key in sorted(baseline.keys() | candidate.keys()):
            yield from json_differences(
                baseline.get(key, MISSING), candidate.get(key, MISSING), _child(path, key)
            )
        return
    if (
        isinstance(baseline, list)
        and isinstance(candidate, list)
        and len(baseline) == len(candidate)
    ):
        for index, (baseline_item, candidate_item) in enumerate(
            zip(baseline, candidate, strict=True)
        ):
            yield from json_differences(baseline_item, candidate_item, _child(path, index))
        return
    if baseline != candidate or type(baseline) is not type(candidate):
        yield (path, baseline, candidate)


MISSING: Any = _MISSING


def render_json_value(value: Any) -> str | None:
    if value is MISSING:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
