"""Signal a real `shadowdiff run` at set moments, many times, and check each run: a report
written that says it was interrupted, exit 130 (SIGINT) or 143 (SIGTERM), nothing left behind.

    ./dev signals                 # SIGINT, a double SIGINT and SIGTERM at 0.3 s, 1 s and 3 s,
                                  # one process and --workers 2, 20 runs each (360 runs)
    ./dev signals --runs 3 --at 1 --workers 2

A Ctrl-C goes to the whole process group, as a terminal sends it (the double one 0.1 s after
the first); SIGTERM goes to the main process only, as `kill` and CI runners send it. The
default suite runs a few cases at readiness moments instead of times (tests/test_stop.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .cli_process import CliProcess

KINDS = ("sigint", "double-sigint", "sigterm")
SERVER_ADDRESS = "127.0.0.41"


class Server:
    """A loopback entry point (both sides use it) that counts the requests it answered."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def answer(request: web.Request) -> web.Response:
            self.requests += 1
            await asyncio.sleep(0.002)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, SERVER_ADDRESS, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# When to send the signal: waits, given the run and the server, until that moment.
Moment = Callable[[CliProcess, Server], Awaitable[None]]


def after_seconds(seconds: float) -> Moment:
    async def wait(run: CliProcess, server: Server) -> None:
        await asyncio.sleep(seconds)

    return wait


@dataclass(frozen=True)
class Case:
    workers: int
    kind: str  # one of KINDS
    moment_name: str
    moment: Moment

    def __str__(self) -> str:
        return f"workers={self.workers} {self.kind:<13} at {self.moment_name}"


def write_scenario(folder: Path, server: Server) -> Path:
    target = f"{{address: {SERVER_ADDRESS}, ports: {{http: {server.port}}}}}"
    path = folder / "endless.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        targets:
          baseline: {target}
          candidate: {target}
        compare: {{noise: {{share: 0}}}}
        tls_probe: {{probe: false}}
        defaults: {{concurrency: 4}}
        requests:
          - {{name: a, url: 'http://app.example.com/a', repeat: 1000000}}
          - {{name: b, url: 'http://app.example.com/b', repeat: 1000000}}
        """)
    )
    return path


async def check_run(case: Case, scenario: Path, report: Path, server: Server) -> list[str]:
    """One run of `case`; the problems found (none when it behaved)."""
    report.unlink(missing_ok=True)
    run = await CliProcess.start(
        "run", str(scenario), "-q", "--workers", str(case.workers), "--json", str(report)
    )
    problems = []
    try:
        await case.moment(run, server)
        if case.kind == "sigterm":
            run.send(signal.SIGTERM)
        else:
            run.send(signal.SIGINT, group=True)
            if case.kind == "double-sigint":
                await asyncio.sleep(0.1)
                run.send(signal.SIGINT, group=True)
        code, _, stderr = await run.finish(timeout_s=60)
    except AssertionError as exc:
        return [str(exc)]
    finally:
        if run.process.returncode is None:  # this script stopped or gave up: end the run too
            run.kill_group()
    expected = 143 if case.kind == "sigterm" else 130
    if code != expected:
        problems.append(f"exit {code}, not {expected}: {stderr.strip()[-300:]}")
    if "Traceback" in stderr:
        problems.append(f"a traceback: {stderr.strip()[-300:]}")
    if not report.exists():
        problems.append("no report")
    else:
        data = json.loads(report.read_text())
        if data.get("interrupted") is not True or data["outcome"]["exit_code"] != expected:
            problems.append(f"the report does not say interrupted: {data['outcome']}")
    if not await run.nothing_left_behind():
        problems.append("processes left behind")
    return problems


async def check_cases(
    cases: Sequence[Case], runs: int, *, say: Callable[[str], None] = print
) -> Counter[str]:
    """Run each case `runs` times; count runs, failures, and each problem."""
    totals: Counter[str] = Counter()
    server = Server()
    await server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="shadowdiff-signals-") as folder:
            scenario = write_scenario(Path(folder), server)
            report = Path(folder) / "report.json"
            for case in cases:
                failed = 0
                for _ in range(runs):
                    problems = await check_run(case, scenario, report, server)
                    totals["runs"] += 1
                    if problems:
                        failed += 1
                        totals["failed"] += 1
                        for problem in problems:
                            totals[problem.split(":")[0]] += 1
                            say(f"  {case}: {problem}")
                say(f"{case}: {runs - failed}/{runs} ok")
    finally:
        await server.stop()
    return totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev signals", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each case (default 20)")
    parser.add_argument(
        "--at", type=float, nargs="+", default=[0.3, 1.0, 3.0], help="seconds into the run"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args(argv)
    cases = [
        Case(workers, kind, f"{at:g} s", after_seconds(at))
        for workers in args.workers
        for kind in args.kinds
        for at in args.at
    ]
    totals = asyncio.run(check_cases(cases, args.runs))
    print(
        f"{totals['runs']} runs, {totals['runs'] - totals['failed']} ok "
        "(report written and interrupted, exit 130/143, nothing left behind), "
        f"{totals['failed']} failed"
    )
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
