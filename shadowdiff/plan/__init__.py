"""From manifests to proof. `shadowdiff plan INGRESS.yaml...` reads Ingress resources
(`ingress`), decides what to send to prove each rule and annotation (`probes`), and writes a
scenario that says where every request comes from and what was not probed (`write`).
`shadowdiff preflight` reads the Gateway API objects of the new entry point and lists what
keeps them from serving, before any request is sent (`preflight`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from shadowdiff.endpoint import expanded_path
from shadowdiff.errors import Problem, ScenarioError
from shadowdiff.plan.coverage import (
    Coverage,
    Rule,
    SentRequest,
    coverage,
    ingress_rules,
    route_rules,
)
from shadowdiff.plan.ingress import Ingress, read_ingresses
from shadowdiff.plan.preflight import Finding, objects, preflight, secret_names
from shadowdiff.plan.probes import Plan, plan_ingresses
from shadowdiff.plan.write import scenario_text
from shadowdiff.scenario.yamlsource import MAX_VALUES, read_yaml_documents

# `kubectl get ingress -A -o yaml` for a large cluster stays well under this.
MAX_MANIFEST_BYTES: Final = 64 * 1024**2

__all__ = [
    "Coverage",
    "Finding",
    "Ingress",
    "Plan",
    "Rule",
    "SentRequest",
    "coverage",
    "coverage_rules",
    "plan_files",
    "plan_ingresses",
    "preflight_files",
    "read_ingresses",
    "scenario_text",
]


def _read_text(path: str) -> tuple[str, Problem | None]:
    """A manifest file's text, or the located reason it cannot be read."""
    try:
        with Path(path).open("rb") as file:
            raw = file.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        return "", Problem(path, 0, 0, "", f"cannot read: {exc.strerror or exc}")
    if len(raw) > MAX_MANIFEST_BYTES:
        return "", Problem(path, 0, 0, "", "larger than 64 MiB: not a manifest file")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return "", Problem(path, 0, 0, "", f"not UTF-8 (byte {exc.start + 1})")


def _read_documents(text: str, path: str) -> tuple[list[object], list[Problem]]:
    """The YAML documents of a manifest file. The cap on values grows with the file: a real
    manifest holds fewer values than bytes, while an alias bomb ("billion laughs") expands
    to far more values than its size, and is still refused after that many."""
    max_values = max(MAX_VALUES, len(text.encode()))
    return read_yaml_documents(text, path, max_values=max_values)


def _documents_of(paths: Sequence[str], problems: list[Problem]) -> Iterator[tuple[str, list[Any]]]:
    """Each readable file's path and YAML documents; what cannot be read goes to
    `problems`."""
    for path in paths:
        text, problem = _read_text(path)
        if problem is not None:
            problems.append(problem)
            continue
        documents, read_problems = _read_documents(text, path)
        problems += read_problems
        yield path, documents


def plan_files(paths: Sequence[str], *, allow_unsafe: bool = False) -> tuple[str, list[str]]:
    """The scenario text planned from the Ingress resources in `paths`, and notes about
    objects that were skipped. Raises `ScenarioError` (located) for a file that cannot be
    read as YAML, or when no file holds an Ingress."""
    ingresses: list[Ingress] = []
    notes: list[str] = []
    problems: list[Problem] = []
    for path, documents in _documents_of(paths, problems):
        found, skipped = read_ingresses(documents, path)
        ingresses += found
        notes += skipped
    if not problems and not ingresses:
        problems.append(Problem(paths[0] if paths else "-", 0, 0, "", "no Ingress found"))
    if problems:
        raise ScenarioError(problems)
    plan = plan_ingresses(ingresses, allow_unsafe=allow_unsafe)
    return scenario_text(plan, list(paths), len(ingresses)), notes


def preflight_files(paths: Sequence[str], secrets_path: str | None = None) -> list[Finding]:
    """Every reason the Gateway API objects in `paths` cannot serve as configured (see
    `preflight`). Raises `ScenarioError` (located) for a file that cannot be read."""
    documents: list[object] = []
    problems: list[Problem] = []
    for _, found in _documents_of(paths, problems):
        documents += found
    secrets = None
    if secrets_path is not None:
        text, problem = _read_text(secrets_path)
        if problem is not None:
            problems.append(problem)
        secrets = secret_names(text)
    items = list(objects(documents))
    gateway_kinds = {"GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute"}
    if not problems and not any(item.get("kind") in gateway_kinds for item in items):
        # An empty file (a failed kubectl get) must not read as "nothing wrong".
        problems.append(
            Problem(paths[0] if paths else "-", 0, 0, "", "no GatewayClass, Gateway or route found")
        )
    if problems:
        raise ScenarioError(problems)
    return preflight(items, secrets)


def coverage_rules(
    ingress_files: Sequence[str], route_files: Sequence[str], base_dir: Path
) -> tuple[list[Rule], list[Rule]]:
    """The Ingress rules and route rules (HTTPRoute, GRPCRoute) a run's coverage is checked
    against. Raises `ScenarioError` (located) for a file that cannot be read."""
    problems: list[Problem] = []

    def resolved(names: Sequence[str]) -> list[str]:
        paths = (expanded_path(name) for name in names)
        return [str(p if p.is_absolute() else base_dir / p) for p in paths]

    ingress: list[Rule] = []
    for path, documents in _documents_of(resolved(ingress_files), problems):
        ingress += ingress_rules(read_ingresses(documents, path)[0])
    routes: list[Rule] = []
    for _, documents in _documents_of(resolved(route_files), problems):
        routes += route_rules(documents)
    if problems:
        raise ScenarioError(problems)
    return ingress, routes
