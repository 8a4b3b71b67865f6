"""`./dev lab-clean [RUNS]`: replay the proxy lab's clean routes RUNS times in a row (default 20)
and count the runs in which anything was reported (any kind, any severity, latency included).
The default suite runs three (tests/test_lab.py); this is the longer check."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

from shadowdiff.replay.engine import replay
from shadowdiff.report import RunCollector, build_report
from shadowdiff.scenario import load_scenario
from tests.lab import run_lab

LAB_SCENARIO = Path(__file__).parent / "lab" / "scenario.yaml"


def main(runs: int) -> int:
    with tempfile.TemporaryDirectory() as folder, run_lab(Path(folder)) as lab:
        scenario = load_scenario(LAB_SCENARIO, environ=lab.environ())
        alike = tuple(spec for spec in scenario.requests if spec.name.startswith("alike:"))
        scenario = dataclasses.replace(scenario, requests=alike)
        noisy, pairs, retries = 0, 0, 0
        for run in range(runs):
            collector = RunCollector()
            asyncio.run(replay(scenario, collector, seed=100 + run))
            report = build_report(scenario, collector, started_at="t", duration_s=1.0)
            found = [
                (line["requests"], line["kind"], line["field"])
                for line in report["signatures"]
                if line["status"] in ("reported", "expired")
            ]
            pairs += report["totals"]["pairs"]
            retries += sum(report["totals"].get("retries", {}).values())
            if found:
                noisy += 1
                print(f"run {run + 1}: {found}")
    print(
        f"{runs} runs, {pairs} pairs on clean routes, {noisy} runs with anything reported, {retries} retries"
    )
    return 1 if noisy else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
