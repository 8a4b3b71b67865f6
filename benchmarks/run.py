"""shadowdiff's throughput, latency and memory, measured side by side with wrk and hey.

    ./dev bench                 # throughput table, latency at concurrency 8, memory at 1M pairs
    ./dev bench --quick         # one 5 s run per tool, 100k pairs for memory

One nginx (Debian's package, one worker process) listens on 127.0.0.21 and 127.0.0.22 and
answers a static route: the two addresses are the baseline and the candidate. wrk and hey
load one address; shadowdiff loads both (each pair is one request to each). Every figure
is the median of the runs, all taken in this one invocation, so ratios compare like with
like. All traffic stays on loopback and every run is bounded in time or count.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE, CANDIDATE, PORT = "127.0.0.21", "127.0.0.22", 18080
URL = f"http://{BASELINE}:{PORT}/"
NGINX_CONFIG = """
worker_processes {workers};
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    keepalive_requests 10000000;
    server {{
        listen {baseline}:{port};
        listen {candidate}:{port};
        location / {{ default_type text/plain; return 200 "a static route\\n"; }}
    }}
}}
"""


def run_measured(command: list[str]) -> tuple[str, int]:
    """Run a command; return its stdout and its own peak RSS in KiB (from wait4)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout.read().decode()
    stderr = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise RuntimeError(f"{command[0]} exited {code}: {stderr.strip()[-400:]}")
    return stdout, usage.ru_maxrss


def found(pattern: str, output: str, tool: str) -> re.Match[str]:
    """The first match of `pattern` in a tool's output; a tool that printed something else is
    named with the end of what it printed."""
    match = re.search(pattern, output)
    if match is None:
        raise RuntimeError(f"{tool} printed no {pattern!r}: {output.strip()[-400:]}")
    return match


def wrk(connections: int, seconds: int) -> dict[str, float]:
    out, rss = run_measured(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", URL])
    rate = float(found(r"Requests/sec:\s+([\d.]+)", out, "wrk").group(1))

    def latency(q: str) -> float:
        value, unit = found(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out, "wrk").groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "requests_s": rate,
        "pairs_s": 0.0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "rss_mb": rss / 1024,
    }


def hey(connections: int, seconds: int) -> dict[str, float]:
    out, rss = run_measured(["hey", "-z", f"{seconds}s", "-c", str(connections), URL])
    rate = float(found(r"Requests/sec:\s+([\d.]+)", out, "hey").group(1))

    def latency(q: str) -> float:
        return float(found(rf"{q}% in ([\d.]+) secs", out, "hey").group(1)) * 1000

    return {
        "requests_s": rate,
        "pairs_s": 0.0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "rss_mb": rss / 1024,
    }


def shadowdiff(
    folder: Path, load: str, workers: int, name: str, pairs: int = 1
) -> dict[str, float]:
    scenario = folder / f"{name}.yaml"
    scenario.write_text(
        f"targets:\n  baseline: {{address: {BASELINE}, ports: {{http: {PORT}}}}}\n"
        f"  candidate: {{address: {CANDIDATE}, ports: {{http: {PORT}}}}}\n"
        "compare: {noise: {share: 0}}\ntls_probe: {probe: false}\n"
        f"load: {load}\n"
        "requests:\n  - {name: static, url: 'http://bench.test/'}\n"
    )
    report_path = folder / f"{name}.json"
    run_measured(
        [
            sys.executable,
            "-m",
            "shadowdiff",
            "run",
            str(scenario),
            "-q",
            "--workers",
            str(workers),
            "--json",
            str(report_path),
        ]
    )
    report = json.loads(report_path.read_text())
    load_entry, latency = report["load"], report["latency"]["baseline"]["total"]
    # Open: pairs started on schedule after warm-up, per second; closed: all pairs per second.
    pairs_s = (
        load_entry["achieved_rate"]
        if load_entry["model"] == "open"
        else (report["totals"]["pairs"] / load_entry["elapsed_s"])
    )
    resources = report["resources"]
    return {
        "requests_s": 2 * pairs_s,
        "pairs_s": pairs_s,
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "rss_mb": resources["peak_rss_mb"] + sum(resources["workers_peak_rss_mb"]),
        "pairs": report["totals"]["pairs"],
        "differences": report["totals"]["pairs_with_differences"],
        "achieved_rate": load_entry["achieved_rate"],
        "valid": load_entry["valid"],
    }


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        key: statistics.median(run[key] for run in runs)
        for key in runs[0]
        if isinstance(runs[0][key], int | float)
    }


