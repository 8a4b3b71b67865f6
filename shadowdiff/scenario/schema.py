"""The JSON Schema of the scenario format, as an editor sees the file: before `${VAR}` is
substituted and before sizes and threshold strings are parsed.

pydantic describes the validated model; the file accepts more forms than that model's types
(`body_capture: 64KiB`, `size: 2MiB`, `- candidate.p99 < 250ms`, `port: ${PORT}`), so each such
place is widened here to what the loader accepts. A test validates every scenario in the
repository and every README example against this schema with a real validator.
"""

from __future__ import annotations

from typing import Any, Final

from shadowdiff.scenario.model import ScenarioFile

# What `${NAME}` / `${NAME:-default}` look like in a field whose value is not text.
ENVIRONMENT_REFERENCE: Final = {
    "type": "string",
    "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$",
    "description": "a value from the environment",
}
BYTE_SIZE: Final = {
    "type": "string",
    "pattern": r"^\s*\d+\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$",
    "description": "a size such as 64KiB or 2MiB",
}
_SIZE_FIELDS: Final = frozenset({"body_capture", "size", "header_line_bytes", "header_bytes"})
PERCENT: Final = {
    "type": "string",
    "pattern": r"^\s*[0-9]*\.?[0-9]+\s*%\s*$",
    "description": "a share such as 100%",
}
SPEED: Final = {
    "type": "string",
    "pattern": r"^\s*[0-9]*\.?[0-9]+\s*x\s*$",
    "description": "a speed such as 2x",
}
_NOT_TEXT: Final = frozenset({"integer", "number", "boolean"})


def scenario_json_schema() -> dict[str, Any]:
    schema = ScenarioFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "shadowdiff scenario"
    widened: dict[str, Any] = _widen(schema)
    thresholds = widened["properties"]["thresholds"]
    thresholds["items"] = {
        "anyOf": [thresholds["items"], {"type": "string", "description": "e.g. p99 < 250ms"}]
    }
    return widened


def _widen(node: Any, name: str | None = None) -> Any:
    """`node` with every non-text type also accepting `${VAR}` (and sizes where `name` is a
    size field). `name` is the property the node describes, kept through anyOf."""
    if isinstance(node, list):
        return [_widen(item, name) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, item in node.items():
        if key == "properties" and isinstance(item, dict):
            result[key] = {field: _widen(value, field) for field, value in item.items()}
        elif key in ("anyOf", "oneOf", "allOf"):
            result[key] = _widen(item, name)
        else:
            result[key] = _widen(item)
    if result.get("type") in _NOT_TEXT:
        alternatives = [result, ENVIRONMENT_REFERENCE]
        if name in _SIZE_FIELDS:
            alternatives.append(BYTE_SIZE)
        if name == "speed":
            alternatives.append(SPEED)
        if name == "min":
            alternatives.append(PERCENT)
        # Keep the annotations editors show on the outside.
        outer = {key: result[key] for key in ("title", "description", "default") if key in result}
        return {**outer, "anyOf": alternatives}
    return result
