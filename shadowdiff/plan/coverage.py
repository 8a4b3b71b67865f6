"""Route coverage: which Ingress rules and which route rules (HTTPRoute, GRPCRoute) received
at least one request of a run, and which none. Pure: rules and the requests sent in, counts
and names out.

Matching follows each side's documented semantics, with one approximation said aloud: a
regular-expression path (ingress-nginx use-regex, HTTPRoute RegularExpression) counts as
matched when the request path starts with the regex's literal prefix. Running a manifest's
regex against request paths would let one hostile pattern hang the report (Python's `re` has no
time limit), and the literal prefix is what `shadowdiff plan` probes.
- Ingress (networking.k8s.io/v1): Exact is equality; Prefix matches whole path elements
  (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`); ImplementationSpecific is
  ingress-nginx's plain prefix; regex locations ignore case. A rule without host matches all.
- HTTPRoute (gateway.networking.k8s.io/v1): hostnames with `*.` wildcards (empty: all);
  PathPrefix element-wise, Exact, RegularExpression as above; `method`, exact `headers` and
  exact `queryParams` must all hold; a rule without matches is PathPrefix `/`.
- GRPCRoute (gateway.networking.k8s.io/v1): a method match is a path, `/service/method`
  exactly, `/service/` as a prefix (service only), or ending in `/method` (method only); exact
  `headers` must hold. A RegularExpression method match counts any call to the host (the
  same refusal to run a manifest's regex, with no literal prefix to stand for it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from yarl import URL

from shadowdiff.plan.ingress import Ingress
from shadowdiff.plan.preflight import host_matches, objects

_REGEX_META: Final = re.compile(r"[\\^$.|?*+()\[\]{}]")


@dataclass(frozen=True, slots=True)
class SentRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _PathMatch:
    # Exact, Prefix (element-wise), Plain (string prefix), Regex (literal prefix), Suffix
    # (a GRPCRoute match of a method in any service)
    kind: str
    value: str
    ignore_case: bool = False


@dataclass(frozen=True, slots=True)
class _Match:
    path: _PathMatch
    method: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # for people: where the rule is
    hosts: tuple[str, ...]  # empty: every host
    matches: tuple[_Match, ...]


@dataclass(slots=True)
class Coverage:
    rules: int = 0
    covered: int = 0
    uncovered: list[str] = field(default_factory=list)


def _literal_prefix(pattern: str) -> str:
    meta = _REGEX_META.search(pattern)
    return pattern[: meta.start()] if meta else pattern


def _path_matches(match: _PathMatch, path: str) -> bool:
    value, candidate = match.value, path
    if match.ignore_case:
        value, candidate = value.lower(), candidate.lower()
    if match.kind == "Exact":
        return candidate == value
    if match.kind == "Plain":
        return candidate.startswith(value)
    if match.kind == "Regex":
        return candidate.startswith(_literal_prefix(value))
    if match.kind == "Suffix":
        return candidate.endswith(value)
    # Prefix: whole path elements; a trailing slash in the rule is ignored.
    trimmed = value.rstrip("/")
    return trimmed == "" or candidate == trimmed or candidate.startswith(trimmed + "/")


@dataclass(frozen=True, slots=True)
class _Parsed:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]


def _parsed_by_host(sent: Sequence[SentRequest]) -> dict[str, list[_Parsed]]:
    """Each distinct request once, parsed once, by host: a recorded run may send 100,000."""
    by_host: dict[str, dict[tuple[object, ...], _Parsed]] = {}
    for request in sent:
        try:
            url = URL(request.url, encoded=True)
            host = (url.host or "").rstrip(".").lower()
            path = url.raw_path or "/"
            query = tuple(parse_qsl(url.raw_query_string, keep_blank_values=True))
        except ValueError:
            continue
        headers = tuple((name.lower(), value) for name, value in request.headers)
        key = (request.method, path, query, headers)
        by_host.setdefault(host, {}).setdefault(
            key, _Parsed(request.method, path, query, dict(headers))
        )
    return {host: list(requests.values()) for host, requests in by_host.items()}


def _covers(rule: Rule, request: _Parsed) -> bool:
    path, query, headers = request.path, request.query, request.headers
    for match in rule.matches:
        if match.method is not None and match.method != request.method:
            continue
        if any(headers.get(name.lower()) != value for name, value in match.headers):
            continue
        if any((name, value) not in query for name, value in match.query):
            continue
        if _path_matches(match.path, path):
            return True
    return False


def ingress_rules(ingresses: Iterable[Ingress]) -> list[Rule]:
    rules = []
    for ingress in ingresses:
        regex = ingress.annotations.get("use-regex", "").lower() == "true" or (
            "rewrite-target" in ingress.annotations
        )
        for rule in ingress.rules:
            hosts = (rule.host,) if rule.host else ()
            for entry in rule.paths:
                if regex and entry.path_type == "ImplementationSpecific":
                    path = _PathMatch("Regex", entry.path, ignore_case=True)
                elif entry.path_type == "Exact":
                    path = _PathMatch("Exact", entry.path)
                elif entry.path_type == "Prefix":
                    path = _PathMatch("Prefix", entry.path)
                else:
                    path = _PathMatch("Plain", entry.path)
                where = f"Ingress {ingress.key} rule {rule.index} path {entry.index}"
                shown = f"{rule.host or '*'} {entry.path_type} {entry.path}"
                rules.append(Rule(f"{where} ({shown})", hosts, (_Match(path),)))
    return rules


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _pairs(entries: Any) -> tuple[tuple[str, str], ...]:
    """Exact header or query matches; other types (RegularExpression) are not checked."""
    found = []
    for entry in _sequence(entries):
        item = _mapping(entry)
        if item.get("type", "Exact") == "Exact" and isinstance(item.get("name"), str):
            found.append((item["name"], str(item.get("value", ""))))
    return tuple(found)


def _grpc_match(match: dict[str, Any]) -> _Match:
    """A GRPCRoute match as the path gRPC calls it by (`/service/method`); the HTTP method
    is always POST, so none is checked."""
    method = _mapping(match.get("method"))
    service, name = method.get("service"), method.get("method")
    service = service if isinstance(service, str) and service else None
    name = name if isinstance(name, str) and name else None
    if method.get("type", "Exact") != "Exact" or (service is None and name is None):
        path = _PathMatch("Prefix", "/")
    elif service is not None and name is not None:
        path = _PathMatch("Exact", f"/{service}/{name}")
    elif service is not None:
        path = _PathMatch("Prefix", f"/{service}")
    else:
        path = _PathMatch("Suffix", f"/{name}")
    return _Match(path, None, _pairs(match.get("headers")))


def route_rules(documents: Iterable[Any]) -> list[Rule]:
    """The rules of every HTTPRoute and GRPCRoute among the documents."""
    rules = []
    for item in objects(documents):
        route_kind = item.get("kind")
        if route_kind not in ("HTTPRoute", "GRPCRoute"):
            continue
        metadata = _mapping(item.get("metadata"))
        key = f"{metadata.get('namespace') or 'default'}/{metadata.get('name') or 'unnamed'}"
        spec = _mapping(item.get("spec"))
        hosts = tuple(h for h in _sequence(spec.get("hostnames")) if isinstance(h, str) and h)
        for index, rule in enumerate(_sequence(spec.get("rules"))):
            matches = []
            for entry in _sequence(_mapping(rule).get("matches")) or [{}]:
                match = _mapping(entry)
                if route_kind == "GRPCRoute":
                    matches.append(_grpc_match(match))
                    continue
                path = _mapping(match.get("path"))
                kind = path.get("type", "PathPrefix")
                value = path.get("value", "/")
                value = value if isinstance(value, str) else "/"
                path_match = _PathMatch(
                    {"Exact": "Exact", "RegularExpression": "Regex"}.get(str(kind), "Prefix"),
                    value,
                )
                method = match.get("method")
                matches.append(
                    _Match(
                        path_match,
                        method if isinstance(method, str) else None,
                        _pairs(match.get("headers")),
                        _pairs(match.get("queryParams")),
                    )
                )
            rules.append(Rule(f"{route_kind} {key} rule {index}", hosts, tuple(matches)))
    return rules


def coverage(rules: Sequence[Rule], sent: Sequence[SentRequest]) -> Coverage:
    result = Coverage(rules=len(rules))
    by_host = _parsed_by_host(sent)
    for rule in rules:
        hosts = [
            host
            for host in by_host
            if not rule.hosts or any(host_matches(h, host) for h in rule.hosts)
        ]
        if any(_covers(rule, request) for host in hosts for request in by_host[host]):
            result.covered += 1
        else:
            result.uncovered.append(rule.name)
    return result
