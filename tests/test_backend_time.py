"""Edge vs backend time: what an answer says its backend took (Server-Timing, Envoy's upstream
time) splits each side's total, so the report tells an entry point that adds time from a
backend that is slower. Real proxies and backends on loopback, with planted delays."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from io import StringIO
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from shadowdiff.backend_time import MAX_BACKEND_MS, backend_time, edge_split
from shadowdiff.render.terminal import print_report
from shadowdiff.replay.engine import replay
from shadowdiff.report import RunCollector, build_report
from shadowdiff.report.schema import Report
from shadowdiff.scenario import load_scenario


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("Server-Timing", "app;dur=12.5")], (12.5, "server-timing")),
        ([("server-timing", 'db;dur=3, APP;desc="handler";dur=7')], (7.0, "server-timing")),
        ([("Server-Timing", "total;dur=9"), ("Server-Timing", "upstream;dur=4")], (4.0, "server-timing")),
        ([("Server-Timing", 'cache;desc="a,b;dur=1", app;dur=2')], (2.0, "server-timing")),
        ([("Server-Timing", 'app;desc="x\\",y;dur=9";dur=3')], (3.0, "server-timing")),
        ([("X-Envoy-Upstream-Service-Time", "40")], (40.0, "x-envoy-upstream-service-time")),
        ([("Server-Timing", "app;dur=5"), ("x-envoy-upstream-service-time", "9")], (5.0, "server-timing")),
        ([("Server-Timing", "db;dur=5"), ("x-envoy-upstream-service-time", "9")], (9.0, "x-envoy-upstream-service-time")),
        ([("Server-Timing", "app;dur=NaN")], (None, "ignored")),
        ([("Server-Timing", "app;dur=-3")], (None, "ignored")),
        ([("Server-Timing", "app;dur=1e3")], (None, "ignored")),
        ([("Server-Timing", "app;dur=inf")], (None, "ignored")),
        ([("Server-Timing", "app;dur=fast")], (None, "ignored")),
        ([("Server-Timing", "app")], (None, "ignored")),
        ([("Server-Timing", "app;dur=1;dur=2")], (None, "ignored")),
        ([("Server-Timing", "app;dur=1, app;dur=2")], (None, "ignored")),
        ([("Server-Timing", "app;dur=99999999999")], (None, "ignored")),
        ([("Server-Timing", "app;dur=1" + ", x" * 3000)], (None, "ignored")),
        ([("X-Envoy-Upstream-Service-Time", "4"), ("X-Envoy-Upstream-Service-Time", "4")], (None, "ignored")),
        ([("X-Envoy-Upstream-Service-Time", "-4")], (None, "ignored")),
        ([("X-Envoy-Upstream-Service-Time", "")], (None, "ignored")),
        ([("Server-Timing", "db;dur=5")], None),
        ([("Content-Type", "text/plain")], None),
    ],
    ids=[
        "app", "case-and-desc", "preference", "quoted-comma", "escaped-quote", "envoy", "server-timing-first",
        "envoy-when-no-backend-metric", "nan", "negative", "exponent", "infinity", "text",
        "no-dur", "two-durs", "repeated-metric", "over-an-hour", "huge-field", "repeated-envoy",
        "negative-envoy", "empty-envoy", "other-metric-only", "nothing",
    ],
)  # fmt: skip
def test_backend_time_reads_what_the_answer_says(
    headers: list[tuple[str, str]], expected: tuple[float | None, str] | None
) -> None:
    assert backend_time(tuple(headers)) == expected


def test_a_backend_time_longer_than_the_exchange_is_ignored() -> None:
    assert edge_split((("Server-Timing", "app;dur=12"),), 10_000).source == "ignored"  # type: ignore[union-attr]
    assert edge_split((("Server-Timing", "app;dur=4"),), 10_000) == (6000, 4000, "server-timing")


_HEADER_TEXT = st.text(
    st.characters(codec="latin-1") | st.sampled_from(list(";,=\"'app dur total -.eE0123456789")),
    max_size=60,
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["Server-Timing", "server-timing", "X-Envoy-Upstream-Service-Time", "Other"]
            ),
            _HEADER_TEXT | st.builds(lambda x: f"app;dur={x}", st.floats() | st.integers()),
        ),
        max_size=4,
    ),
    st.integers(min_value=0, max_value=10**12),
)
def test_any_header_values_give_a_usable_time_or_none(
    headers: list[tuple[str, str]], total_us: int
) -> None:
    found = backend_time(tuple(headers))
    if found is not None and found.ms is not None:
        assert math.isfinite(found.ms) and 0 <= found.ms <= MAX_BACKEND_MS
    split = edge_split(tuple(headers), total_us)
    if split is not None:
        assert split.edge_us >= 0 and split.backend_us >= 0
        assert split.source == "ignored" or split.edge_us + split.backend_us == total_us


async def _start(handler: Callable[[web.Request], Any], address: str) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, 0).start()
    return runner, runner.addresses[0][1]


def _backend(delay_s: float, server_timing: bool) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        started = time.perf_counter()
        await asyncio.sleep(delay_s)
        took_ms = (time.perf_counter() - started) * 1000
        headers = {"Server-Timing": f"db;dur=1, app;dur={took_ms:.2f}"} if server_timing else {}
        return web.Response(text="ok", headers=headers)

    return handle


def _proxy(
    session: aiohttp.ClientSession, backend_port: int, delay_s: float, envoy: bool
) -> Callable[[web.Request], Any]:
    """An entry point: waits `delay_s` of its own, then forwards to the backend and passes its
    Server-Timing on; as Envoy, it says how long the upstream took."""

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(delay_s)
        started = time.perf_counter()
        async with session.get(f"http://127.0.0.1:{backend_port}{request.raw_path}") as answer:
            body = await answer.read()
        upstream_ms = (time.perf_counter() - started) * 1000
        headers = {k: v for k, v in answer.headers.items() if k.lower() == "server-timing"}
        if envoy:
            headers["X-Envoy-Upstream-Service-Time"] = str(int(upstream_ms))
        return web.Response(body=body, headers=headers)

    return handle


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def start(handler: Callable[[web.Request], Any], address: str = "127.0.0.1") -> int:
        runner, port = await _start(handler, address)
        runners.append(runner)
        return port

    async def entry_point(
        address: str, backend_delay_s: float, proxy_delay_s: float, source: str
    ) -> str:
        backend = await start(_backend(backend_delay_s, source == "server-timing"))
        port = await start(_proxy(session, backend, proxy_delay_s, source == "envoy"), address)
        return f"address: {address}\n    ports: {{http: {port}, https: {port}}}"

    yield entry_point
    await session.close()
    for runner in runners:
        await runner.cleanup()


async def _run(path: Path) -> Report:
    scenario = load_scenario(path)
    collector = RunCollector()
    await replay(scenario, collector)
    return build_report(scenario, collector, started_at="t", duration_s=1.0)


PLANTED_MS = 50


@pytest.mark.parametrize("source", ["server-timing", "envoy"])
@pytest.mark.parametrize("slower", ["entry point", "backend"])
async def test_the_report_tells_a_slower_entry_point_from_a_slower_backend(
    servers: Callable[..., Any], write_scenario: Callable[..., Path], source: str, slower: str
) -> None:
    baseline = await servers("127.0.0.1", 0.01, 0.0, source)
    candidate = await servers(
        "127.0.0.2",
        0.01 + (PLANTED_MS / 1000 if slower == "backend" else 0),
        PLANTED_MS / 1000 if slower == "entry point" else 0.0,
        source,
    )
    path = write_scenario(
        baseline,
        candidate,
        """\
        defaults: {concurrency: 4}
        compare: {noise: {share: 0}}
        requests:
          - {name: orders, url: "http://shop.example.com/orders", repeat: 24}
        """,
    )
    report = await _run(path)

    (request,) = report["requests"]
    edge, backend = request["latency_ms"]["edge"], request["latency_ms"]["backend"]
    assert edge["baseline"]["count"] == edge["candidate"]["count"] == 24
    assert edge["difference"]["count"] == 24
    shifted, alike = (edge, backend) if slower == "entry point" else (backend, edge)
    assert PLANTED_MS * 0.7 < shifted["difference"]["p50"] < PLANTED_MS * 2
    assert abs(alike["difference"]["p50"]) < PLANTED_MS * 0.3
    # Run-wide too, with where the times came from.
    wanted = "server-timing" if source == "server-timing" else "x-envoy-upstream-service-time"
    latency = report["latency"]
    assert latency["backend_time_from"] == {"baseline": {wanted: 24}, "candidate": {wanted: 24}}
    assert latency["edge"]["difference"]["count"] == 24
    output = StringIO()
    print_report(report, Console(file=output, width=120))
    printed = output.getvalue()
    assert "Edge and backend time" in printed
    assert f"its {slower} +" in printed


async def test_hostile_backend_times_are_counted_and_ignored(
    servers: Callable[..., Any], write_scenario: Callable[..., Path]
) -> None:
    answers = iter(
        [
            {"Server-Timing": "app;dur=NaN"},
            {"Server-Timing": "app;dur=1" + ", junk" * 2000},
            {"X-Envoy-Upstream-Service-Time": "-7"},
            {"Server-Timing": "app;dur=99999999"},
        ]
        * 2
    )

    async def hostile(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers=next(answers))

    runner, port = await _start(hostile, "127.0.0.1")
    try:
        target = f"address: 127.0.0.1\n    ports: {{http: {port}, https: {port}}}"
        path = write_scenario(
            target,
            target,
            """\
            defaults: {concurrency: 1}
            compare: {noise: {share: 0}}
            requests: [{name: a, url: "http://shop.example.com/", repeat: 4}]
            """,
        )
        report = await _run(path)
    finally:
        await runner.cleanup()

    counted = report["latency"]["backend_time_from"]
    assert counted["baseline"].get("ignored", 0) + counted["candidate"].get("ignored", 0) == 8
    assert "edge" not in report["latency"] and "edge" not in report["requests"][0]["latency_ms"]
