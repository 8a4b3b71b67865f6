"""A loopback server that answers generated malformed HTTP, and a harness that replays a real
shadowdiff scenario against it: the lean transport as the baseline, the aiohttp transport as
the candidate, on uvloop as the CLI runs, each pair compared and collected into a report.

The invariant: every side of every pair ends as an observation with a status or a documented
failure class; the run never raises, never takes over HANG_S, and the event loop never reports
an error (uvloop would print it on the terminal). `./dev fuzz [COUNT]` runs it long and prints
the counts and the peak RSS; `tests/test_fuzz_server.py` runs a short profile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import functools
import logging
import random
import resource
import ssl
import sys
import tempfile
import threading
import time
import traceback
import typing
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import uvloop
from hypothesis import HealthCheck, Phase, given, seed, settings

from shadowdiff.observation import ErrorClass, Observation
from shadowdiff.pair import Pair
from shadowdiff.replay.engine import replay
from shadowdiff.report.collect import RunCollector
from shadowdiff.report.document import build_report
from shadowdiff.scenario import Scenario, load_scenario
from shadowdiff.transport import open_transport
from tests.fault_servers import read_head, reset
from tests.fuzz.answers import Answer, answers

# The scenario's timeouts stay well under HANG_S: a pair that takes longer is a hang.
HANG_S = 5.0
CONNECT_S = 1.0
TOTAL_S = 0.5
DOCUMENTED_CLASSES = frozenset(typing.get_args(ErrorClass))
MAX_RSS_MB = 500
BATCH = 500

# --- the server -----------------------------------------------------------------------------


class FuzzServer:
    """Answers every connection with `answer` (as `side` is given it), on a plain and a TLS
    port."""

    def __init__(self, context: ssl.SSLContext, side: str) -> None:
        self.side = side
        self.answer = Answer("none", b"", None, False, "close")
        self._context = context
        self._servers: list[asyncio.Server] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self.http_port = self.https_port = 0

    async def start(self) -> None:
        for https in (False, True):
            server = await asyncio.start_server(
                functools.partial(self._handle, https=https), "127.0.0.1", 0
            )
            self._servers.append(server)
            port = int(server.sockets[0].getsockname()[1])
            if https:
                self.https_port = port
            else:
                self.http_port = port

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, https: bool
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            async with asyncio.timeout(HANG_S):
                await self._answer(self.answer, reader, writer, https)
        except (OSError, ssl.SSLError, EOFError, TimeoutError, RuntimeError):
            # The client left or gave up (uvloop raises RuntimeError for a write after it
            # closed): that is what it may do.
            pass
        except asyncio.CancelledError:
            pass  # stopped by `stop`: ending normally keeps asyncio from logging it
        finally:
            writer.transport.abort()
            self._handlers.discard(task)

    async def _answer(
        self,
        answer: Answer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        https: bool,
    ) -> None:
        if https:
            if answer.tls == "reset":
                await reader.read(5)
                reset(writer)
                return
            if answer.tls == "garbage":
                await reader.read(5)
                writer.write(answer.data_for(self.side)[: answer.cut])
                await writer.drain()
                return
            if answer.tls == "alert":
                # A fatal unrecognized_name alert record (RFC 8446 section 6), as a listener
                # without a certificate for the SNI answers; written by hand, since a failed
                # server handshake on the event loop aborts without flushing its alert.
                await reader.read(5)
                writer.write(b"\x15\x03\x03\x00\x02\x02\x70")
                await writer.drain()
                writer.close()
                await writer.wait_closed()
                return
            await writer.start_tls(self._context)
        await read_head(reader)
        if answer.upload and not answer.pause:
            # Read the body first; a paused answer comes early instead, before the body is read.
            with contextlib.suppress(asyncio.IncompleteReadError):
                await reader.readexactly(2**20)
        data = answer.data_for(self.side)[: answer.cut]
        if answer.pause and len(data) > 1:
            writer.write(data[: len(data) // 2])
            await writer.drain()
            await asyncio.sleep(0.005)
            data = data[len(data) // 2 :]
        writer.write(data)
        await writer.drain()
        if answer.ending == "reset":
            reset(writer)
        elif answer.ending == "hold":
            await reader.read()  # until the client closes (on its total timeout)
        else:
            writer.close()
            await writer.wait_closed()  # before the abort below, which would drop unsent bytes


# --- the harness ----------------------------------------------------------------------------


@dataclass
class Result:
    """What one answer did to a replay."""

    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (transport, status/class)
    error: str | None = None  # a traceback out of the replay
    hung: bool = False
    loop_errors: list[str] = field(default_factory=list)  # event loop handler calls, log lines
    messages: list[str] = field(default_factory=list)  # of the failures, shortened

    @property
    def undocumented(self) -> list[tuple[str, str]]:
        return [
            (name, outcome)
            for name, outcome in self.outcomes
            if not outcome.isdigit() and outcome not in DOCUMENTED_CLASSES
        ]

    same_answer: bool = True  # both sides were sent the same bytes

    @property
    def agree(self) -> bool:
        """Both transports saw the same status or failure class, when sent the same answer."""
        return not self.same_answer or len({outcome for _, outcome in self.outcomes}) <= 1

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and not self.hung
            and not self.loop_errors
            and not self.undocumented
            and len(self.outcomes) == 2
        )


def _outcome(observation: Observation) -> str:
    if observation.failure is not None:
        return observation.failure.error_class
    return str(observation.status) if observation.status is not None else "no status"


class _LoopErrors(logging.Handler):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(f"log {record.name}: {record.getMessage()}")


class Harness:
    """A uvloop event loop in a thread of its own with the fuzz server on it; `check` replays
    one request against one answer and waits at most HANG_S, so a blocked loop is a hang, not
    a stuck test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = uvloop.new_event_loop()
        self.loop_errors: list[str] = []
        self.loop.set_exception_handler(
            lambda _, context: self.loop_errors.append(
                f"loop: {context.get('message')}: {context.get('exception')!r}"
            )
        )
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        authority = trustme.CA()
        leaf = authority.issue_cert("app.example.com")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(context)
        self.ca_file = folder / "ca.pem"
        authority.cert_pem.write_to_path(str(self.ca_file))
        self.servers = {side: FuzzServer(context, side) for side in ("baseline", "candidate")}
        self.scenarios: dict[tuple[str, bool], Scenario] = {}

    def start(self) -> None:
        self._thread.start()
        targets = {}
        for side, server in self.servers.items():
            self._call(server.start())
            targets[side] = (
                f"{{address: 127.0.0.1, ports: {{http: {server.http_port}, "
                f"https: {server.https_port}}}, tls: {{ca: {self.ca_file}}}}}"
            )
        for scheme in ("http", "https"):
            for upload in (False, True):
                request = (
                    "{name: fuzz, method: POST, allow_unsafe: true, body: {size: 1MiB}, "
                    if upload
                    else "{name: fuzz, "
                )
                path = self.folder / f"fuzz-{scheme}-{upload}.yaml"
                path.write_text(
                    f"targets:\n  baseline: {targets['baseline']}\n"
                    f"  candidate: {targets['candidate']}\n"
                    f"defaults: {{timeouts: {{connect_s: {CONNECT_S}, total_s: {TOTAL_S}}}}}\n"
                    "compare: {noise: {share: 0}}\n"
                    f"requests:\n  - {request}url: '{scheme}://app.example.com/x'}}\n"
                )
                self.scenarios[(scheme, upload)] = load_scenario(path)

    def stop(self) -> None:
        try:
            for server in self.servers.values():
                self._call(server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=HANG_S)
            if not self._thread.is_alive():
                self.loop.close()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=HANG_S)

    def check(self, answer: Answer) -> Result:
        for server in self.servers.values():
            server.answer = answer
        scenario = self.scenarios[("http" if answer.tls == "none" else "https", answer.upload)]
        result = Result(same_answer=answer.candidate is None)
        self.loop_errors.clear()
        logged = _LoopErrors(result.loop_errors)
        logging.getLogger().addHandler(logged)
        future = asyncio.run_coroutine_threadsafe(_replay_once(scenario), self.loop)
        try:
            pairs = future.result(timeout=HANG_S)
            for pair in pairs:
                result.outcomes += [
                    ("lean", _outcome(pair.baseline)),
                    ("aiohttp", _outcome(pair.candidate)),
                ]
                result.messages += [
                    f"{side}: {answer.failure.message[:160]}"
                    for side, answer in (("lean", pair.baseline), ("aiohttp", pair.candidate))
                    if answer.failure is not None
                ]
        except concurrent.futures.TimeoutError:
            future.cancel()
            result.hung = True
        except Exception:
            result.error = traceback.format_exc()
        finally:
            logging.getLogger().removeHandler(logged)
        result.loop_errors += self.loop_errors
        return result


