"""Load a scenario file into a `Scenario`: parse, validate, and expand into request specs.

Every problem found is reported together, each located as `file:line:col: field: message`, in
one `ScenarioError`. This module reads the scenario and the files it names; it sends nothing.
"""

from __future__ import annotations

import base64
import difflib
import inspect
import json
import os
import re
import secrets
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Union, get_args, get_origin
from urllib.parse import unquote

import pydantic
from yarl import URL

from shadowdiff.endpoint import ClientTls, Endpoint, HeadLimits, resolved_path
from shadowdiff.errors import Problem, ScenarioError
from shadowdiff.grpc import quoted
from shadowdiff.redaction import DEFAULT_SENSITIVE_HEADERS, Redactor, Secrets, sensitive_literals
from shadowdiff.scenario.grpc_call import GRPC_HEADERS, grpc_parts
from shadowdiff.scenario.model import (
    MAX_GENERATED_BODY_BYTES,
    TLS_VERSIONS,
    Acceptance,
    Body,
    CompareSettings,
    CoverageSettings,
    Defaults,
    LoadSettings,
    Matrix,
    PreflightSettings,
    RecordedSource,
    Request,
    RollbackWhen,
    ScenarioFile,
    SourceSelection,
    Targets,
    Threshold,
    TlsProbeSettings,
)
from shadowdiff.scenario.paths import READ_AGAIN, file_problem
from shadowdiff.scenario.tls_files import tls_file_problems
from shadowdiff.scenario.yamlsource import FieldPath, SourceDocument, format_path, read_yaml
from shadowdiff.sources import Recorded, Skipped, SourceSummary, records, select, selection_for
from shadowdiff.spec import SIDES, RequestSpec, RequestTls, Side, WebSocketProbe
from shadowdiff.wire import (
    SAFE_METHODS,
    WEBSOCKET_HEADERS,
    WEBSOCKET_MESSAGE_UNSAFE,
    WireError,
    http2_forbidden,
    prepare_url,
    unsafe_reason,
)

# Distinct requests a scenario may expand to. Each one holds its own report entry and
# statistics, so volume comes from `repeat` and load models, not from ever more requests.
MAX_REQUESTS: Final = 20_000

MAX_SCENARIO_BYTES: Final = 16 * 1024**2

