"""shadowdiff: replay requests against two entry points and report what differs.

The library does everything the CLI does:

    import asyncio
    from shadowdiff.scenario import load_scenario
    from shadowdiff.run import RunOptions, run

    scenario = load_scenario("scenarios/shop.yaml")
    result = asyncio.run(run(scenario, RunOptions(concurrency=8)))
    print(result.report["outcome"])  # {"exit_code": 1, "reason": "4 of 14 pairs differ (...)"}

`run` returns what completed also when its task is cancelled; `run_scenario(scenario)` returns
just the report. The stages are separate too: `shadowdiff.replay.engine.replay` sends pairs to
a sink, `shadowdiff.compare.compare` diffs two observations, `shadowdiff.report.RunCollector`
tallies, `shadowdiff.report.build_report` makes the versioned report,
`shadowdiff.tls.probe_scenario` probes TLS.
"""

__version__ = "0.1.0"
