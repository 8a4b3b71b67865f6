"""The watch's rows as Prometheus series, so that the cutover shows on the dashboards beside
everything else: which entry point DNS sends clients to, each path's requests, errors and
latency, and whether a rollback rule is close or crossed.

A private registry per watch (never the client library's global one), served by the same
`MetricsServer` a run uses. Label values come from closed sets only (`target`: baseline,
candidate, other; `path`: dns, baseline, candidate; `rule`: the two rollback rules): no
hostname, request name or server value, so no secret can reach a series and their number is
fixed. docs/metrics.md lists each one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from shadowdiff.watch.schema import PATHS, IntervalRow

TARGETS: Final = ("baseline", "candidate", "other")
RULES: Final = ("error_rate_points", "p99_ratio")


class WatchMetrics:
    """Counters summed over every row seen, gauges of the latest row. Call `observe` with each
    row as the watch makes it; `registry` is what a server exposes."""

    def __init__(self) -> None:
        self.intervals = 0
        self.requests = dict.fromkeys(PATHS, 0)
        self.errors = dict.fromkeys(PATHS, 0)
        self.latest: IntervalRow | None = None
        self.rollback = False
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, row: IntervalRow) -> None:
        self.intervals += 1
        for path in PATHS:
            self.requests[path] += row["paths"][path]["requests"]
            self.errors[path] += row["paths"][path]["errors"]
        self.rollback = self.rollback or row["verdict"] == "rollback"
        self.latest = row

    def collect(self) -> Iterable[Metric]:
        intervals = CounterMetricFamily(
            "shadowdiff_watch_intervals", "Intervals the watch has judged."
        )
        intervals.add_metric([], self.intervals)
        yield intervals
        requests = CounterMetricFamily(
            "shadowdiff_watch_requests",
            "Requests that ended, by path: following DNS (dns) or straight to an entry point.",
            labels=["path"],
        )
        errors = CounterMetricFamily(
            "shadowdiff_watch_errors",
            "Requests that failed on the wire or were answered with a 5xx, by path.",
            labels=["path"],
        )
        for path in PATHS:
            requests.add_metric([path], self.requests[path])
            errors.add_metric([path], self.errors[path])
        yield requests
        yield errors
        rollback = GaugeMetricFamily(
            "shadowdiff_watch_rollback",
            "1 once a rollback rule was crossed (the watch then ends with exit code 5).",
        )
        rollback.add_metric([], 1 if self.rollback else 0)
        yield rollback
        row = self.latest
        if row is None:
            return
        shares = GaugeMetricFamily(
            "shadowdiff_watch_dns_share",
            "Share of the DNS records, over every hostname, pointing at each target "
            "(latest interval).",
            labels=["target"],
        )
        for target in TARGETS:
            found = row["dns"]["shares"]
            if found is not None:
                shares.add_metric([target], found.get(target, 0.0))
        yield shares
        if row["dns"]["ttl_s"] is not None:
            ttl = GaugeMetricFamily(
                "shadowdiff_watch_dns_ttl_seconds",
                "The smallest TTL of any hostname's answer (latest interval).",
            )
            ttl.add_metric([], row["dns"]["ttl_s"])
            yield ttl
        latency = GaugeMetricFamily(
            "shadowdiff_watch_latency_seconds",
            "Latency percentiles of the latest interval, by path.",
            labels=["path", "quantile"],
        )
        error_rate = GaugeMetricFamily(
            "shadowdiff_watch_error_ratio",
            "Share of the latest interval's requests that failed or got a 5xx, by path.",
            labels=["path"],
        )
        for path in PATHS:
            figures = row["paths"][path]
            for quantile, value_ms in (("0.5", figures["p50_ms"]), ("0.99", figures["p99_ms"])):
                if value_ms is not None:
                    latency.add_metric([path, quantile], value_ms / 1000)
            if figures["error_rate"] is not None:
                error_rate.add_metric([path], figures["error_rate"])
        yield latency
        yield error_rate
        streaks = GaugeMetricFamily(
            "shadowdiff_watch_rollback_streak",
            "Consecutive intervals each rollback rule has been crossed (the rule fires at "
            "rollback_when.intervals).",
            labels=["rule"],
        )
        for rule in RULES:
            streaks.add_metric([rule], row["streaks"].get(rule, 0))
        yield streaks
