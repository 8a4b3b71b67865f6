"""The peer load generators the benchmark measures shadowdiff beside: wrk, hey and h2load.

Each runs as a child process, bounded by its own duration flag, and its figures are read from
what it prints. A tool that printed something else is an error that quotes the end of its
output, never a silent zero.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

Row = dict[str, float]


def run_measured(command: list[str], ok_codes: tuple[int, ...] = (0, 1)) -> tuple[str, int]:
    """Run a command; return its stdout and its own peak RSS in KiB (from wait4)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout.read().decode()
    stderr = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in ok_codes:
        raise RuntimeError(f"{command[0]} exited {code}: {stderr.strip()[-400:]}")
    return stdout, usage.ru_maxrss


def found(pattern: str, output: str, tool: str) -> re.Match[str]:
    """The first match of `pattern` in a tool's output."""
    match = re.search(pattern, output)
    if match is None:
        raise RuntimeError(f"{tool} printed no {pattern!r}: {output.strip()[-400:]}")
    return match


def _milliseconds(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, connections: int, seconds: int) -> Row:
    """wrk with one thread (one core, like one shadowdiff process); HTTP/1.1, also over TLS."""
    out, rss = run_measured(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url])

    def latency(q: str) -> float:
        value, unit = found(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out, "wrk").groups()
        return _milliseconds(value, unit)

    return {
        "requests_s": float(found(r"Requests/sec:\s+([\d.]+)", out, "wrk").group(1)),
        "pairs_s": 0.0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "rss_mb": rss / 1024,
    }


def hey(url: str, connections: int, seconds: int) -> Row:
    """hey (Go's HTTP/1.1 client; it does not verify certificates)."""
    out, rss = run_measured(["hey", "-z", f"{seconds}s", "-c", str(connections), url])

    def latency(q: str) -> float:
        return float(found(rf"{q}% in ([\d.]+) secs", out, "hey").group(1)) * 1000

    return {
        "requests_s": float(found(r"Requests/sec:\s+([\d.]+)", out, "hey").group(1)),
        "pairs_s": 0.0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "rss_mb": rss / 1024,
    }


def h2load(url: str, connections: int, streams: int, seconds: int) -> Row:
    """h2load (nghttp2's HTTP/2 load generator) with `streams` streams per connection.

    h2load prints no percentiles, only min, max, mean and deviation: p50 and p99 are NaN.
    """
    out, rss = run_measured(
        ["h2load", "-c", str(connections), "-m", str(streams), "-D", str(seconds), url]
    )
    rate = float(found(r"finished in [\d.]+\w+, ([\d.]+) req/s", out, "h2load").group(1))
    failed = int(found(r"(\d+) failed", out, "h2load").group(1))
    if failed:
        raise RuntimeError(f"h2load: {failed} requests failed: {out.strip()[-400:]}")
    return {
        "requests_s": rate,
        "pairs_s": 0.0,
        "p50_ms": float("nan"),
        "p99_ms": float("nan"),
        "rss_mb": rss / 1024,
    }


def bare(protocol: str, url: str, connections: int, seconds: int, *extra: str) -> Row:
    """The bare Python client (`bare.py`): the ceiling of the libraries shadowdiff uses.
    `extra`: for h2, the streams per connection and the CA file."""
    script = os.path.join(os.path.dirname(__file__), "bare.py")
    arguments = [url, str(connections), *extra[:1], str(seconds), *extra[1:]]
    out, rss = run_measured([sys.executable, script, protocol, *arguments], (0,))
    figures = found(r"requests/s ([\d.]+) p50_ms ([\d.]+) p99_ms ([\d.]+)", out, "bare.py")
    return {
        "requests_s": float(figures.group(1)),
        "pairs_s": 0.0,
        "p50_ms": float(figures.group(2)),
        "p99_ms": float(figures.group(3)),
        "rss_mb": rss / 1024,
    }
