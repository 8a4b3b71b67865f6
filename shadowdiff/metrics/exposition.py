"""A run's metrics as Prometheus sees them: a private registry per run (never the client
library's global one, so that a library caller can carry out two runs in one process) with one
collector that reads the boards at each scrape or push and yields the series of series.py.

Nothing is copied per pair: the boards are the counts, and a scrape sums them (the parent's
own, and each worker's slice of shared memory once `--workers` processes start).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from shadowdiff.metrics import series
from shadowdiff.metrics.board import CELLS, Board, Cells, Counts
from shadowdiff.spec import SIDES

# As Prometheus's client libraries write them ("0.0005", "1.0").
_BUCKET_LABELS = [repr(bound) for bound in series.LATENCY_BUCKETS_S] + ["+Inf"]


@dataclass(frozen=True, slots=True)
class LoadRates:
    """The load model's rates, in pairs per second (None: not defined for this model)."""

    model: str  # one of series.LOAD_MODELS
    target: float | None = None  # mean asked for after warm-up, so far
    current_target: float | None = None  # asked for at this moment
    achieved: float | None = None  # mean achieved after warm-up, so far


class RunMetrics:
    """The metrics of one run. Record pairs into `board` (the run's collector does, given it);
    register each worker's shared cells with `add_boards`; `load_rates` (when set) is asked
    at each collection, given the counts so far; set `exit_code` once the run has ended.
    `registry` is what a server exposes and a push sends."""

    def __init__(
        self,
        *,
        pairs_planned: int | None = None,
        started_unix_s: float | None = None,
    ) -> None:
        self.board = Board()
        self.pairs_planned = pairs_planned
        self.started_unix_s = time.time() if started_unix_s is None else started_unix_s
        self.load_rates: Callable[[Counts], LoadRates | None] | None = None
        self.exit_code: int | None = None
        self._boards: list[tuple[Cells, int]] = [(self.board.cells, 0)]
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def add_boards(self, cells: Cells, count: int) -> None:
        """`count` boards laid one after another in `cells` (one per worker process)."""
        self._boards += [(cells, k * CELLS) for k in range(count)]

    def counts(self) -> Counts:
        return Counts(self._boards)

    def collect(self) -> Iterable[Metric]:
        counts = self.counts()
        yield CounterMetricFamily(series.PAIRS.name, series.PAIRS.help, value=counts.pairs)
        yield CounterMetricFamily(
            series.PAIRS_DIFFERING.name, series.PAIRS_DIFFERING.help, value=counts.pairs_differing
        )
        if self.pairs_planned is not None:
            yield GaugeMetricFamily(
                series.PAIRS_PLANNED.name, series.PAIRS_PLANNED.help, value=self.pairs_planned
            )
        requests = CounterMetricFamily(
            series.REQUESTS.name, series.REQUESTS.help, labels=series.REQUESTS.labels
        )
        for labels, value in counts.requests():
            requests.add_metric(labels, value)
        yield requests
        differences = CounterMetricFamily(
            series.DIFFERENCES.name, series.DIFFERENCES.help, labels=series.DIFFERENCES.labels
        )
        for labels, value in counts.differences():
            differences.add_metric(labels, value)
        yield differences
        duration = HistogramMetricFamily(
            series.DURATION.name, series.DURATION.help, labels=series.DURATION.labels
        )
        for side in SIDES:
            cumulative, sum_s = counts.latency(side)
            duration.add_metric([side], list(zip(_BUCKET_LABELS, cumulative, strict=True)), sum_s)
        yield duration
        rates = self.load_rates(counts) if self.load_rates is not None else None
        if rates is not None:
            yield from _load_gauges(rates)
        yield GaugeMetricFamily(series.RUN_START.name, series.RUN_START.help, self.started_unix_s)
        if self.exit_code is not None:
            yield GaugeMetricFamily(
                series.RUN_EXIT_CODE.name, series.RUN_EXIT_CODE.help, self.exit_code
            )


def _load_gauges(rates: LoadRates) -> Iterable[Metric]:
    for entry, value in (
        (series.LOAD_TARGET, rates.target),
        (series.LOAD_CURRENT_TARGET, rates.current_target),
        (series.LOAD_ACHIEVED, rates.achieved),
    ):
        if value is not None:
            gauge = GaugeMetricFamily(entry.name, entry.help, labels=entry.labels)
            gauge.add_metric([rates.model], value)
            yield gauge
