"""shadowdiff's throughput, latency and memory, measured side by side with wrk, hey and h2load.

    ./dev bench                 # the table, the targets, latency at 8 in flight, memory at 1M pairs
    ./dev bench --quick         # one 5 s run per tool, 100k pairs for memory

One nginx (Debian's package, one worker process) listens on 127.0.0.21 and 127.0.0.22, over
HTTP and over TLS (ALPN h2 and http/1.1), and answers a static route: the two addresses are the
baseline and the candidate. wrk, hey and h2load load one address; shadowdiff loads both (each
pair is one request to each, fully captured, hashed, compared and recorded in histograms) with
its default comparison settings, noise calibration included. Its requests/s counts every request
it sent, the calibration's second baseline requests too. The runs are interleaved (one of each
tool, then again) and every figure is a median of them, all taken in this one invocation, so the
ratios compare like with like. All traffic stays on loopback and every run is bounded in time or
count.

The "bare Python client" rows (`bare.py`) are the libraries shadowdiff is built on, with none of
its work: uvloop and httptools for HTTP/1.1, the h2 library for HTTP/2. They show how much of a
gap to a peer is the runtime's, and how much is shadowdiff's own work per pair.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peers import Row, bare, h2load, hey, run_measured, wrk
from server import BASELINE, CANDIDATE, HOSTNAME, HTTP_PORT, HTTPS_PORT, start_nginx

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("http", "https")  # HTTP/1.1, in clear and over TLS
# The bar, checked after every run: (label, row, peer row, minimum ratio).
THROUGHPUT_TARGETS = (
    ("HTTP, --workers 2, vs wrk", "http closed w2", "http wrk", 0.6),
    ("HTTP, --workers 2, vs hey", "http closed w2", "http hey", 1.5),
    ("HTTPS, --workers 2, vs wrk", "https closed w2", "https wrk", 0.6),
    ("HTTPS, --workers 2, vs hey", "https closed w2", "https hey", 1.5),
    ("HTTP, one process, vs wrk", "http closed w1", "http wrk", 0.4),
    ("HTTP/2, --workers 2, vs h2load", "h2 closed w2", "h2 h2load", 0.5),
)
P50_TARGET_RATIO = 1.5  # shadowdiff's p50 at 8 pairs in flight, at most this times wrk's


def url_of(protocol: str, address: str = BASELINE) -> str:
    if protocol == "http":
        return f"http://{address}:{HTTP_PORT}/"
    return f"https://{address}:{HTTPS_PORT}/"


def scenario_text(protocol: str, load: str, ca_path: Path) -> str:
    """A scenario with one static request and the default comparison settings."""
    if protocol == "http":
        ports, tls, url, http = f"{{http: {HTTP_PORT}}}", "", f"http://{HOSTNAME}/", ""
    else:
        ports = f"{{https: {HTTPS_PORT}}}"
        tls = f", tls: {{ca: '{ca_path}'}}"
        url = f"https://{HOSTNAME}/"
        http = ', http: "2"' if protocol == "h2" else ""
    return (
        f"targets:\n  baseline: {{address: {BASELINE}, ports: {ports}{tls}}}\n"
        f"  candidate: {{address: {CANDIDATE}, ports: {ports}{tls}}}\n"
        f"load: {load}\n"
        f"requests:\n  - {{name: static, url: '{url}'{http}}}\n"
    )


def shadowdiff(
    folder: Path, protocol: str, load: str, workers: int, name: str, ca_path: Path
) -> Row:
    scenario = folder / f"{name}.yaml"
    scenario.write_text(scenario_text(protocol, load, ca_path))
    report_path = folder / f"{name}.json"
    command = [sys.executable, "-m", "shadowdiff", "run", str(scenario), "-q"]
    # Exit 3 is a load that did not hold its rate: a figure to show, with `valid` false.
    run_measured([*command, "--workers", str(workers), "--json", str(report_path)], (0, 1, 3))
    report = json.loads(report_path.read_text())
    load_entry, latency = report["load"], report["latency"]["baseline"]["total"]
    pairs = report["totals"]["pairs"]
    # Every request sent counts: both sides of each pair, and the calibration's second
    # baseline request where a pair had one.
    calibration = sum(entry["noise_samples"] for entry in report["requests"])
    requests_per_pair = (2 * pairs + calibration) / pairs if pairs else 2.0
    # Open: pairs started on schedule after warm-up, per second; closed: all pairs per second.
    pairs_s = (
        load_entry["achieved_rate"]
        if load_entry["model"] == "open"
        else pairs / load_entry["elapsed_s"]
    )
    resources = report["resources"]
    return {
        "requests_s": requests_per_pair * pairs_s,
        "pairs_s": pairs_s,
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "rss_mb": resources["peak_rss_mb"] + sum(resources["workers_peak_rss_mb"]),
        "pairs": pairs,
        "calibration_requests": calibration,
        "differences": report["totals"]["pairs_with_differences"],
        "achieved_rate": load_entry["achieved_rate"],
        "valid": load_entry["valid"],
        "sender_limited": bool((report["load"].get("sender") or {}).get("limited")),
    }


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        key: statistics.median(run[key] for run in runs)
        for key in runs[0]
        if isinstance(runs[0][key], int | float)
    }


def table(rows: list[tuple[str, Row]], peers: dict[str, Row]) -> str:
    """One line per tool; the ratio columns compare with the peers of the same protocol."""
    columns = ("hey", "wrk", "h2load")
    lines = [
        f"{'tool':<36} {'requests/s':>11} {'pairs/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        + " ".join(f"{'vs ' + peer:>9}" for peer in columns)
        + f" {'peak RSS MB':>12}"
    ]
    for name, row in rows:
        ratios = " ".join(
            f"{row['requests_s'] / peers[peer]['requests_s']:>9.2f}" if peer in peers else " " * 9
            for peer in columns
        )
        pairs = f"{row['pairs_s']:>9.0f}" if row["pairs_s"] else f"{'—':>9}"
        latency = " ".join(
            f"{'—':>8}" if math.isnan(row[key]) else f"{row[key]:>8.3f}"
            for key in ("p50_ms", "p99_ms")
        )
        lines.append(
            f"{name:<36} {row['requests_s']:>11.0f} {pairs} {latency} {ratios} "
            f"{row['rss_mb']:>12.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one short run per tool")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--connections", type=int, default=64, help="requests in flight, for every tool"
    )
    parser.add_argument("--workers", type=int, default=2, help="shadowdiff processes")
    parser.add_argument("--memory-pairs", type=int, default=1_000_000)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.runs, args.memory_pairs = 5, 1, 100_000
    for tool in ("wrk", "hey", "h2load"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (./dev bench installs it)", file=sys.stderr)
            return 2

    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "machine": os.uname().nodename,
        "cores": os.cpu_count(),
    }
    seconds, connections, workers = args.seconds, args.connections, args.workers
    pairs_in_flight = connections // 2  # each pair is two requests in flight
    # h2load: two connections, each with half the requests in flight as streams; shadowdiff
    # opens one connection per side and process, its pairs in flight as streams.
    h2_connections = 2
    with tempfile.TemporaryDirectory(prefix="shadowdiff-bench-") as name:
        folder = Path(name)
        server = start_nginx(folder, workers=1)
        ca = server.ca_path
        closed = f"{{model: closed, concurrency: {pairs_in_flight}, duration_s: {seconds}}}"
        try:
            runs: dict[str, list[Row]] = {}
            for index in range(args.runs):
                for protocol in PROTOCOLS:
                    url = url_of(protocol)
                    runs.setdefault(f"{protocol} wrk", []).append(wrk(url, connections, seconds))
                    runs.setdefault(f"{protocol} hey", []).append(hey(url, connections, seconds))
                    if protocol == "http":
                        runs.setdefault("http bare", []).append(
                            bare("http", url, connections, seconds)
                        )
                    for count in (workers, 1):
                        runs.setdefault(f"{protocol} closed w{count}", []).append(
                            shadowdiff(
                                folder, protocol, closed, count, f"{protocol}-w{count}-{index}", ca
                            )
                        )
                # The open model at 80% of what the closed model achieved: a rate it can hold.
                rate = int(runs[f"http closed w{workers}"][-1]["pairs_s"] * 0.8)
                open_load = (
                    f"{{model: open, rate: {rate}, duration_s: {seconds}, warmup_s: 1, "
                    f"max_in_flight: {pairs_in_flight}}}"
                )
                runs.setdefault("http open", []).append(
                    shadowdiff(folder, "http", open_load, workers, f"open-{index}", ca)
                )
                runs.setdefault("h2 h2load", []).append(
                    h2load(
                        url_of("https"),
                        h2_connections,
                        connections // h2_connections,
                        seconds,
                    )
                )
                runs.setdefault("h2 bare", []).append(
                    bare(
                        "h2",
                        url_of("https"),
                        h2_connections,
                        seconds,
                        str(connections // h2_connections),
                        str(ca),
                    )
                )
                runs.setdefault(f"h2 closed w{workers}", []).append(
                    shadowdiff(folder, "h2", closed, workers, f"h2-{index}", ca)
                )
            medians = {key: median(values) for key, values in runs.items()}
            labels = {
                **{f"{p} wrk": f"{p.upper()}  wrk -t1 -c{connections}" for p in PROTOCOLS},
                **{f"{p} hey": f"{p.upper()}  hey -c {connections}" for p in PROTOCOLS},
                **{
                    f"{p} closed w{count}": (
                        f"{p.upper()}  shadowdiff {pairs_in_flight} pairs, w{count}"
                    )
                    for p in PROTOCOLS
                    for count in (workers, 1)
                },
                "http open": (
                    f"HTTP  shadowdiff open "
                    f"{int(medians[f'http closed w{workers}']['pairs_s'] * 0.8)}/s, w{workers}"
                ),
                "h2 h2load": (
                    f"HTTP/2  h2load -c{h2_connections} -m{connections // h2_connections}"
                ),
                "http bare": f"HTTP  bare Python client -c{connections}",
                "h2 bare": (
                    f"HTTP/2  bare Python client -c{h2_connections} "
                    f"-m{connections // h2_connections}"
                ),
                f"h2 closed w{workers}": (
                    f"HTTP/2  shadowdiff {pairs_in_flight} pairs, w{workers}"
                ),
            }
            not_held = sum(not run["valid"] for run in runs["http open"])
            if not_held:
                labels["http open"] += f" (rate not held in {not_held} of {args.runs})"
            print(
                f"Throughput: medians of {args.runs} interleaved runs of {seconds} s, "
                f"{connections} requests in flight; shadowdiff with noise calibration on "
                "(its requests/s counts the calibration's requests)"
            )
            print(
                table(
                    [(labels[key], medians[key]) for key in runs],
                    {},
                ).splitlines()[0]
            )
            for group in ("http", "https", "h2"):
                peers = {
                    tool: medians[f"{group} {tool}"]
                    for tool in ("wrk", "hey", "h2load")
                    if f"{group} {tool}" in medians
                }
                keys = [key for key in runs if key.split()[0] == group]
                print(
                    "\n".join(
                        table([(labels[k], medians[k]) for k in keys], peers).splitlines()[1:]
                    )
                )
            results["throughput"] = {"runs": runs, "medians": medians, "labels": labels}

            # Latency at a low concurrency: what a person sees in the report vs what wrk says.
            wrk8: list[Row] = []
            ours8: list[Row] = []
            few = "{model: closed, concurrency: 8, duration_s: " + str(seconds) + "}"
            for index in range(args.runs):
                wrk8.append(wrk(url_of("http"), 8, seconds))
                ours8.append(shadowdiff(folder, "http", few, 1, f"c8-{index}", ca))
            w, s = median(wrk8), median(ours8)
            p50_ratio = s["p50_ms"] / w["p50_ms"]
            print(
                f"\nLatency at 8 in flight, HTTP (wrk -t1 -c8; shadowdiff 8 pairs in flight, one "
                f"process): p50 wrk {w['p50_ms']:.3f} ms, shadowdiff {s['p50_ms']:.3f} ms, "
                f"ratio {p50_ratio:.2f}"
            )
            results["latency_concurrency_8"] = {"wrk": wrk8, "shadowdiff": ours8}

            print("\nTargets (issue 16):")
            checks = []
            for label, ours, peer, minimum in THROUGHPUT_TARGETS:
                ratio = medians[ours]["requests_s"] / medians[peer]["requests_s"]
                checks.append((label, f">= {minimum}", ratio, ratio >= minimum))
            checks.append(
                (
                    "p50 at 8 in flight vs wrk",
                    f"<= {P50_TARGET_RATIO}",
                    p50_ratio,
                    p50_ratio <= P50_TARGET_RATIO,
                )
            )
            for label, bar, ratio, met in checks:
                print(f"  {label:<34} {bar:>7}  {ratio:>5.2f}  {'met' if met else 'NOT met'}")
            results["targets"] = [
                {"target": label, "bar": bar, "ratio": ratio, "met": met}
                for label, bar, ratio, met in checks
            ]

            if not args.skip_memory:
                memory = shadowdiff(
                    folder,
                    "http",
                    f"{{model: closed, concurrency: {pairs_in_flight}, "
                    f"max_pairs: {args.memory_pairs}}}",
                    1,
                    "memory",
                    ca,
                )
                print(
                    f"\nMemory: {memory['pairs']:.0f} pairs in one process, "
                    f"peak RSS {memory['rss_mb']:.1f} MB ({memory['pairs_s']:.0f} pairs/s)"
                )
                results["memory"] = memory
        finally:
            server.stop()
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"\nraw results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
