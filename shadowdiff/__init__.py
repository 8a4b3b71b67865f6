"""shadowdiff: replay requests against two entry points and report what differs.

The library is usable without the CLI:

    scenario = load_scenario("scenarios/shop.yaml")
    result = await replay(scenario)
    report = build_report(scenario, result)
"""

__version__ = "0.1.0"