# Headers a scenario may not set, and why.
_FORBIDDEN_HEADERS = {
    "host": "the Host header comes from the URL (and so does SNI, unless tls.sni says "
    "otherwise); put the production hostname in the URL",
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
    # What reports and messages never show: environment values (as `${NAME}`), sensitive
    # header values and URL credentials (as fingerprints). See `shadowdiff.redaction`.
    secrets: Secrets
    # What each recorded source held and what became of it (the report's `sources` section).
    sources: tuple[dict[str, Any], ...] = ()
    # The recorded sources and the selection as written, for `sources export` to read again.
    recorded: tuple[RecordedSource, ...] = ()
    selection: SourceSelection = field(default_factory=SourceSelection)
    # Manifests whose rules the report checks for coverage (plan/coverage.py).
    coverage: CoverageSettings | None = None
    # Gateway API objects checked before anything is sent (plan/preflight.py).
    preflight: PreflightSettings | None = None
    # When `shadowdiff watch` calls for a rollback (shadowdiff/watch/rollback.py).
    rollback_when: RollbackWhen | None = None

    @property
    def environment_values(self) -> Mapping[str, str]:
        """Values that came from the environment -> variable name."""
        return self.secrets.environment

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
        return resolved_path(self.base_dir, path)

    def endpoint(self, side: Side) -> Endpoint:
        """What a transport needs to send this scenario's requests to `side`."""
        target = getattr(self.targets, side)
        tls, defaults = target.tls, self.defaults
        limits = defaults.response_limits
        return Endpoint(
            side=side,
            address=target.address,
            port_map=self.port_map(side),
            tls=ClientTls(
                ca=self.resolve_path(tls.ca) if tls.ca else None,
                insecure=tls.insecure,
                client_cert=self.resolve_path(tls.client_cert) if tls.client_cert else None,
                client_key=self.resolve_path(tls.client_key) if tls.client_key else None,
                base_dir=self.base_dir,
            ),
            headers=tuple(target.headers.items()),
            connect_timeout_s=defaults.timeouts.connect_s,
            total_timeout_s=defaults.timeouts.total_s,
            body_capture_bytes=defaults.body_capture,
            limits=HeadLimits(limits.header_line_bytes, limits.header_bytes, limits.header_fields),
            transport=defaults.transport,
            http=target.http,
            http_versions=frozenset(
                {target.http, *(r.http for r in self.requests if r.http is not None)}
            ),
            tls_overrides=tuple(dict.fromkeys(r.tls for r in self.requests if r.tls is not None)),
            any_https=bool(self.https_hosts()),
        )


def load_scenario(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    *,
    read_sources: bool = True,
    keep_reading: Callable[[], bool] | None = None,
) -> Scenario:
    """Read and validate the scenario at `path`. Raises `ScenarioError` listing every problem.
    With `read_sources=False` recorded sources are named, not read (nothing in `requests`
    comes from them): for a caller that streams them itself. `keep_reading`, when given, is
    asked every few thousand recorded lines whether to go on (a Ctrl-C while a large log is
    read stops the reading, not just the run after it)."""
    file = str(path)
    try:
        data = _read_bounded(path, MAX_SCENARIO_BYTES)
        if data is None:
            raise ScenarioError([Problem(file, 0, 0, "", "larger than 16 MiB: not a scenario")])
        # Newlines as a text-mode read gives them (the YAML positions count lines so).
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise ScenarioError([Problem(file, 0, 0, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(file, 0, 0, "", f"cannot read: {exc}")]) from None
    return parse_scenario(
        text,
        file,
        base_dir=Path(path).resolve().parent,
        environ=environ,
        read_sources=read_sources,
        keep_reading=keep_reading,
    )


def _read_bounded(path: str | os.PathLike[str], limit_bytes: int) -> bytes | None:
    """The file's bytes, or None past `limit_bytes`. Read, not sized: a device (/dev/zero) or
    a /proc file says it holds 0 bytes and never ends; a pipe (`<(envsubst < s.yaml)`) has no
    size at all and must still be read."""
    with open(path, "rb") as stream:
        data = stream.read(limit_bytes + 1)
    return None if len(data) > limit_bytes else data


def parse_scenario(
    text: str,
    file: str,
    *,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
    read_sources: bool = True,
    keep_reading: Callable[[], bool] | None = None,
) -> Scenario:
    """Validate scenario `text` (named `file` in messages)."""
    document, problems = read_yaml(text, file, os.environ if environ is None else environ)
    # Unset variables are reported with everything else wrong in the file, in one pass; other
    # problems of reading stop here (the data is not what the file says).
    unset = {format_path(path) for path in document.unset_paths}
    if any(problem.field not in unset for problem in problems):
        raise _scenario_error(document, problems)
    if not isinstance(document.data, dict):
        raise ScenarioError(
            [Problem(file, 1, 1, "", "expected a mapping with targets and requests")]
        )

    def also(more: Iterable[Problem]) -> list[Problem]:
        return problems + [problem for problem in more if problem.field not in unset]

    try:
        config = ScenarioFile.model_validate(document.data)
    except pydantic.ValidationError as exc:
        raise _scenario_error(
            document, also(_located(document, _without_typo_echoes(exc)))
        ) from None
    requests, expand_problems = _expand(config, document, base_dir)
    summaries = (
        _read_sources(config, document, base_dir, requests, expand_problems, keep_reading)
        if read_sources
        else []
    )
    problems = also(
        [
            *expand_problems,
            *_check_targets(config, document, base_dir),
            *_check_http(config, document),
            *_check_pace(config, document, requests),
            *_check_manifest_files(config, document, base_dir),
        ]
    )
    if problems:
        raise _scenario_error(document, problems)
    return Scenario(
        source=file,
        name=config.name or Path(file).stem,
        targets=config.targets,
        defaults=config.defaults,
        requests=tuple(_in_recorded_order(config, requests)),
        compare=config.compare,
        tls_probe=config.tls_probe,
        load=config.load,
        thresholds=tuple(config.thresholds),
        accept=tuple(config.accept),
        base_dir=base_dir,
        secrets=_secrets(config, document, requests),
        sources=tuple(summary.as_report() for summary in summaries),
        recorded=tuple(config.sources),
        selection=config.select,
        coverage=config.coverage,
        preflight=config.preflight,
        rollback_when=config.rollback_when,
    )


def _read_sources(
    config: ScenarioFile,
    document: SourceDocument,
    base_dir: Path,
    requests: list[RequestSpec],
    problems: list[Problem],
    keep_reading: Callable[[], bool] | None = None,
) -> list[SourceSummary]:
    """Append the selected requests of every recorded source to `requests`."""
    summaries = []
    for index, source in enumerate(config.sources):
        summary = SourceSummary(source.path)
        items = records(source, base_dir)
        if keep_reading is not None:
            items = _while(items, keep_reading, summary)
        try:
            requests.extend(select(items, selection_for(source, config.select), summary))
        except OSError as exc:
            where = ("sources", index, source.kind)
            problems.append(
                document.problem(where, f"cannot read {source.path}: {exc.strerror or exc}")
            )
        summaries.append(summary)
    return summaries


def _while(
    items: Iterator[Recorded | Skipped], keep_reading: Callable[[], bool], summary: SourceSummary
) -> Iterator[Recorded | Skipped]:
    """`items` until `keep_reading()` says no (asked every 4096 items); the summary says so."""
    for count, item in enumerate(items):
        if count % 4096 == 0 and not keep_reading():
            summary.first_problems.append(f"{summary.name}: reading stopped after {count} lines")
            return
        yield item


# Where an environment value can travel to the wire or into a report. A value shorter than
# four characters is redacted only when it was substituted into one of these (a port or a
# concurrency of 8 is no secret, and hiding every 8 would garble the report).
_REACHING_FIELDS = frozenset({"headers", "header_sets", "url", "hosts", "paths", "address", "body"})


def _secrets(
    config: ScenarioFile, document: SourceDocument, requests: list[RequestSpec]
) -> Secrets:
    reaching = {
        name
        for path, names in document.environment_paths.items()
        if _REACHING_FIELDS.intersection(str(part) for part in path)
        for name in names
    }
    environment = {
        value: name
        for value, name in document.environment_values.items()
        if len(value) >= 4 or name in reaching
    }
    headers = DEFAULT_SENSITIVE_HEADERS | {name.lower() for name in config.redact.headers}
    literals: set[str] = set()
    for request in requests:
        literals |= sensitive_literals(request.headers, headers)
    for side in ("baseline", "candidate"):
        literals |= sensitive_literals(getattr(config.targets, side).headers.items(), headers)
    literals |= _url_credentials(config)
    return Secrets(environment=environment, literals=frozenset(literals), headers=headers)


def _url_credentials(config: ScenarioFile) -> set[str]:
    found = set()
    for request in config.requests:
        try:
            _, userinfo = prepare_url(request.url)
        except WireError:
            continue
        if userinfo:
            # As written and as sent: `%2F` in a password is sent (and echoed) as `/`, a
            # spelling no encoding of the written form matches.
            user, _, password = userinfo.partition(":")
            decoded = (unquote(user), unquote(password))
            found.update({userinfo, ":".join(decoded), user, password, *decoded})
    return {value for value in found if value}


def _scenario_error(document: SourceDocument, problems: list[Problem]) -> ScenarioError:
    """The problems, sorted, with any environment value hidden (a message may quote input)."""
    redactor = Redactor(
        Secrets(environment=dict(document.environment_values)), secrets.token_bytes(16)
    )
    return ScenarioError(
        [
            Problem(p.file, p.line, p.column, p.field, redactor.text(p.message))
            for p in sorted(problems, key=_position)
        ]
    )


def _position(problem: Problem) -> tuple[int, int]:
    return (problem.line, problem.column)


# --- pydantic errors -> located problems --------------------------------------------------


def _located(document: SourceDocument, errors: list[Any]) -> Iterable[Problem]:
    for item in errors:
        path: FieldPath = tuple(part for part in item["loc"] if part != "[key]")
        kind, value = item["type"], item.get("input")
        if path in document.environment_paths:
            # Never quote a value that came from the environment: it may be a secret.
            value = _FromEnvironment(document.environment_paths[path])
        elif _QUIET_FIELDS.intersection(str(part) for part in path):
            # Nor a header value, a URL or a body: they carry credentials.
            value = _Described(value)
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


# Fields whose values messages describe by type instead of quoting.
_QUIET_FIELDS = frozenset({"headers", "header_sets", "url", "body", "redact"})


class _Described:
    """Stands for a value that may be a secret: `a list`, `an integer`, `a string`."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
        names |= {list: "a list", dict: "a mapping", type(None): "nothing"}
        return names.get(type(self.value), "a value")


class _FromEnvironment:
    """Stands for a value from the environment in messages: `the value of ${TOKEN}`."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def __repr__(self) -> str:
        return "the value of " + ", ".join(f"${{{name}}}" for name in dict.fromkeys(self.names))


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


def _check_url(
    url: str, path: FieldPath, document: SourceDocument
) -> tuple[str, str | None, list[Problem]]:
    """The URL as it will be sent, its `user:password` part if any, and its problems."""
    try:
        prepared, userinfo = prepare_url(url)
        parsed = URL(prepared, encoded=True)
        # yarl parses the authority lazily: ask for every part here, inside the try.
        scheme, host, _ = parsed.scheme, parsed.host, parsed.port
    except ValueError as exc:  # WireError is a ValueError
        return url, None, [document.problem(path, f"not a URL: {exc}")]
    if scheme not in ("http", "https") or not host:
        shown: Any = (
            _FromEnvironment(document.environment_paths[path])
            if path in document.environment_paths
            else _without_credentials(url)
        )
        return (
            url,
            None,
            [
                document.problem(
                    path,
                    "expected an absolute http:// or https:// URL with the production hostname; "
                    f"got {shown!r}",
                )
            ],
        )
    return prepared, userinfo, []


def _without_credentials(url: str) -> str:
    """`url` for a message: any `user:password@` replaced."""
    return re.sub(r"(?<=//)[^/?#]*@", "…@", url) if "@" in url else url


def _credentials_header(userinfo: str) -> tuple[str, str]:
    """`user:password@` in a URL becomes Basic authentication, as curl does (RFC 7617)."""
    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    return "Authorization", "Basic " + base64.b64encode(pair).decode("ascii")


# As long as a load's duration_s may be: a recording that would take longer to replay is most
# likely one stray line with a wrong clock, and would otherwise hold the run for years.
MAX_RECORDED_SPAN_S: Final = 7 * 24 * 3600


def _check_manifest_files(
    config: ScenarioFile, document: SourceDocument, base_dir: Path
) -> Iterable[Problem]:
    if config.preflight is not None:
        named: list[tuple[FieldPath, str]] = [
            (("preflight", "files", i), n) for i, n in enumerate(config.preflight.files)
        ]
        if config.preflight.secrets is not None:
            named.append((("preflight", "secrets"), config.preflight.secrets))
        for where, name in named:
            if (problem := file_problem(resolved_path(base_dir, name))) is not None:
                yield document.problem(where, problem)
    if config.coverage is None:
        return
    for key in ("ingress", "routes"):
        for index, name in enumerate(getattr(config.coverage, key)):
            if (problem := file_problem(resolved_path(base_dir, name))) is not None:
                yield document.problem(("coverage", key, index), problem)


def _in_recorded_order(config: ScenarioFile, requests: list[RequestSpec]) -> list[RequestSpec]:
    """At the recorded pace, every source's requests in the order of their recorded times
    (a stable sort): several sources interleave as they were recorded, and a log written
    when each request ended replays in the order the requests arrived."""
    if config.load is None or config.load.pace != "recorded":
        return requests
    return sorted(requests, key=lambda request: request.recorded_at_s or 0.0)


def _check_pace(
    config: ScenarioFile, document: SourceDocument, requests: list[RequestSpec]
) -> Iterable[Problem]:
    if config.load is None or config.load.pace != "recorded":
        return
    untimed = [request.name for request in requests if request.recorded_at_s is None]
    if untimed:
        yield document.problem(
            ("load", "pace"),
            f"pace: recorded needs a recorded time on every request; {len(untimed)} have none "
            f"(first: {untimed[0]!r}): requests written by hand, or a log format without "
            "$time_local, $time_iso8601 or $msec",
        )
        return
    times = [request.recorded_at_s or 0.0 for request in requests]
    if times and (max(times) - min(times)) / config.load.speed > MAX_RECORDED_SPAN_S:
        days = (max(times) - min(times)) / 86400
        yield document.problem(
            ("load", "pace"),
            f"the recorded times span {days:.3g} days: at speed {config.load.speed:g} the "
            f"replay would last more than {MAX_RECORDED_SPAN_S // 86400} days; raise "
            "load.speed, or select a shorter stretch of the recording",
        )


def _check_targets(
    config: ScenarioFile, document: SourceDocument, base_dir: Path
) -> Iterable[Problem]:
    for side in ("baseline", "candidate"):
        target = getattr(config.targets, side)
        yield from _check_headers(target.headers, ("targets", side, "headers"), document)
        for name in target.headers:
            if unsafe_reason("GET", [(name, "")], None) is not None:
                yield document.problem(
                    ("targets", side, "headers", name),
                    "a method override cannot be a target header: it would turn every request "
                    "into another method; put it on the one request that needs it",
                    prefer_key=True,
                )
        for key in ("ca", "client_cert", "client_key"):
            value = getattr(target.tls, key)
            if value is not None and (
                problem := file_problem(resolved_path(base_dir, value), READ_AGAIN)
            ):
                yield document.problem(("targets", side, "tls", key), problem)
        if target.tls.client_key and not target.tls.client_cert:
            where = ("targets", side, "tls", "client_key")
            yield document.problem(where, "client_key needs client_cert")
        yield from tls_file_problems(
            target.tls, ("targets", side, "tls"), document, lambda v: resolved_path(base_dir, v)
        )


def _check_http(config: ScenarioFile, document: SourceDocument) -> Iterable[Problem]:
    """HTTP/2 is the lean transport's: the aiohttp client speaks HTTP/1.1 only."""
    if config.defaults.transport != "aiohttp":
        return
    where: list[FieldPath] = [
        ("targets", side, "http")
        for side in ("baseline", "candidate")
        if getattr(config.targets, side).http != "1.1"
    ]
    where += [
        ("requests", index, "http")
        for index, request in enumerate(config.requests)
        if request.http not in (None, "1.1")
    ]
    where += [
        ("requests", index, "grpc")
        for index, request in enumerate(config.requests)
        if request.grpc is not None and request.http is None
    ]
    where += [
        ("matrix", index, "http")
        for index, matrix in enumerate(config.matrix)
        if matrix.http not in (None, "1.1")
    ]
    for path in where:
        yield document.problem(
            path,
            f"{'gRPC (HTTP/2)' if path[-1] == 'grpc' else 'HTTP/2'} needs the lean transport; "
            "defaults.transport: aiohttp speaks HTTP/1.1",
        )


def _request_tls(
    request: Request,
    url: str,
    url_valid: bool,
    path: FieldPath,
    document: SourceDocument,
    base_dir: Path,
) -> tuple[RequestTls | None, list[Problem]]:
    """A request's `tls` as plain data for the transports (its CA path resolved), and its
    problems: TLS on a plain HTTP URL, a CA that is missing or unusable."""
    settings = request.tls
    if settings is None:
        return None, []
    where: FieldPath = (*path, "tls")
    problems = []
    if url_valid and URL(url, encoded=True).scheme != "https":
        problems.append(document.problem(where, "tls applies to https:// URLs only"))
    ca = None
    if settings.ca is not None:
        ca_path = resolved_path(base_dir, settings.ca)
        if (problem := file_problem(ca_path, READ_AGAIN)) is not None:
            problems.append(document.problem((*where, "ca"), problem))
        ca = str(ca_path)
    problems += tls_file_problems(settings, where, document, lambda v: resolved_path(base_dir, v))
    versions = sorted(settings.versions or (), key=TLS_VERSIONS.index)
    return (
        RequestTls(
            ca=ca,
            insecure=settings.insecure,
            min_version=versions[0] if versions else None,
            max_version=versions[-1] if versions else None,
            sni=settings.sni,
        ),
        problems,
    )


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
        file = resolved_path(base_dir, body.file)
        try:
            data = _read_bounded(file, MAX_GENERATED_BODY_BYTES)
            if data is None:
                message = f"{file} is larger than 64 MiB; a body is held in memory for the run"
                return None, headers, [document.problem((*path, "file"), message)]
            return data, headers, []
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

    # What every request is sent with besides its own headers, where it is written.
    shared_headers: list[tuple[FieldPath, Mapping[str, str]]] = [
        (("defaults", "headers"), config.defaults.headers),
        (("targets", "baseline", "headers"), config.targets.baseline.headers),
        (("targets", "candidate", "headers"), config.targets.candidate.headers),
    ]
    for index, request in enumerate(config.requests):
        path: FieldPath = ("requests", index)
        claim_name(request.name, (*path, "name"))
        url, userinfo, url_problems = _check_url(request.url, (*path, "url"), document)
        problems += url_problems
        problems += _check_headers(request.headers, (*path, "headers"), document)
        tls, tls_problems = _request_tls(request, url, not url_problems, path, document, base_dir)
        problems += tls_problems
        body: bytes | None = None
        body_headers: dict[str, str] = {}
        if userinfo:
            body_headers.update([_credentials_header(userinfo)])
        if request.body is not None:
            body, body_content_type, body_problems = _body_bytes(
                request.body, (*path, "body"), document, base_dir
            )
            body_headers.update(body_content_type)
            problems += body_problems
        grpc = None
        if request.grpc is not None:
            parts = grpc_parts(request, url, path, document, shared_headers)
            # A default header every gRPC call refuses is one line, not one per call.
            problems += [p for p in parts.problems if p not in problems]
            grpc, url, body = parts.call, parts.url, parts.body
            body_headers.update(GRPC_HEADERS)
        spec = RequestSpec(
            name=request.name,
            method="POST" if request.grpc is not None else request.method,
            url=url,
            headers=_merge_headers(config.defaults.headers, body_headers, request.headers),
            body=body,
            repeat=request.repeat,
            allow_unsafe=request.allow_unsafe,
            repeat_under_load=request.repeat_under_load,
            tls=tls,
            http="2" if request.grpc is not None else request.http,
            grpc=grpc,
            websocket=None
            if request.websocket is None
            else WebSocketProbe(
                tuple(request.websocket.subprotocols),
                tuple(request.websocket.extensions),
                request.websocket.message,
                request.websocket.idle_s,
            ),
            origin=request.origin,
            # Pair by pair the backend of a random split differs by chance: compared in
            # proportion instead (shadowdiff/report/split_finding.py).
            ignore_kinds=frozenset(request.ignore)
            | ({"backend"} if request.backend_split else set()),
            backend_split=request.backend_split,
        )
        problems += _check_unsafe(spec, config, path, document)
        problems += _check_websocket(spec, config, path, document)
        # A default or target header is one line, not one per request.
        problems += [
            p
            for p in _check_http2_headers(spec, request.headers, config, path, document)
            if p not in problems
        ]
        specs.append(spec)

    expanded_total = len(config.requests)
    for index, matrix in enumerate(config.matrix):
        path = ("matrix", index)
        expanded_total += _matrix_size(matrix)
        if expanded_total > MAX_REQUESTS:
            problems.append(
                document.problem(
                    path,
                    f"the scenario expands to more than {MAX_REQUESTS:,} distinct requests "
                    f"(this matrix alone to {_matrix_size(matrix):,}); use fewer combinations, "
                    "and `repeat` or a `load` section for volume",
                )
            )
            break
        for set_index, header_set in enumerate(matrix.header_sets):
            problems += _check_headers(header_set, (*path, "header_sets", set_index), document)
        expanded = _expand_matrix(matrix, config.defaults)
        reported: set[str] = set()
        for spec in expanded:
            claim_name(spec.name, (*path, "name"))
            # A matrix's header sets are checked as written; the defaults' and targets'
            # headers here as for any request.
            for problem in (
                *_check_unsafe(spec, config, path, document),
                *_check_http2_headers(spec, {}, config, path, document),
            ):
                if problem.message not in reported and problem not in problems:
                    # One line per reason, not per request.
                    reported.add(problem.message)
                    problems.append(problem)
        specs += expanded

    if not config.requests and not config.matrix and not config.sources:
        problems.append(
            document.problem(("requests",), "no requests: add requests or matrix entries")
        )
    return specs, problems


def _check_unsafe(
    spec: RequestSpec, config: ScenarioFile, path: FieldPath, document: SourceDocument
) -> list[Problem]:
    """Nothing that may change state on the backends is sent unless the request allows it."""
    if spec.repeat_under_load and not spec.allow_unsafe:
        return [
            document.problem(
                (*path, "repeat_under_load"), "repeat_under_load needs allow_unsafe: true"
            )
        ]
    if spec.allow_unsafe:
        return []
    # Target headers go out with every request: a method override there counts too.
    target_headers = [
        header
        for side in ("baseline", "candidate")
        for header in getattr(config.targets, side).headers.items()
    ]
    reason = unsafe_reason(
        spec.method, (*spec.headers, *target_headers), spec.body, grpc_health=spec.grpc_health
    )
    if reason is None:
        return []
    field = (
        "method"
        if spec.method not in SAFE_METHODS
        else "body"
        if spec.body is not None
        else "headers"
    )
    if path[0] == "matrix" and field == "method":
        field = "methods"
    if spec.grpc is not None and field != "headers":
        field, reason = "grpc", f"the gRPC method {quoted(spec.grpc.method)} may change state"
    return [
        document.problem(
            (*path, field),
            f"{reason}, and it would reach the backends twice (once through each entry "
            "point); set allow_unsafe: true to send it",
        )
    ]


def _check_http2_headers(
    spec: RequestSpec,
    own_headers: Mapping[str, str],
    config: ScenarioFile,
    path: FieldPath,
    document: SourceDocument,
) -> list[Problem]:
    """A request that may go over HTTP/2 (`http: "2"`, or `auto` over TLS, on either side)
    carries no field HTTP/2 forbids (RFC 9113 section 8.2.2): the transport would refuse to
    send it, and nothing would be compared. gRPC calls are checked with their other rules;
    a WebSocket probe is HTTP/1.1 whatever the setting."""
    if spec.grpc is not None or spec.websocket is not None:
        return []
    over_tls = spec.url.startswith("https:")
    problems = []
    for side in SIDES:
        target = getattr(config.targets, side)
        version = spec.http or target.http
        if not (version == "2" or (version == "auto" and over_tls)):
            continue
        sources: list[tuple[FieldPath, Iterable[tuple[str, str]]]] = [
            ((*path, "headers"), own_headers.items()),
            (("defaults", "headers"), config.defaults.headers.items()),
            (("targets", side, "headers"), target.headers.items()),
        ]
        for where, headers in sources:
            for name, value in headers:
                if http2_forbidden(name, value):
                    problems.append(
                        document.problem(
                            (*where, name),
                            f"{name} is connection-specific, which HTTP/2 forbids, and "
                            f"{'this request' if where[0] == path[0] else 'a request'} may go "
                            "over HTTP/2 (http: 2, or auto over TLS): leave it out or set "
                            'http: "1.1"',
                        )
                    )
    return [p for i, p in enumerate(problems) if p not in problems[:i]]


def _check_websocket(
    spec: RequestSpec, config: ScenarioFile, path: FieldPath, document: SourceDocument
) -> list[Problem]:
    """A WebSocket probe is an HTTP/1.1 GET without a body whose upgrade headers are its own,
    sent by the lean transport; its message is sent only with allow_unsafe."""
    if spec.websocket is None:
        return []
    if spec.grpc is not None:
        return [
            document.problem(
                (*path, "websocket"),
                "a request is a WebSocket probe or a gRPC call, not both: write two requests",
            )
        ]
    problems = []
    if spec.method != "GET":
        problems.append(document.problem((*path, "method"), "a WebSocket upgrade is a GET"))
    if spec.body is not None:
        problems.append(
            document.problem((*path, "body"), "a WebSocket upgrade has no body; see message")
        )
    for name, _ in spec.headers:
        if name.lower() in WEBSOCKET_HEADERS:
            problems.append(
                document.problem(
                    (*path, "headers", name), f"{name} is set by the WebSocket probe itself"
                )
            )
    if spec.http == "2":
        problems.append(
            document.problem(
                (*path, "http"),
                "a WebSocket probe speaks HTTP/1.1 (over HTTP/2, RFC 8441, is not supported); "
                'leave http out or set "1.1"',
            )
        )
    if config.defaults.transport == "aiohttp":
        problems.append(
            document.problem(
                (*path, "websocket"),
                "the WebSocket probe needs the lean transport; defaults.transport: aiohttp "
                "does not send it",
            )
        )
    total_s = config.defaults.timeouts.total_s
    if spec.websocket.idle_s >= total_s:
        problems.append(
            document.problem(
                (*path, "websocket", "idle_s"),
                f"must be shorter than defaults.timeouts.total_s ({total_s:g} s), which bounds "
                "the whole probe, the idle time included",
            )
        )
    if spec.websocket.message is not None and not spec.allow_unsafe:
        problems.append(
            document.problem(
                (*path, "websocket", "message"),
                f"{WEBSOCKET_MESSAGE_UNSAFE}, and it would reach the backends twice (once "
                "through each entry point); set allow_unsafe: true to send it",
            )
        )
    return problems


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
                                allow_unsafe=matrix.allow_unsafe,
                                repeat_under_load=matrix.repeat_under_load,
                                http=matrix.http,
                            )
                        )
    return specs
