"""Read a YAML document into plain Python data while remembering where every value came from.

PyYAML's safe loader gives values without positions; the scenario loader needs them to point a
user at `file:line:col` for each problem. This module composes the node tree, builds the data
itself, and records the position of every key and value by field path. It also expands
`${VAR}` / `${VAR:-default}` from the environment in string scalars. No validation happens here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from shadowdiff.errors import Problem

FieldPath = tuple[str | int, ...]

# `$${X}` is a literal `${X}`; otherwise `${NAME}` or `${NAME:-default}`.
_ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class SourceDocument:
    """Plain data from one YAML file, plus where each part of it stands in the file."""

    file: str
    data: Any
    value_positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    # Values substituted from the environment -> the variable's name: reports never show them.
    environment_values: dict[str, str] = field(default_factory=dict)
    # Where substitutions happened -> the variables used there: messages about those fields
    # never quote the value, and short values are redacted where they went.
    environment_paths: dict[FieldPath, list[str]] = field(default_factory=dict)

    def position(self, path: FieldPath, *, prefer_key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the deepest known part of `path`."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefer_key and end == len(path) and prefix in self.key_positions:
                return self.key_positions[prefix]
            if prefix in self.value_positions:
                return self.value_positions[prefix]
        return (1, 1)

    def problem(self, path: FieldPath, message: str, *, prefer_key: bool = False) -> Problem:
        line, column = self.position(path, prefer_key=prefer_key)
        return Problem(self.file, line, column, format_path(path), message)


def format_path(path: FieldPath) -> str:
    """`("requests", 3, "method")` -> `requests[3].method`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.document = SourceDocument(file=file, data=None)
        self.environ = environ
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self.document.value_positions[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # resolve `<<: *anchor` merge keys
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    self.problems.append(
                        Problem(self.document.file, *_mark(key_node), "", "keys must be plain")
                    )
                    continue
                key_path = (*path, str(key))
                if key in result:
                    line, column = _mark(key_node)
                    self.problems.append(
                        Problem(
                            self.document.file,
                            line,
                            column,
                            format_path(key_path),
                            "duplicate key; the earlier value would be silently lost",
                        )
                    )
                self.document.key_positions[key_path] = _mark(key_node)
                result[key] = self.build(value_node, key_path)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, str) and "${" in value:
            return self._expand(value, node, path)
        return value

    def _expand(self, text: str, node: yaml.Node, path: FieldPath) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            if name in self.environ:
                value = self.environ[name]
            elif default is not None:
                return default
            else:
                line, column = _mark(node)
                self.problems.append(
                    Problem(
                        self.document.file,
                        line,
                        column,
                        format_path(path),
                        f"environment variable {name} is not set (use ${{{name}:-default}} "
                        "for an optional one)",
                    )
                )
                return ""
            self.document.environment_values[value] = name
            self.document.environment_paths.setdefault(path, []).append(name)
            return value

        return _ENV_REFERENCE.sub(replace, text)


def read_yaml(
    text: str, file: str, environ: Mapping[str, str]
) -> tuple[SourceDocument, list[Problem]]:
    """Parse `text`; return the document and the problems found while reading it."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        reason = exc.problem or exc.context or "invalid YAML"
        return SourceDocument(file=file, data=None), [
            Problem(file, line, column, "", f"YAML: {reason}")
        ]
    finally:
        loader.dispose()
    builder = _Builder(file, environ)
    if root is not None:
        builder.document.data = builder.build(root, ())
    return builder.document, builder.problems
