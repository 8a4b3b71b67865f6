"""`./dev fuzz [COUNT]`: every fuzzer, each with COUNT generated inputs (default 10,000).
Exits 1 when any fuzzer found a traceback, a hang or unbounded memory."""

from __future__ import annotations

import argparse
import sys

from tests.fuzz import scenarios, server


def main() -> int:
    parser = argparse.ArgumentParser(prog="./dev fuzz", description=__doc__)
    parser.add_argument("count", nargs="?", type=int, default=10_000, help="inputs per fuzzer")
    parser.add_argument("--seed", type=int, help="repeat a run: the seed it printed")
    arguments = parser.parse_args()
    failed = False
    failed |= scenarios.main(arguments.count, arguments.seed) != 0
    failed |= server.main(arguments.count, arguments.seed) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
