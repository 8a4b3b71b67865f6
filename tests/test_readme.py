"""The README's scenario examples are valid scenarios: the full one, and each fragment merged
into it, so that the documentation cannot drift from the format."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shadowdiff.scenario import parse_scenario

README = Path(__file__).parents[1] / "README.md"
ENVIRON = {"GATEWAY_IP": "198.51.100.7", "TOKEN": "example-token"}


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_a_full_example_and_fragments() -> None:
    blocks = yaml_blocks()
    assert len(blocks) >= 4 and "targets:" in blocks[0]


@pytest.mark.parametrize("index", range(1, len(yaml_blocks())))
def test_readme_fragment_is_valid_in_the_full_example(index: int, tmp_path: Path) -> None:
    (tmp_path / "gateway-ca.pem").write_text(
        ""
    )  # the example names it; only its presence is checked
    full: dict[str, Any] = yaml.safe_load(yaml_blocks()[0])
    fragment: dict[str, Any] = yaml.safe_load(yaml_blocks()[index])
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(full.get(key), dict):
            full[key] = {**full[key], **value}
        else:
            full[key] = value
    scenario = parse_scenario(yaml.safe_dump(full), "README.md", base_dir=tmp_path, environ=ENVIRON)
    assert scenario.requests


def test_readme_full_example_is_valid(tmp_path: Path) -> None:
    (tmp_path / "gateway-ca.pem").write_text("")
    scenario = parse_scenario(yaml_blocks()[0], "README.md", base_dir=tmp_path, environ=ENVIRON)
    assert scenario.targets.candidate.address == "198.51.100.7"
    assert len(scenario.requests) == 4 + 2 * 3 * 2 * 2  # four requests, and the matrix


def test_readme_exit_code_table_is_the_one_in_the_code() -> None:
    from shadowdiff.report.verdict import exit_code_table

    section = README.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [
        (int(cells[0]), cells[1])
        for line in section.splitlines()
        if line.startswith("| ")
        and (cells := [cell.strip() for cell in line.strip("|").split("|")])[0].isdigit()
    ]
    assert rows == exit_code_table()
