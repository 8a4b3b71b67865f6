"""The access-log reader's speed and memory, through the real reader and selection path.

    ./dev bench-sources                 # 1,000,000 lines for speed, a 2 GB stream for memory
    ./dev bench-sources --quick         # 100,000 lines, a 200 MB stream
    ./dev bench-sources --profile       # cProfile of the reader and selection, top 25

Speed: a generated ingress-nginx `upstreaminfo` log (written to a temporary file, deleted
afterwards) is read by `shadowdiff.sources.records` and `select` (hosts mapped from upstream
names, `per_route: 20`, as the README's example), in this one process on one core; beside it,
the same lines are read from the same file and only matched by the same regex
(`compile_format(UPSTREAMINFO)`), so the cost above a bare match is visible. Best of 3 runs.

Memory: a child process reads a log from standard input (`ingress_nginx_log: -`) through the
same path while a generator writes it into the pipe, so nothing lands on disk; its peak RSS
comes from wait4. It is measured for a tenth of the size too: equal peaks mean memory is flat.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shadowdiff.scenario.model import RecordedSource, SourceSelection  # noqa: E402
from shadowdiff.sources import SourceSummary, records, select, selection_for  # noqa: E402
from shadowdiff.sources.nginx_log import UPSTREAMINFO, compile_format  # noqa: E402

UPSTREAMS = {
    "shop-web-8080": "shop.example.com",
    "shop-api-8080": "api.example.com",
    "shop-static-80": "static.example.com",
}
SELECT = {"per_route": 20}
ROUTES = (
    "/",
    "/products/{n}",
    "/products/{n}/reviews?page={p}",
    "/cart",
    "/orders/{n}",
    "/files/{uuid}",
    "/search?q=shoes%20{n}&sort=price",
    "/static/app.{asset}.js",
    "/api/v2/items/{n}",
    "/healthz",
)
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 "
    "Safari/537.36",
    "curl/8.5.0",
    "okhttp/4.12.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Version/17.1 Mobile/15E148",
)


def generated_lines(count: int, seed: int = 1) -> Iterator[str]:
    """`count` upstreaminfo lines like a busy controller's: mostly GET, some unsafe methods,
    retried upstreams (`a, b`), requests that never reached a backend, and `\\xHH` escapes."""
    rng = random.Random(seed)
    upstream_names = list(UPSTREAMS)
    for number in range(count):
        route = rng.choice(ROUTES).format(
            n=rng.randrange(1, 100_000),
            p=rng.randrange(1, 9),
            uuid=f"{rng.getrandbits(128):032x}",
            # A site has a few dozen asset names: each distinct unfolded path is a template of
            # its own, and the counts per template are held for the whole read.
            asset=rng.randrange(40),
        )
        method = "GET" if rng.random() < 0.95 else rng.choice(("POST", "HEAD", "DELETE"))
        agent = rng.choice(AGENTS)
        if number % 97 == 0:
            agent += " \\xE2\\x9C\\x93"  # nginx's escape of a non-ASCII byte sequence
        second = number // 200
        stamp = f"02/Dec/2026:{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        request_id = f"{rng.getrandbits(128):032x}"
        if number % 211 == 0:  # a malformed request line: answered by nginx, no upstream
            yield (
                f'203.0.113.{number % 250} - - [{stamp} +0000] "\\x16\\x03\\x01" 400 150 "-" '
                f'"-" 0 0.001 [] [] - - - - {request_id}\n'
            )
            continue
        upstream = rng.choice(upstream_names)
        address, status = f"10.2.{number % 7}.{number % 251}:8080", "200"
        if number % 53 == 0:  # retried on a second endpoint
            address, status = f"10.2.0.9:8080, {address}", "502, 200"
        yield (
            f'203.0.113.{number % 250} - - [{stamp} +0000] "{method} {route} HTTP/1.1" 200 '
            f'{rng.randrange(100, 90_000)} "-" "{agent}" {rng.randrange(60, 900)} 0.012 '
            f"[{upstream}] [] {address} {rng.randrange(100, 90_000)} 0.011 {status} "
            f"{request_id}\n"
        )


def _source(path: str) -> tuple[RecordedSource, SourceSelection]:
    return (
        RecordedSource(ingress_nginx_log=path, hosts=UPSTREAMS),
        SourceSelection.model_validate(SELECT),
    )


def read_and_select(path: str) -> SourceSummary:
    """The path a scenario's `sources:` takes: read, resolve, clean, select; specs dropped."""
    source, settings = _source(path)
    summary = SourceSummary(path)
    for _ in select(records(source, Path.cwd()), selection_for(source, settings), summary):
        pass
    return summary


