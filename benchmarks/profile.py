"""Where a shadowdiff run spends its CPU, sampled by py-spy against the benchmark's nginx.

    ./dev profile                  # HTTP/1.1, one process, 32 pairs in flight, 10 s
    ./dev profile --protocol h2    # or https

It prints the functions with the most samples on CPU, by own time and by time including what
they call, and keeps py-spy's collapsed stacks (for a flame graph) in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import ROOT, scenario_text
from server import start_nginx


def summarise(collapsed: Path, top: int) -> str:
    """Own and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1] for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples"]
    for title, counter in (("own time", own), ("including callees", inclusive)):
        lines.append(f"\nby {title}:")
        lines.extend(
            f"  {count / total:6.1%}  {frame}" for frame, count in counter.most_common(top)
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--protocol", choices=("http", "https", "h2"), default="http")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=32, help="pairs in flight")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    collapsed = out / f"profile-{args.protocol}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    with tempfile.TemporaryDirectory(prefix="shadowdiff-profile-") as name:
        folder = Path(name)
        server = start_nginx(folder, workers=1)
        try:
            scenario = folder / "profile.yaml"
            load = f"{{model: closed, concurrency: {args.pairs}, duration_s: {args.seconds}}}"
            scenario.write_text(scenario_text(args.protocol, load, server.ca_path))
            command = [sys.executable, "-m", "shadowdiff", "run", str(scenario), "-q"]
            subprocess.run(
                [
                    py_spy,
                    "record",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "-o",
                    str(collapsed),
                    "--",
                    *command,
                ],
                check=False,
                stdout=subprocess.DEVNULL,
            )
        finally:
            server.stop()
    print(summarise(collapsed, args.top))
    print(f"\ncollapsed stacks: {collapsed.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
