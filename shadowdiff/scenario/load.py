"""Load a scenario file into a `Scenario`: parse, validate, and expand into request specs.

Every problem found is reported together, each located as `file:line:col: field: message`, in
one `ScenarioError`. This module reads the scenario and the files it names; it sends nothing.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import pydantic
from yarl import URL

from shadowdiff.errors import Problem, ScenarioError
from shadowdiff.scenario.model import (
    SAFE_METHODS,
    Acceptance,
    Body,
    CompareSettings,
    Defaults,
    LoadSettings,
    Matrix,
    Request,
    ScenarioFile,
    Targets,
    Threshold,
    TlsProbeSettings,
)
from shadowdiff.scenario.tls_files import tls_file_problems
from shadowdiff.scenario.yamlsource import FieldPath, SourceDocument, read_yaml
from shadowdiff.spec import RequestSpec

# Headers a scenario may not set, and why.
_FORBIDDEN_HEADERS = {
    "host": "the Host header comes from the URL, and SNI is kept equal to it; "
    "put the production hostname in the URL",
    "content-length": "it is computed from the body",
    "transfer-encoding": "it is chosen by the transport",
}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the two targets, shared defaults and the expanded requests."""

    source: str
    name: str
    targets: Targets
    defaults: Defaults
    requests: tuple[RequestSpec, ...]
    compare: CompareSettings
    tls_probe: TlsProbeSettings
    load: LoadSettings | None
    thresholds: tuple[Threshold, ...]
    accept: tuple[Acceptance, ...]
    base_dir: Path
    # Values that came from the environment -> variable name; reports show `${NAME}` instead.
    environment_values: Mapping[str, str]

    @property
    def pair_count(self) -> int | None:
        """Request pairs a full run sends (each pair is one request to each target); None when
        the run is bounded by time instead."""
        if self.load is not None and (
            self.load.total_duration_s is not None or self.load.max_pairs
        ):
            if self.load.total_duration_s is None:
                max_pairs: int | None = self.load.max_pairs
                return max_pairs
            return None
        return sum(request.repeat for request in self.requests)

    def port_map(self, side: str) -> dict[int, int]:
        """Production URL port -> the port `side` listens on, by each URL's scheme: 443 (or an
        explicit https port in a URL) maps to the target's https port, 80 to its http port."""
        ports = getattr(self.targets, side).ports
        mapping = {80: ports.http, 443: ports.https}
        for request in self.requests:
            url = URL(request.url, encoded=True)
            if url.port is not None:
                mapping[url.port] = ports.https if url.scheme == "https" else ports.http
        return mapping

    def https_hosts(self) -> list[tuple[str, int]]:
        """Each HTTPS hostname with its production port, in first-seen order."""
        seen: dict[tuple[str, int], None] = {}
        for request in self.requests:
            url = URL(request.url, encoded=True)
            if url.scheme == "https" and url.host:
                seen[(url.host.rstrip("."), url.port or 443)] = None
        return list(seen)

    def resolve_path(self, path: str) -> Path:
        """A path named in the scenario, relative to the scenario file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate


def load_scenario(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> Scenario:
    """Read and validate the scenario at `path`. Raises `ScenarioError` listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem(file, 0, 0, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(file, 0, 0, "", f"cannot read: {exc}")]) from None
    return parse_scenario(text, file, base_dir=Path(path).resolve().parent, environ=environ)


def parse_scenario(
    text: str, file: str, *, base_dir: Path, environ: Mapping[str, str] | None = None
) -> Scenario:
    """Validate scenario `text` (named `file` in messages)."""
    document, problems = read_yaml(text, file, os.environ if environ is None else environ)
    if problems:
        raise ScenarioError(problems)
    if not isinstance(document.data, dict):
        raise ScenarioError(
            [Problem(file, 1, 1, "", "expected a mapping with targets and requests")]
        )
    try:
        config = ScenarioFile.model_validate(document.data)
    except pydantic.ValidationError as exc:
        raise ScenarioError(
            sorted(_located(document, _without_typo_echoes(exc)), key=_position)
        ) from None
    requests, problems = _expand(config, document, base_dir)
    problems += list(_check_targets(config, document, base_dir))
    if problems:
        raise ScenarioError(sorted(problems, key=_position))
    return Scenario(
        source=file,
        name=config.name or Path(file).stem,
        targets=config.targets,
        defaults=config.defaults,
        requests=tuple(requests),
        compare=config.compare,
        tls_probe=config.tls_probe,
        load=config.load,
        thresholds=tuple(config.thresholds),
        accept=tuple(config.accept),
        base_dir=base_dir,
        environment_values=dict(document.environment_values),
    )


