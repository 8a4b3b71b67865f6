"""The Kubernetes manifests in deploy/ pass an offline check against the Kubernetes OpenAPI
schemas (kubernetes-validate ships them: no API server is needed, unlike kubectl --dry-run),
and the Indexed Job passes its shard count as shadowdiff reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

DEPLOY = Path(__file__).parents[1] / "deploy"
# The oldest Kubernetes the Job's fields need: podFailurePolicy is GA in 1.31.
KUBERNETES_VERSION = "1.31"


def _documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


@pytest.mark.parametrize("name", ["shard-job.yaml", "echo.yaml"])
def test_manifest_passes_the_kubernetes_schema_strictly(name: str) -> None:
    for document in _documents(name):
        # strict: a field the schema does not know (a typo) fails too.
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_fails_the_same_check() -> None:
    job = next(d for d in _documents("shard-job.yaml") if d["kind"] == "Job")
    job["spec"]["completionMod"] = job["spec"].pop("completionMode")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_the_indexed_job_passes_its_completions_as_the_shard_count() -> None:
    job = next(d for d in _documents("shard-job.yaml") if d["kind"] == "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"]
    container = spec["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["SHADOWDIFF_SHARDS"] == str(spec["completions"])
    assert "--shard auto" in container["args"][0]