def start_nginx(folder: Path, workers: int) -> subprocess.Popen[bytes]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    config = folder / "nginx.conf"
    config.write_text(
        NGINX_CONFIG.format(
            folder=folder,
            workers=workers,
            baseline=BASELINE,
            candidate=CANDIDATE,
            port=PORT,
            user="user root;" if os.geteuid() == 0 else "",
        )
    )
    process = subprocess.Popen(
        [
            nginx,
            "-p",
            str(folder),
            "-c",
            str(config),
            "-e",
            str(folder / "startup.log"),
            "-g",
            "daemon off;",
        ]
    )
    time.sleep(0.5)
    if process.poll() is not None:
        raise RuntimeError((folder / "startup.log").read_text())
    return process


def table(rows: list[tuple[str, dict[str, float]]], reference: dict[str, dict[str, float]]) -> str:
    lines = [
        f"{'tool':<34} {'requests/s':>11} {'pairs/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'vs hey':>7} {'vs wrk':>7} {'peak RSS MB':>12}"
    ]
    for name, row in rows:
        ratios = ""
        for peer in ("hey", "wrk"):
            ratios += (
                f" {row['requests_s'] / reference[peer]['requests_s']:>7.2f}"
                if peer in reference
                else " " * 8
            )
        pairs = f"{row['pairs_s']:>9.0f}" if row["pairs_s"] else f"{'—':>9}"
        latency = f"{row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f}"
        rate = f"{row['requests_s']:>11.0f} {pairs}"
        lines.append(f"{name:<34} {rate} {latency}{ratios} {row['rss_mb']:>12.1f}")
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
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (./dev bench installs it)", file=sys.stderr)
            return 2

    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "machine": os.uname().nodename,
        "cores": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="shadowdiff-bench-") as name:
        folder = Path(name)
        nginx = start_nginx(folder, workers=1)
        try:
            seconds, connections = args.seconds, args.connections
            pairs_in_flight = connections // 2  # each pair is two requests in flight
            rows: dict[str, list[dict[str, float]]] = {
                "wrk": [],
                "hey": [],
                "closed": [],
                "open": [],
            }
            for index in range(args.runs):
                rows["wrk"].append(wrk(connections, seconds))
                rows["hey"].append(hey(connections, seconds))
                closed = shadowdiff(
                    folder,
                    f"{{model: closed, concurrency: {pairs_in_flight}, duration_s: {seconds}}}",
                    args.workers,
                    f"closed-{index}",
                )
                rows["closed"].append(closed)
                # The open model at 80% of what the closed model achieved: a rate it can hold.
                rate = int(closed["pairs_s"] * 0.8)
                rows["open"].append(
                    shadowdiff(
                        folder,
                        f"{{model: open, rate: {rate}, duration_s: {seconds}, warmup_s: 1, "
                        f"max_in_flight: {pairs_in_flight}}}",
                        args.workers,
                        f"open-{index}",
                    )
                )
            medians = {name: median(runs) for name, runs in rows.items()}
            labels = {
                "wrk": f"wrk -t1 -c{connections}",
                "hey": f"hey -c {connections}",
                "closed": f"shadowdiff closed, {pairs_in_flight} pairs, w{args.workers}",
                "open": (
                    f"shadowdiff open, {int(medians['closed']['pairs_s'] * 0.8)}/s, w{args.workers}"
                ),
            }
            print(
                f"Throughput: medians of {args.runs} runs of {seconds} s, "
                f"{connections} requests in flight"
            )
            print(table([(labels[k], medians[k]) for k in rows], medians))
            results["throughput"] = {"runs": rows, "medians": medians, "labels": labels}

            # Latency at a low concurrency: what a person sees in the report vs what wrk says.
            wrk8 = [wrk(8, seconds) for _ in range(args.runs)]
            ours8 = [
                shadowdiff(
                    folder,
                    f"{{model: closed, concurrency: 8, duration_s: {seconds}}}",
                    1,
                    f"c8-{i}",
                )
                for i in range(args.runs)
            ]
            w, s = median(wrk8), median(ours8)
            print(
                f"\nLatency at concurrency 8 (wrk -c8; shadowdiff 8 pairs in flight, one process): "
                f"p50 wrk {w['p50_ms']:.3f} ms, shadowdiff {s['p50_ms']:.3f} ms, "
                f"ratio {s['p50_ms'] / w['p50_ms']:.2f}"
            )
            results["latency_concurrency_8"] = {"wrk": wrk8, "shadowdiff": ours8}

            if not args.skip_memory:
                memory = shadowdiff(
                    folder,
                    f"{{model: closed, concurrency: {pairs_in_flight}, "
                    f"max_pairs: {args.memory_pairs}}}",
                    1,
                    "memory",
                )
                print(
                    f"\nMemory: {memory['pairs']:.0f} pairs in one process, "
                    f"peak RSS {memory['rss_mb']:.1f} MB ({memory['pairs_s']:.0f} pairs/s)"
                )
                results["memory"] = memory
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"\nraw results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