def _position(problem: Problem) -> tuple[int, int]:
    return (problem.line, problem.column)


# --- pydantic errors -> located problems --------------------------------------------------


def _located(document: SourceDocument, errors: list[Any]) -> Iterable[Problem]:
    for item in errors:
        path: FieldPath = tuple(part for part in item["loc"] if part != "[key]")
        kind, value = item["type"], item.get("input")
        if kind == "extra_forbidden":
            yield document.problem(path, _unknown_field_message(path), prefer_key=True)
        elif kind == "missing":
            yield document.problem(path, "required field is missing")
        elif kind == "literal_error":
            expected = str(item["ctx"]["expected"]).replace("'", "").replace(" or ", ", ")
            yield document.problem(path, f"expected one of {expected}; got {value!r}")
        elif kind in ("value_error", "assertion_error"):
            message = (
                str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
            )
            yield document.problem(path, message, prefer_key="[key]" in item["loc"])
        else:
            message = str(item["msg"])
            yield document.problem(path, f"{message[0].lower()}{message[1:]}; got {value!r}")


def _without_typo_echoes(error: pydantic.ValidationError) -> list[Any]:
    """Drop "X is missing" when an unknown sibling key is a typo of X: one mistake, one line
    (the unknown-key line already says "did you mean 'X'?")."""
    items = error.errors(include_url=False)
    suggested = set()
    for item in items:
        if item["type"] == "extra_forbidden":
            parent, key = item["loc"][:-1], str(item["loc"][-1])
            for close in difflib.get_close_matches(key, _field_names_at(parent), n=1):
                suggested.add((*parent, close))
    return [item for item in items if not (item["type"] == "missing" and item["loc"] in suggested)]


def _unknown_field_message(path: FieldPath) -> str:
    allowed = _field_names_at(path[:-1])
    if not allowed:
        return "unknown field"
    message = f"unknown field; expected one of {', '.join(allowed)}"
    close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
    return f"{message} (did you mean {close[0]!r}?)" if close else message


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = members[0] if len(members) == 1 else annotation
            if len(members) != 1:
                return annotation
        else:
            return annotation


def _field_names_at(path: FieldPath) -> list[str]:
    """The keys a model accepts at `path`, for suggesting a fix to a typo."""
    annotation: Any = ScenarioFile
    for part in path:
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if origin is list:
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        elif inspect.isclass(annotation) and issubclass(annotation, pydantic.BaseModel):
            by_key = {(f.alias or name): f for name, f in annotation.model_fields.items()}
            if part not in by_key:
                return []
            annotation = by_key[str(part)].annotation
        else:
            return []
    annotation = _unwrap(annotation)
    if inspect.isclass(annotation) and issubclass(annotation, pydantic.BaseModel):
        return [(f.alias or name) for name, f in annotation.model_fields.items()]
    return []


# --- rules across fields, and expansion -----------------------------------------------------


def _check_headers(
    headers: Mapping[str, str], path: FieldPath, document: SourceDocument
) -> Iterable[Problem]:
    for name in headers:
        reason = _FORBIDDEN_HEADERS.get(name.lower())
        if reason:
            yield document.problem((*path, name), f"cannot be set: {reason}", prefer_key=True)


def _check_url(url: str, path: FieldPath, document: SourceDocument) -> list[Problem]:
    try:
        parsed = URL(url, encoded=True)
    except ValueError as exc:
        return [document.problem(path, f"not a URL: {exc}")]
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return [
            document.problem(
                path,
                "expected an absolute http:// or https:// URL with the production hostname; "
                f"got {url!r}",
            )
        ]
    return []


def _check_targets(
    config: ScenarioFile, document: SourceDocument, base_dir: Path
) -> Iterable[Problem]:
    for side in ("baseline", "candidate"):
        target = getattr(config.targets, side)
        yield from _check_headers(target.headers, ("targets", side, "headers"), document)
        for key in ("ca", "client_cert", "client_key"):
            value = getattr(target.tls, key)
            if value is not None and not _resolve(base_dir, value).is_file():
                where = ("targets", side, "tls", key)
                yield document.problem(where, f"file not found: {_resolve(base_dir, value)}")
        if target.tls.client_key and not target.tls.client_cert:
            where = ("targets", side, "tls", "client_key")
            yield document.problem(where, "client_key needs client_cert")
        yield from tls_file_problems(
            target.tls, ("targets", side, "tls"), document, lambda v: _resolve(base_dir, v)
        )