async def _replay_once(scenario: Scenario) -> list[Pair]:
    """The replay as `shadowdiff run` does it, into a collector and a report."""
    pairs: list[Pair] = []
    collector = RunCollector(accept=scenario.accept)

    def sink(pair: Pair) -> None:
        pairs.append(pair)
        collector(pair)

    started = time.perf_counter()
    await replay(
        scenario,
        sink,
        transport_factory=lambda endpoint, n: open_transport(
            endpoint, n, "lean" if endpoint.side == "baseline" else "aiohttp"
        ),
    )
    build_report(
        scenario,
        collector,
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - started,
    )
    return pairs


@contextmanager
def harness() -> Iterator[Harness]:
    with tempfile.TemporaryDirectory(prefix="shadowdiff-fuzz-") as folder:
        running = Harness(Path(folder))
        running.start()
        try:
            yield running
        finally:
            running.stop()


def rss_mb() -> float:
    """The resident set size now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the long profile -----------------------------------------------------------------------


def main(count: int, first_seed: int | None = None) -> int:
    """Replay `count` generated answers; print the counts; 1 when any invariant broke.
    `first_seed` repeats an earlier run (each run prints its own)."""
    if first_seed is None:
        first_seed = random.randrange(2**32)
    print(f"fuzz server: {count} answers, seed {first_seed}", file=sys.stderr, flush=True)
    tally: Counter[str] = Counter()
    outcomes: Counter[tuple[str, str]] = Counter()
    examples: list[str] = []
    started = time.monotonic()

    with harness() as running:

        def fuzz(answer: Answer) -> None:
            result = running.check(answer)
            tally["answers"] += 1
            outcomes.update(result.outcomes)
            broken = {
                "tracebacks": result.error is not None,
                "hangs": result.hung,
                "loop errors": bool(result.loop_errors),
                "undocumented classes": bool(result.undocumented),
                "disagreements": not result.agree,
            }
            for name, happened in broken.items():
                tally[name] += happened
            if not (result.ok and result.agree) and len(examples) < 10:
                examples.append(f"{answer!r}\n  -> {result}")
            if tally["answers"] % 1000 == 0:
                print(
                    f"fuzz server: {tally['answers']} answers, RSS {rss_mb():.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )

        # Hypothesis keeps what a run generated until the run ends: runs of BATCH answers keep
        # the fuzzer's own memory from growing with the count, so the RSS measures shadowdiff.
        for batch, first in enumerate(range(0, count, BATCH)):
            seed(first_seed + batch)(
                settings(
                    max_examples=min(BATCH, count - first),
                    database=None,
                    deadline=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )(given(answers())(fuzz))
            )()

    peak = peak_rss_mb()
    print(f"fuzz server: {tally['answers']} answers in {time.monotonic() - started:.0f} s")
    for name in ("tracebacks", "hangs", "loop errors", "undocumented classes", "disagreements"):
        print(f"  {name}: {tally[name]}")
    print(f"  peak RSS: {peak:.0f} MB (limit {MAX_RSS_MB})")
    for transport in ("lean", "aiohttp"):
        seen = sorted(
            ((outcome, n) for (name, outcome), n in outcomes.items() if name == transport),
            key=lambda item: -item[1],
        )
        print(f"  {transport}: " + ", ".join(f"{outcome} {n}" for outcome, n in seen))
    for example in examples:
        print(example)
    broken = sum(
        tally[name] for name in ("tracebacks", "hangs", "loop errors", "undocumented classes")
    )
    return 1 if broken or peak >= MAX_RSS_MB else 0
