"""Live Prometheus metrics of a run: the series' catalogue (`series`), the counts behind them
(`board`, in shared memory across worker processes), a per-run registry (`exposition`),
where they go (`options`, checked before anything is sent) and the I/O that takes them there
(`serve`: a /metrics endpoint, or a Pushgateway). docs/metrics.md documents
every series. This package knows nothing of the replay: the run wires it in.

Nothing is imported here, so that the collector and the workers can use `board` without
loading the client library.
"""