def _resolve(base_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _merge_headers(*layers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Later layers override earlier ones, by case-insensitive name."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = (name, value)
    return tuple(merged.values())


def _body_bytes(
    body: Body, path: FieldPath, document: SourceDocument, base_dir: Path
) -> tuple[bytes | None, dict[str, str], list[Problem]]:
    headers = {"Content-Type": body.content_type} if body.content_type else {}
    if body.text is not None:
        return body.text.encode("utf-8"), headers, []
    if body.size is not None:
        return b"x" * body.size, headers, []
    if body.file is not None:
        file = _resolve(base_dir, body.file)
        try:
            return file.read_bytes(), headers, []
        except OSError as exc:
            return None, headers, [document.problem((*path, "file"), f"cannot read {file}: {exc}")]
    encoded = json.dumps(body.json_value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return encoded, {"Content-Type": "application/json", **headers}, []


def _expand(
    config: ScenarioFile, document: SourceDocument, base_dir: Path
) -> tuple[list[RequestSpec], list[Problem]]:
    specs: list[RequestSpec] = []
    problems: list[Problem] = list(
        _check_headers(config.defaults.headers, ("defaults", "headers"), document)
    )
    seen_names: dict[str, FieldPath] = {}

    def claim_name(name: str, path: FieldPath) -> None:
        if name in seen_names:
            problems.append(
                document.problem(
                    path, f"duplicate name {name!r}; names identify requests in reports"
                )
            )
        seen_names[name] = path

    for index, request in enumerate(config.requests):
        path: FieldPath = ("requests", index)
        claim_name(request.name, (*path, "name"))
        problems += _check_url(request.url, (*path, "url"), document)
        problems += _check_headers(request.headers, (*path, "headers"), document)
        problems += _check_method(request, path, document)
        body: bytes | None = None
        body_headers: dict[str, str] = {}
        if request.body is not None:
            body, body_headers, body_problems = _body_bytes(
                request.body, (*path, "body"), document, base_dir
            )
            problems += body_problems
        specs.append(
            RequestSpec(
                name=request.name,
                method=request.method,
                url=request.url,
                headers=_merge_headers(config.defaults.headers, body_headers, request.headers),
                body=body,
                repeat=request.repeat,
            )
        )

    for index, matrix in enumerate(config.matrix):
        path = ("matrix", index)
        problems += _check_method(matrix, path, document)
        for set_index, header_set in enumerate(matrix.header_sets):
            problems += _check_headers(header_set, (*path, "header_sets", set_index), document)
        specs += _expand_matrix(matrix, config.defaults)
        for spec in specs[len(specs) - _matrix_size(matrix) :]:
            claim_name(spec.name, (*path, "name"))

    if not specs:
        problems.append(
            document.problem(("requests",), "no requests: add requests or matrix entries")
        )
    return specs, problems


def _check_method(
    entry: Request | Matrix, path: FieldPath, document: SourceDocument
) -> list[Problem]:
    methods = [entry.method] if isinstance(entry, Request) else entry.methods
    unsafe = sorted({m for m in methods if m not in SAFE_METHODS})
    if unsafe and not entry.allow_unsafe:
        field = "method" if isinstance(entry, Request) else "methods"
        return [
            document.problem(
                (*path, field),
                f"{', '.join(unsafe)} would reach the backends twice (once through each entry "
                "point); set allow_unsafe: true to send it",
            )
        ]
    return []


def _matrix_size(matrix: Matrix) -> int:
    return (
        len(matrix.schemes)
        * len(matrix.hosts)
        * len(matrix.paths)
        * len(matrix.methods)
        * len(matrix.header_sets)
    )


def _expand_matrix(matrix: Matrix, defaults: Defaults) -> list[RequestSpec]:
    specs = []
    for scheme in matrix.schemes:
        for host in matrix.hosts:
            for url_path in matrix.paths:
                for method in matrix.methods:
                    for set_index, header_set in enumerate(matrix.header_sets):
                        url = f"{scheme}://{host}{url_path}"
                        suffix = (
                            f" [header set {set_index + 1}]" if len(matrix.header_sets) > 1 else ""
                        )
                        # Name only what the matrix varies, so names stay short and unique.
                        shown = url_path
                        if len(matrix.hosts) > 1:
                            shown = f"{host}{shown}"
                        if len(matrix.schemes) > 1:
                            shown = f"{scheme}://{host}{url_path}"
                        specs.append(
                            RequestSpec(
                                name=f"{matrix.name}: {method} {shown}{suffix}",
                                method=method,
                                url=url,
                                headers=_merge_headers(defaults.headers, header_set),
                                body=None,
                                repeat=matrix.repeat,
                            )
                        )
    return specs
