"""`shadowdiff schema` agrees with the loader: every scenario in the repository and every README
example validates against the printed schema with a real JSON Schema validator, and a file the
schema rejects is one the loader rejects too."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .test_readme import yaml_blocks

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    printed = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "schema"], capture_output=True, text=True, check=True
    ).stdout
    schema = json.loads(printed)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def as_editor_sees(text: str) -> Any:
    """The YAML as a language server reads it: dates are text."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    return plain(yaml.safe_load(text))


def errors(validator: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_scenario_in_the_repository_validates(
    validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    assert errors(validator, as_editor_sees(path.read_text())) == []


def test_every_readme_example_validates(validator: jsonschema.Draft202012Validator) -> None:
    blocks = yaml_blocks()
    full = as_editor_sees(blocks[0])
    assert errors(validator, full) == []
    for block in blocks[1:]:
        merged = dict(full)
        for key, value in as_editor_sees(block).items():
            both_maps = isinstance(value, dict) and isinstance(merged.get(key), dict)
            merged[key] = {**merged[key], **value} if both_maps else value
        assert errors(validator, merged) == [], block


@pytest.mark.parametrize(
    "fragment",
    [
        {"defaults": {"body_capture": "64KiB", "concurrency": "${CONCURRENCY}"}},
        {
            "requests": [
                {
                    "name": "a",
                    "url": "https://a.example.com/",
                    "method": "POST",
                    "allow_unsafe": True,
                    "body": {"size": "2MiB"},
                }
            ]
        },
        {"thresholds": ["candidate.p99 < 250ms", {"check": "ratio.p99 < 1.2", "request": "api *"}]},
        {
            "targets": {
                "baseline": {"address": "${IP}", "ports": {"https": "${PORT:-443}"}},
                "candidate": {"address": "10.0.0.2"},
            }
        },
    ],
    ids=["sizes-and-env-number", "body-size", "string-thresholds", "env-port"],
)
def test_forms_the_loader_accepts_are_in_the_schema(
    validator: jsonschema.Draft202012Validator, fragment: dict[str, Any]
) -> None:
    document: dict[str, Any] = {
        "targets": {"baseline": {"address": "10.0.0.1"}, "candidate": {"address": "10.0.0.2"}},
        "requests": [{"name": "a", "url": "https://a.example.com/"}],
    }
    document.update(fragment)
    assert errors(validator, document) == []


def test_the_schema_still_rejects_what_the_loader_rejects(
    validator: jsonschema.Draft202012Validator,
) -> None:
    document = {
        "targets": {"baseline": {"address": "10.0.0.1", "ports": {"https": 70000}}, "candidat": {}},
        "requests": [{"name": "a", "url": "https://a.example.com/", "method": "GTE"}],
        "defaults": {"body_capture": "lots"},
    }
    found = errors(validator, document)
    assert len(found) >= 3, found
