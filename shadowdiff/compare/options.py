"""How to compare, as plain data built once from a scenario: what to ignore, which echo formats
to read. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shadowdiff.markers import BUILTIN, Extractor
from shadowdiff.markers.custom import CustomExtractor

if TYPE_CHECKING:
    from shadowdiff.scenario import Scenario


def json_path_pattern(pattern: str) -> re.Pattern[str]:
    """`$.items[*].id` style globs: `*` is one step (a key or an index), `**` any depth."""
    regex = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            regex += ".*"
            index += 2
        elif pattern[index] == "*":
            regex += r"[^.\[\]]+"
            index += 1
        else:
            regex += re.escape(pattern[index])
            index += 1
    return re.compile(f"^{regex}$")


@dataclass(frozen=True)
class CompareOptions:
    ignore_headers: frozenset[str] = frozenset()  # lower-case
    ignore_json: tuple[re.Pattern[str], ...] = ()
    extractors: tuple[Extractor, ...] = BUILTIN
    # Headers each target adds to its own requests: an echo of them differs by design.
    per_target_headers: frozenset[str] = field(default_factory=frozenset)
    # Decoding a Content-Encoding stops here: the scenario's body_capture.
    decoded_body_limit_bytes: int = 65_536

    def ignores_json(self, path: str) -> bool:
        return any(pattern.match(path) for pattern in self.ignore_json)


def compare_options(scenario: Scenario) -> CompareOptions:
    settings = scenario.compare
    custom = tuple(CustomExtractor(spec) for spec in settings.markers)
    return CompareOptions(
        ignore_headers=frozenset(name.lower() for name in settings.ignore_headers),
        ignore_json=tuple(json_path_pattern(p) for p in settings.ignore_json),
        extractors=custom + (BUILTIN if settings.builtin_markers else ()),
        per_target_headers=frozenset(
            name.lower()
            for target in (scenario.targets.baseline, scenario.targets.candidate)
            for name in target.headers
        ),
        decoded_body_limit_bytes=scenario.defaults.body_capture,
    )