def bare_match(path: str) -> int:
    """The same lines from the same file, only matched by the reader's regex."""
    pattern = compile_format(UPSTREAMINFO)
    matched = 0
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as lines:
        for line in lines:
            if pattern.fullmatch(line.rstrip("\r\n")):
                matched += 1
    return matched


def best_rates(function: Callable[[str], object], path: str, lines: int, runs: int) -> Rates:
    """Lines per second over the best of `runs`: by the wall clock, and by this process's own
    CPU time (the figure for one core when another process shares the machine)."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        function(path)
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return Rates(lines / wall, lines / cpu)


@dataclass(frozen=True)
class Rates:
    wall: float
    cpu: float


def stream_rss_mb(size_bytes: int) -> tuple[float, str]:
    """Peak RSS of a child reading `size_bytes` of log from a pipe, and what it counted."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--read-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    block = "".join(generated_lines(20_000, seed=2)).encode()
    written = 0
    try:
        while written < size_bytes:
            chunk = block[: size_bytes - written]
            if len(chunk) < len(block):  # the last one ends at the end of a line
                chunk = chunk[: chunk.rfind(b"\n") + 1]
                if not chunk:
                    break
            child.stdin.write(chunk)
            written += len(chunk)
    finally:
        child.stdin.close()
    counted = child.stdout.read().decode().strip()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the reading child exited {os.waitstatus_to_exitcode(status)}")
    return usage.ru_maxrss / 1024, counted


def _read_stdin() -> None:
    summary = read_and_select("-")
    print(f"{summary.lines} lines, {summary.replayed} selected, skipped {dict(summary.skipped)}")


def _profile(path: str) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(read_and_select, path)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes, one run")
    parser.add_argument("--profile", action="store_true", help="cProfile the reader instead")
    parser.add_argument("--read-stdin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_stdin:
        _read_stdin()
        return
    lines = 100_000 if args.quick else 1_000_000
    stream_bytes = 200 * 1000**2 if args.quick else 2 * 1000**3
    runs = 1 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="shadowdiff-bench-sources-") as folder:
        log = Path(folder) / "access.log"
        with log.open("w", encoding="utf-8") as out:
            out.writelines(generated_lines(lines))
        if args.profile:
            _profile(str(log))
            return
        size_mb = log.stat().st_size / 1000**2
        summary = read_and_select(str(log))
        reader = best_rates(read_and_select, str(log), lines, runs)
        regex = best_rates(bare_match, str(log), lines, runs)
    print(f"Log reader: {lines:,} generated upstreaminfo lines ({size_mb:.0f} MB), best of {runs}")
    print(
        f"  {summary.lines:,} lines: {summary.replayed:,} selected, skipped "
        + ", ".join(f"{n:,} {reason}" for reason, n in sorted(summary.skipped.items()))
    )
    print("                     lines/s (wall)   lines/s (CPU)")
    for name, rates in (("records + select", reader), ("bare regex match", regex)):
        print(f"  {name:<18} {rates.wall:>13,.0f} {rates.cpu:>15,.0f}")
    print(f"  the reader runs at {reader.cpu / regex.cpu:.2f}x the bare match's rate (CPU)")
    small_rss, _ = stream_rss_mb(stream_bytes // 10)
    rss, counted = stream_rss_mb(stream_bytes)
    print("Memory: peak RSS of a process reading a log from a pipe (ingress_nginx_log: -)")
    print(f"  {stream_bytes / 10 / 1000**3:g} GB: {small_rss:.1f} MB")
    print(f"  {stream_bytes / 1000**3:g} GB: {rss:.1f} MB ({counted})")


if __name__ == "__main__":
    main()
