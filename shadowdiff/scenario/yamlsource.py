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
from typing import Any, Final, Protocol

import yaml

from shadowdiff.errors import Problem

FieldPath = tuple[str | int, ...]

# A scenario nests a handful of levels; anything deeper is a mistake or an attack on the
# recursive parts of the parser and the validator.
MAX_DEPTH: Final = 64
# Values built from the file, aliases expanded: bounds "billion laughs" files (a few hundred
# bytes whose aliases expand to billions of values) long before memory or time runs out.
MAX_VALUES: Final = 100_000
_MAP_TAG: Final = "tag:yaml.org,2002:map"
_SEQ_TAG: Final = "tag:yaml.org,2002:seq"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_TIMESTAMP_TAG: Final = "tag:yaml.org,2002:timestamp"
# Plain YAML only: strings, numbers, booleans and null. Tags such as !!binary, !!set or
# !!python/tuple build values no scenario field takes (or objects), so they are refused.
_CONSTRUCTED_TAGS: Final = frozenset(
    {
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
    }
)


# libyaml's loader when PyYAML was built with it: several times faster on large files (the
# depth check below runs before its recursive composer ever sees the file).
_Loader: Final[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Unreadable(Exception):
    """Stops building: the file cannot be read safely past this point."""

    def __init__(self, node: yaml.Node | yaml.Event, message: str) -> None:
        super().__init__(message)
        mark = node.start_mark
        self.mark = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


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
    # Fields that named an unset variable: already reported, so no other problem is reported
    # for them (their value is a stand-in), and the rest of the file is still checked.
    unset_paths: set[FieldPath] = field(default_factory=set)

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


class _TagResolver(Protocol):
    """The one method of PyYAML's Resolver used here, typed: types-PyYAML leaves it untyped."""

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str: ...


# Plain scalars whose resolved tag is remembered: short ones (keys and the values that repeat),
# at most this many at once.
_TAG_CACHED_LENGTH: Final = 64
_TAGS_KEPT: Final = 4096


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(
        self,
        file: str,
        environ: Mapping[str, str],
        *,
        expand_environment: bool = True,
        max_values: int = MAX_VALUES,
    ) -> None:
        self.document = SourceDocument(file=file, data=None)
        self.environ = environ
        self.expand_environment = expand_environment
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.resolver: _TagResolver = yaml.resolver.Resolver()
        self.values_built = 0
        self.max_values = max_values
        self.has_aliases = False  # set by the reader: says what an overflow means
        self._implicit_tags: dict[tuple[str, bool], str] = {}

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self.values_built += 1
        if self.values_built > self.max_values:
            what = "YAML aliases expand the file to" if self.has_aliases else "the file holds"
            raise _Unreadable(node, f"{what} more than {self.max_values:,} values")
        if len(path) > MAX_DEPTH:
            raise _Unreadable(node, f"nested deeper than {MAX_DEPTH} levels")
        self.document.value_positions[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                raise _Unreadable(node, f"YAML tags are not supported here ({node.tag})")
            try:
                self.constructor.flatten_mapping(node)  # resolve `<<: *anchor` merge keys
            except yaml.YAMLError as exc:
                raise _Unreadable(node, f"YAML merge key: {getattr(exc, 'problem', exc)}") from None
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(
                        Problem(self.document.file, *_mark(key_node), "", "keys must be plain")
                    )
                    continue
                key = self._scalar(key_node)
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
            if node.tag != _SEQ_TAG:
                raise _Unreadable(node, f"YAML tags are not supported here ({node.tag})")
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        value = self._scalar(node)
        if self.expand_environment and isinstance(value, str) and "${" in value:
            return self._expand(value, node, path)
        return value

    def _scalar(self, node: yaml.Node) -> Any:
        """A scalar as plain data; explicit tags and unconstructible values are refused."""
        plain = not getattr(node, "style", None)  # None from PyYAML, "" from libyaml
        implicit = self._implicit_tags.get((node.value, plain)) if plain else _STR_TAG
        if implicit is None:
            # The resolver tries a regular expression per type on each plain scalar: a manifest
            # repeats the same keys and values thousands of times, so each is resolved once.
            implicit = self.resolver.resolve(yaml.ScalarNode, node.value, (plain, not plain))
            if len(node.value) <= _TAG_CACHED_LENGTH:
                if len(self._implicit_tags) >= _TAGS_KEPT:
                    self._implicit_tags.clear()
                self._implicit_tags[(node.value, plain)] = implicit
        if node.tag != implicit:
            raise _Unreadable(node, f"YAML tags are not supported here ({node.tag})")
        if node.tag == _STR_TAG or node.tag == _TIMESTAMP_TAG:
            # Dates stay text: the fields that take one parse it and say what is wrong with it.
            return str(node.value)
        if node.tag not in _CONSTRUCTED_TAGS:
            raise _Unreadable(node, f"YAML tags are not supported here ({node.tag})")
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, KeyError, AttributeError, OverflowError):
            raise _Unreadable(node, f"not a valid {node.tag.rsplit(':', 1)[-1]}") from None

    def _expand(self, text: str, node: yaml.Node, path: FieldPath) -> str:
        def without_value(name: str, message: str) -> str:
            """Report `message` for this field; return a stand-in that most fields accept (a
            host name, a header value, a path), so the rest of the file is still checked in
            the same pass."""
            self.document.unset_paths.add(path)
            line, column = _mark(node)
            self.problems.append(
                Problem(self.document.file, line, column, format_path(path), message)
            )
            return f"unset-{name.lower()}"

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            if name in self.environ and not _is_utf8(self.environ[name]):
                # Python keeps undecodable bytes as lone surrogates; such a value cannot be
                # sent or shown, and quoting it would show the secret.
                return without_value(name, f"environment variable {name} is not valid UTF-8")
            if name in self.environ:
                value = self.environ[name]
            elif default is not None:
                return default
            else:
                return without_value(
                    name,
                    f"environment variable {name} is not set (use ${{{name}:-default}} "
                    "for an optional one)",
                )
            self.document.environment_values[value] = name
            self.document.environment_paths.setdefault(path, []).append(name)
            return value

        return _ENV_REFERENCE.sub(replace, text)


def read_yaml(
    text: str, file: str, environ: Mapping[str, str]
) -> tuple[SourceDocument, list[Problem]]:
    """Parse `text`; return the document and the problems found while reading it."""
    empty = SourceDocument(file=file, data=None)
    try:
        has_aliases = _check_depth(text)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except _Unreadable as exc:
        return empty, [Problem(file, *exc.mark, "", str(exc))]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        reason = exc.problem or exc.context or "invalid YAML"
        return empty, [Problem(file, line, column, "", f"YAML: {reason}")]
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        return empty, [Problem(file, line, column, "", f"YAML: {_reader_reason(exc)}")]
    except yaml.YAMLError as exc:
        return empty, [Problem(file, 0, 0, "", f"YAML: {exc}")]
    builder = _Builder(file, environ)
    builder.has_aliases = has_aliases
    if root is not None:
        try:
            builder.document.data = builder.build(root, ())
        except _Unreadable as exc:
            return empty, [Problem(file, *exc.mark, "", str(exc))]
    return builder.document, builder.problems


def read_yaml_documents(
    text: str, file: str, *, max_values: int = MAX_VALUES
) -> tuple[list[Any], list[Problem]]:
    """Every document of a multi-document YAML stream (`---`), as plain data, with the same
    limits and refusals as `read_yaml` (depth, aliases, tags) over the whole stream, and no
    `${VAR}` expansion: for files other tools wrote, such as Kubernetes manifests. Such files
    can be far larger than a scenario: `max_values` raises the cap for them."""
    try:
        has_aliases = _check_depth(text)
        loader = _Loader(text)
        roots = []
        try:
            while loader.check_node():
                roots.append(loader.get_node())
        finally:
            loader.dispose()
    except _Unreadable as exc:
        return [], [Problem(file, *exc.mark, "", str(exc))]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        return [], [Problem(file, line, column, "", f"YAML: {exc.problem or 'invalid YAML'}")]
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        return [], [Problem(file, line, column, "", f"YAML: {_reader_reason(exc)}")]
    except yaml.YAMLError as exc:
        return [], [Problem(file, 0, 0, "", f"YAML: {exc}")]
    builder = _Builder(file, {}, expand_environment=False, max_values=max_values)
    builder.has_aliases = has_aliases
    documents = []
    try:
        for index, root in enumerate(roots):
            documents.append(builder.build(root, (index,)))
    except _Unreadable as exc:
        return [], [Problem(file, *exc.mark, "", str(exc))]
    return documents, builder.problems


def _check_depth(text: str) -> bool:
    """Refuse deep nesting before composing: PyYAML's composer recurses once per level, so
    `[[[[...` thousands deep would end in RecursionError. The event parser does not recurse.
    Returns whether the stream holds an alias."""
    depth = 0
    has_aliases = False
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            has_aliases = True
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Unreadable(event, f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return has_aliases


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _line_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def _reader_reason(exc: yaml.reader.ReaderError) -> str:
    # The character itself may be unprintable: name it by code point. (libyaml does not say
    # which character it was.)
    character = exc.character
    if isinstance(character, str) and len(character) == 1 and character != "?":
        character = ord(character)
    if isinstance(character, int):
        return f"the file holds a character YAML does not allow (U+{character:04X})"
    return f"the file holds a character YAML does not allow ({exc.reason})"
