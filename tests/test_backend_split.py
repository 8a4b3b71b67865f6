"""Behind a weighted canary each side picks the backend at random: the backend is compared in
proportion over a request's pairs (`backend_split`), never pair by pair. Real echo servers on
loopback, each answering from "main" or "canary" at random with its own weight."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from shadowdiff.echo import EchoIdentity, echo_document
from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario

SCENARIO = """\
compare: {noise: {share: 0}}
requests:
  - {name: canary route, url: 'https://app.example.com/', repeat: 200, backend_split: true}
"""


def weighted_echo(canary_weight: float, seed: int) -> Callable[[web.Request], Any]:
    chooser = random.Random(seed)

    async def handle(request: web.Request) -> web.Response:
        service = "shop-canary" if chooser.random() < canary_weight else "shop"
        document = echo_document(
            EchoIdentity(service, f"{service}-7d9c5b6f4-x2k4q"),
            method=request.method,
            raw_path=request.raw_path,
            host=request.host,
            headers=request.headers.items(),
            http_port=8080,
        )
        return web.Response(text=json.dumps(document), content_type="application/json")

    return handle


async def _report(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    weights: tuple[float, float],
) -> Any:
    baseline = await start_entry_point(handler=weighted_echo(weights[0], 1))
    candidate = await start_entry_point("127.0.0.2", handler=weighted_echo(weights[1], 2))
    path = write_scenario(baseline, candidate, SCENARIO, ca_file)
    return await run_scenario(load_scenario(path, environ={}))


async def test_a_canary_weight_turned_from_20_to_50_percent_is_one_split_difference(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    report = await _report(start_entry_point, write_scenario, ca_file, (0.2, 0.5))
    (signature,) = report["signatures"]
    assert (signature["kind"], signature["field"], signature["severity"]) == (
        "backend",
        "split",
        "error",
    )
    example = signature["examples"][0]
    assert example["pair"] == -1
    assert example["baseline"].startswith("shop 8") and "shop-canary 2" in example["baseline"]
    assert "weight" in signature["hint"]["fix"]
    assert report["outcome"]["exit_code"] == 1
    (entry,) = report["requests"]
    assert sum(entry["backends"]["baseline"].values()) == 200


async def test_the_same_weight_on_both_sides_is_no_difference_at_all(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], ca_file: Path
) -> None:
    report = await _report(start_entry_point, write_scenario, ca_file, (0.2, 0.2))
    # Pair by pair the backends differ about a third of the time; none of that is reported.
    assert report["signatures"] == []
    assert report["outcome"]["exit_code"] == 0
    (entry,) = report["requests"]
    assert set(entry["backends"]["candidate"]) == {"shop", "shop-canary"}
