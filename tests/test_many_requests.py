"""A scenario of thousands of distinct requests: per-request state and the report stay small
(histograms are sparse; past 500 requests the report folds the rest into one count), and the
peak RSS the report gives includes building it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .test_cli import shadowdiff

REQUESTS = 3000
REPEAT = 2


async def test_many_distinct_requests_make_a_bounded_report(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    entry = await start_entry_point()
    lines = "".join(
        f"  - {{name: r{n}, url: 'http://app.example.com/items/{n}', repeat: {REPEAT}}}\n"
        for n in range(REQUESTS)
    )
    scenario = write_scenario(
        entry,
        entry,
        "tls_probe: {probe: false}\ncompare: {noise: {share: 0}}\n"
        "defaults: {concurrency: 16}\nrequests:\n" + lines,
    )
    report_path = tmp_path / "r.json"
    code, stdout, stderr = await shadowdiff("run", str(scenario), "-q", "--json", str(report_path))
    assert code == 0, stdout + stderr
    report = json.loads(report_path.read_text())
    pairs = REQUESTS * REPEAT
    assert report["totals"]["pairs"] == pairs
    assert len(report["requests"]) == 500
    folded = report["requests_folded"]
    assert folded["requests"] == REQUESTS - 500 and folded["pairs_with_differences"] == 0
    assert sum(e["pairs"] for e in report["requests"]) + folded["pairs"] == pairs
    assert report["latency"]["baseline"]["total"]["count"] == pairs  # all of them, folded or not
    # Deterministic bounds, generous: every request in the report made 14 MB here before.
    # The mergeable state keeps every request, compactly (under a kilobyte each, on one
    # line): merging shards exactly needs the requests folded out of `requests[]` too.
    assert report_path.stat().st_size < 6_000_000
    state_bytes = len(json.dumps(report["state"], separators=(",", ":")))
    assert state_bytes < 1500 * REQUESTS
    assert report["resources"]["peak_rss_mb"] < 400
