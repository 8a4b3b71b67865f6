"""The README's scenario examples are valid scenarios: the full one, and each fragment merged
into it, so that the documentation cannot drift from the format."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from shadowdiff.scenario import parse_scenario
from shadowdiff.spec import RequestTls

README = Path(__file__).parents[1] / "README.md"
ENVIRON = {"GATEWAY_IP": "198.51.100.7", "TOKEN": "example-token"}


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_a_full_example_and_fragments() -> None:
    blocks = yaml_blocks()
    assert len(blocks) >= 4 and "targets:" in blocks[0]


@pytest.mark.parametrize("index", range(1, len(yaml_blocks())))
def test_readme_fragment_is_valid_in_the_full_example(
    index: int, tmp_path: Path, ca: trustme.CA
) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "gateway-ca.pem"))  # the example names it
    for name in (
        "access.log",
        "session.har",
        "requests.jsonl",
        "requests.gor",
        "ingresses.yaml",
        "httproutes.yaml",
    ):
        (tmp_path / name).write_text("")  # named by the recorded-traffic example; empty here
    full: dict[str, Any] = yaml.safe_load(yaml_blocks()[0])
    fragment: dict[str, Any] = yaml.safe_load(yaml_blocks()[index])
    if fragment.get("load", {}).get("pace") == "recorded":
        # Paced by a recording: every request must carry a recorded time, so the example's
        # hand-written ones make way for one recorded request.
        full.pop("requests"), full.pop("matrix")
        (tmp_path / "requests.jsonl").write_text(
            '{"method": "GET", "url": "https://shop.example.com/", "time": 1733137200.5}\n'
        )
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(full.get(key), dict):
            full[key] = {**full[key], **value}
        else:
            full[key] = value
    scenario = parse_scenario(yaml.safe_dump(full), "README.md", base_dir=tmp_path, environ=ENVIRON)
    assert scenario.requests


def test_readme_full_example_is_valid(tmp_path: Path, ca: trustme.CA) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "gateway-ca.pem"))
    scenario = parse_scenario(yaml_blocks()[0], "README.md", base_dir=tmp_path, environ=ENVIRON)
    assert scenario.targets.candidate.address == "198.51.100.7"
    assert len(scenario.requests) == 6 + 2 * 3 * 2 * 2  # six requests, and the matrix
    tls = {spec.name: spec.tls for spec in scenario.requests if spec.tls is not None}
    assert tls == {
        "behind the expired certificate": RequestTls(insecure=True),
        "misdirected": RequestTls(sni="api.example.com"),
    }


def _comparable(text: str) -> list[str]:
    """Report text with what changes from run to run masked (timings, dates, ports, trace ids) and the
    table drawing and padding removed, one entry per non-empty line."""
    text = re.sub(r"\btrace [0-9a-f]{32}\b", "trace TRACE-ID", text)
    text = re.sub(r"\d+\.\d+", "#", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}", "DATE", text)
    text = re.sub(r"[─━│┃┏┓┗┛┡┩┳┻╇╋└┘┌┐├┤┬┴┼]", " ", text)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return [line for line in lines if line]


async def test_readme_report_is_what_the_demo_prints(tmp_path: Path) -> None:
    """The README's first screen comes from a real run: the same rows, differences, findings
    and verdict, with timings, dates and ports masked (its TLS tables are left out, as it says)."""
    from io import StringIO

    from rich.console import Console

    from shadowdiff.render.terminal import print_report

    from .test_cli import shadowdiff

    code, _, _ = await shadowdiff("demo", "--json", str(tmp_path / "demo.json"))
    assert code == 1
    report = json.loads((tmp_path / "demo.json").read_text())
    report["tls"] = []
    output = StringIO()
    print_report(report, Console(file=output, width=100))
    printed = output.getvalue()
    readme = README.read_text()
    section = readme[readme.index("## What a report looks like") :]
    shown = re.search(r"```\n(Requests\n.*?)```", section, flags=re.DOTALL)
    assert shown is not None
    assert _comparable(shown.group(1)) == _comparable(printed[printed.index("Requests") :])


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
