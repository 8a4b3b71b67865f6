"""From manifests to a scenario: `shadowdiff plan INGRESS.yaml...` reads Ingress resources
(`ingress`), decides what to send to prove each rule and annotation (`probes`), and writes a
scenario that says where every request comes from and what was not probed (`write`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from shadowdiff.errors import Problem, ScenarioError
from shadowdiff.plan.ingress import Ingress, read_ingresses
from shadowdiff.plan.probes import Plan, plan_ingresses
from shadowdiff.plan.write import scenario_text
from shadowdiff.scenario.yamlsource import read_yaml_documents

# `kubectl get ingress -A -o yaml` for a large cluster stays well under this.
MAX_MANIFEST_BYTES: Final = 64 * 1024**2

__all__ = ["Ingress", "Plan", "plan_files", "plan_ingresses", "read_ingresses", "scenario_text"]


def plan_files(paths: Sequence[str], *, allow_unsafe: bool = False) -> tuple[str, list[str]]:
    """The scenario text planned from the Ingress resources in `paths`, and notes about
    objects that were skipped. Raises `ScenarioError` (located) for a file that cannot be
    read as YAML, or when no file holds an Ingress."""
    ingresses: list[Ingress] = []
    notes: list[str] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            with Path(path).open("rb") as file:
                raw = file.read(MAX_MANIFEST_BYTES + 1)
        except OSError as exc:
            problems.append(Problem(path, 0, 0, "", f"cannot read: {exc.strerror or exc}"))
            continue
        if len(raw) > MAX_MANIFEST_BYTES:
            problems.append(Problem(path, 0, 0, "", "larger than 64 MiB: not a manifest file"))
            continue
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problems.append(Problem(path, 0, 0, "", f"not UTF-8 (byte {exc.start + 1})"))
            continue
        documents, read_problems = read_yaml_documents(text, path)
        problems += read_problems
        found, skipped = read_ingresses(documents, path)
        ingresses += found
        notes += skipped
    if not problems and not ingresses:
        problems.append(Problem(paths[0] if paths else "-", 0, 0, "", "no Ingress found"))
    if problems:
        raise ScenarioError(problems)
    plan = plan_ingresses(ingresses, allow_unsafe=allow_unsafe)
    return scenario_text(plan, list(paths), len(ingresses)), notes
