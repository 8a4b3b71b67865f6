"""`--hgrm PREFIX`: each side's latency as HdrHistogram's percentile distribution text. Read
back as a plotter reads it (hdr-plot's line patterns), it gives the report's percentiles and
count; and it is the text HdrHistogram itself (Java, Debian's libhdrhistogram-java) prints for
the same latencies."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from shadowdiff.render.hgrm import render_hgrm
from shadowdiff.stats.histogram import LatencyHistogram

from .test_cli import shadowdiff

# The patterns hdr-plot (a plotter of .hgrm files) reads lines and the footer with.
LINE = re.compile(r"\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)")
LAST_LINE = re.compile(r"\s+([0-9.]+)\s+(1\.0+)\s+([0-9]+)\s*$")
MEAN = re.compile(r"#\[Mean\s+=\s+([0-9.]+),\s+StdDeviation\s+=\s+([0-9.]+)")
MAX = re.compile(r"#\[Max\s+=\s+([0-9.]+),\s+Total count\s+=\s+([0-9]+)")
JAR = Path("/usr/share/java/hdrhistogram.jar")
REFERENCE = Path(__file__).parent / "hgrm" / "PercentileDistribution.java"


class Distribution(NamedTuple):
    lines: list[tuple[float, float, int]]  # value ms, percentile 0-1, total count
    mean_ms: float
    max_ms: float
    total: int


def parse(text: str) -> Distribution:
    lines = []
    for line in text.splitlines():
        if (match := LINE.match(line)) or (match := LAST_LINE.match(line)):
            lines.append((float(match[1]), float(match[2]), int(match[3])))
    mean, maximum = MEAN.search(text), MAX.search(text)
    assert mean is not None and maximum is not None, text
    return Distribution(lines, float(mean[1]), float(maximum[1]), int(maximum[2]))


def at_percentile(distribution: Distribution, share: float) -> float:
    """The first line at or past `share`, as hdr-plot reads a percentile."""
    return next(value for value, percentile, _ in distribution.lines if percentile >= share)


def sample_histogram() -> tuple[LatencyHistogram, np.ndarray]:
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [rng.lognormal(np.log(3000), 0.6, 20_000), rng.uniform(100_000, 900_000, 50)]
    ).astype(np.int64)
    histogram = LatencyHistogram()
    histogram.record(values)
    return histogram, values


def test_every_line_is_the_histograms_percentile_and_the_count_adds_up() -> None:
    histogram, values = sample_histogram()
    distribution = parse(render_hgrm(histogram))
    assert distribution.total == histogram.count == len(values)
    assert distribution.lines[-1][1:] == (1.0, len(values))
    assert distribution.max_ms == (histogram.max_us or 0) / 1000
    assert distribution.mean_ms == pytest.approx(values.mean() / 1000, abs=0.001)
    for value, percentile, total in distribution.lines[:-1]:
        assert value == histogram.percentiles((percentile * 100,))[0] / 1000
        assert total >= percentile * len(values)
    # Ticks halve their step at each half distance to 100%: 10%, then 5%, 2.5%...
    percentiles = [p for _, p, _ in distribution.lines]
    assert percentiles[:7] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55]


def test_an_empty_histogram_is_a_header_and_a_footer() -> None:
    text = render_hgrm(LatencyHistogram())
    assert parse(text) == Distribution([], 0.0, 0.0, 0)
    assert text.startswith("       Value     Percentile TotalCount 1/(1-Percentile)\n\n#[Mean")


def test_the_text_is_hdrhistograms_own() -> None:
    """HdrHistogram (Java) records the same latencies and prints its distribution: the same
    lines, but for the two documented refinements (values capped at the exact maximum; mean,
    deviation and maximum exact rather than from bucket midpoints)."""
    java = shutil.which("java")
    if java is None or not JAR.exists():
        if os.environ.get("CI"):
            pytest.fail("java or libhdrhistogram-java is missing in CI: ./dev test installs it")
        pytest.skip("HdrHistogram for Java is not installed (./dev test installs it)")
    histogram, values = sample_histogram()
    unique, counts = np.unique(values, return_counts=True)
    reference = subprocess.run(
        [java, "-cp", str(JAR), str(REFERENCE)],
        input="".join(f"{v} {c}\n" for v, c in zip(unique, counts, strict=True)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    ours = render_hgrm(histogram).splitlines()
    theirs = reference.splitlines()
    assert len(ours) == len(theirs)
    maximum_ms = f"{(histogram.max_us or 0) / 1000:12.3f}"
    for our_line, their_line in zip(ours[:-3], theirs[:-3], strict=True):
        if our_line[:12] == maximum_ms and our_line != their_line:
            # The top bucket: HdrHistogram prints its highest value, shadowdiff the exact max.
            assert our_line[12:] == their_line[12:]
            assert float(their_line[:12]) - float(maximum_ms) < float(maximum_ms) / 1024
        else:
            assert our_line == their_line
    assert ours[-1] == theirs[-1]  # Buckets and SubBuckets
    assert ours[-2].split("Total count")[1] == theirs[-2].split("Total count")[1]
    # Mean from exact sums here, from bucket midpoints there: within a bucket's width.
    assert parse(render_hgrm(histogram)).mean_ms == pytest.approx(
        parse(reference).mean_ms, rel=1e-3
    )


async def test_run_and_report_write_the_same_files_with_the_reports_figures(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    baseline = await start_entry_point("127.0.0.1")
    candidate = await start_entry_point("127.0.0.2")
    scenario = write_scenario(
        baseline,
        candidate,
        "compare: {noise: {share: 0}}\ndefaults: {concurrency: 4}\nrequests:\n"
        "  - {name: home, url: 'https://app.example.com/', repeat: 200}\n",
        ca_file,
    )
    report_path = tmp_path / "report.json"
    code, _, stderr = await shadowdiff(
        "run", str(scenario), "-q", "--json", str(report_path), "--hgrm", str(tmp_path / "run")
    )
    assert code == 0, stderr
    code, _, stderr = await shadowdiff(
        "report", str(report_path), "--hgrm", str(tmp_path / "again")
    )
    assert code == 0, stderr
    report = json.loads(report_path.read_text())
    for side in ("baseline", "candidate"):
        text = (tmp_path / f"run.{side}.hgrm").read_text()
        assert (tmp_path / f"again.{side}.hgrm").read_text() == text
        distribution = parse(text)
        summary = report["latency"][side]["total"]
        assert distribution.total == summary["count"] == 200
        assert distribution.max_ms == summary["max"]
        assert at_percentile(distribution, 0.5) == summary["p50"]
        assert at_percentile(distribution, 0.9) == summary["p90"]
        # p99 falls between two ticks: the lines around it bracket the report's value.
        below = max(v for v, p, _ in distribution.lines if p <= 0.99)
        assert below <= summary["p99"] <= at_percentile(distribution, 0.99)
    code, _, stderr = await shadowdiff("report", str(report_path), "--hgrm", "-")
    assert code == 2 and "--hgrm -: give a file name prefix" in stderr
