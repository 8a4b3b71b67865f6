"""A run's live metrics wired to its replay: the /metrics server listening before the first
pair, the load model's rates as the schedule and the pairs so far give them, every worker's
counts, and at the end the report's own load figures, the exit code and the push.

`run.py` drives it: `start` (a `UsageError` for a port that cannot be listened on, before
anything is sent), `replay_starting`, `workers_started`, then `end` once the report is built
(interrupted or not), and `close` in any case.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shadowdiff.metrics.board import Counts
from shadowdiff.metrics.exposition import LoadRates, RunMetrics
from shadowdiff.metrics.options import MetricsOptions
from shadowdiff.pair import LoadOutcome
from shadowdiff.replay.pacing import model_name, rates_so_far, schedule_for
from shadowdiff.replay.workers import SharedProgress
from shadowdiff.scenario import Scenario

if TYPE_CHECKING:
    from shadowdiff.metrics.serve import MetricsServer


class LiveMetrics:
    """One run's metrics, served and/or pushed as `options` say."""

    def __init__(
        self, scenario: Scenario, options: MetricsOptions, *, follow: bool, tls_only: bool
    ) -> None:
        self.options = options
        planned = None if follow else 0 if tls_only else scenario.pair_count
        self.metrics = RunMetrics(pairs_planned=planned)
        self._server: MetricsServer | None = None
        load = None if follow else scenario.load
        model = "follow" if follow else model_name(load)
        # The schedule as the replay will follow it (only its planned counts are read here).
        schedule = None if follow else schedule_for(scenario, load, random.Random(0))

        def rates(counts: Counts) -> LoadRates | None:
            started_ns = counts.replay_started_ns
            if started_ns is None:
                return None
            elapsed_s = (time.monotonic_ns() - started_ns) / 1e9
            target, current, achieved = rates_so_far(
                load, schedule, elapsed_s, counts.pairs_measured
            )
            return LoadRates(model, target, current, achieved)

        self.metrics.load_rates = rates

    async def start(self, on_serving: Callable[[str], None] | None = None) -> None:
        """Listen for scrapes when a port is given (`on_serving` is told the URL)."""
        if self.options.port is None:
            return
        # Imported here: serving pulls in aiohttp's web server, a fifth of the CLI's start-up
        # time, which a run without --metrics-port should not pay.
        from shadowdiff.metrics.serve import MetricsServer

        server = MetricsServer(self.metrics.registry)
        url = await server.start(self.options.address, self.options.port)
        self._server = server
        if on_serving is not None:
            on_serving(url)

    def replay_starting(self) -> None:
        """This process's replay starts now: the load's clock starts (the TLS probe before it
        is not part of the load). Worker processes start their own clocks."""
        self.metrics.board.replay_started(time.monotonic_ns())

    def workers_started(self, shared: SharedProgress) -> None:
        if shared.boards is not None:
            self.metrics.add_boards(shared.boards, shared.workers)

    async def end(self, load: LoadOutcome | None, exit_code: int) -> str | None:
        """The run has ended: the server stops, then the series take their final figures (a
        scrape meanwhile sees live ones only) and the push goes; returns a line when the push
        failed."""
        await self.close()
        if load is not None:
            final = LoadRates(load.model, load.target_rate, None, load.achieved_rate)
            self.metrics.load_rates = lambda _: final
        self.metrics.exit_code = exit_code
        if self.options.push_url is None:
            return None
        from shadowdiff.metrics.serve import push

        return await push(self.metrics.registry, self.options.push_url, self.options.job)

    async def close(self) -> None:
        """Stop serving (again: a no-op)."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.close()
