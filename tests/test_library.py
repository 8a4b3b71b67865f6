"""The library entry point shown in the package docstring, run for real."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario


async def test_run_scenario_returns_the_report_the_cli_writes(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    baseline = await start_entry_point("127.0.0.1", name="same")
    candidate = await start_entry_point("127.0.0.2", name="same")
    scenario = load_scenario(
        write_scenario(
            baseline,
            candidate,
            "requests:\n  - {name: a, url: 'https://app.example.com/', repeat: 4}\n",
            ca_file,
        )
    )
    report = await run_scenario(scenario)
    assert report["schema"] == "shadowdiff.report/1"
    assert report["outcome"] == {"exit_code": 0, "reason": "all 4 pairs alike; TLS alike on 1 host"}
    assert [entry["host"] for entry in report["tls"]] == ["app.example.com"]
