"""shadowdiff: replay requests against two entry points and report what differs.

The library does everything the CLI does:

    import asyncio
    from shadowdiff.scenario import load_scenario
    from shadowdiff.run import run_scenario

    scenario = load_scenario("scenarios/shop.yaml")
    report = asyncio.run(run_scenario(scenario))
    print(report["outcome"])  # {"exit_code": 1, "reason": "4 of 14 pairs differ (...)"}

The stages are separate too: `shadowdiff.replay.engine.replay` sends pairs to a sink,
`shadowdiff.compare.compare` diffs two observations, `shadowdiff.report.RunCollector` tallies,
`shadowdiff.report.build_report` makes the versioned report, `shadowdiff.tls.probe_scenario`
probes TLS.
"""

__version__ = "0.1.0"
