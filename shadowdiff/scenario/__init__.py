"""Scenario files: the YAML format, its validation, and expansion into request specs."""

from shadowdiff.scenario.load import Scenario, load_scenario, parse_scenario
from shadowdiff.scenario.model import ScenarioFile

__all__ = ["Scenario", "ScenarioFile", "load_scenario", "parse_scenario"]
