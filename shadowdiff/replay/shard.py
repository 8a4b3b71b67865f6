"""Shards: one run split over machines (`run --shard K/N`, or a Kubernetes Indexed Job), each
sending a deterministic, disjoint share of it. Pure: the environment is passed in.

A shard is a share of the run in exactly the sense a `--workers` process is (see
`pacing.deal`): each request's occurrences are dealt in turn, so every shard sends the
scenario's mix, and the N shards together send each (request, repetition) exactly once. A
shard's workers split its share again: worker k of w in shard K of N takes share
(K + N*k, N*w), which deals the same turns as shard K's and splits them w ways. Load models
follow from the dealing: an open model's schedule is walked by every shard and each keeps its
turns (1/N of the rate), and a closed model's pairs in flight are divided by N, as they are
between workers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from shadowdiff.errors import UsageError
from shadowdiff.replay.pacing import deal, work_items
from shadowdiff.scenario import Scenario

# Kubernetes sets this in each pod of an Indexed Job (completionMode: Indexed); the count is
# not set by Kubernetes, so the manifest passes `spec.completions` as SHARDS_VARIABLE.
INDEX_VARIABLE: Final = "JOB_COMPLETION_INDEX"
SHARDS_VARIABLE: Final = "SHADOWDIFF_SHARDS"
# More shards than this is a typo, not a fleet (Kubernetes caps an Indexed Job at 100,000).
MAX_SHARDS: Final = 100_000
_SHARD = re.compile(r"([0-9]{1,6})/([0-9]{1,6})")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def share(self, worker: int = 0, workers: int = 1) -> tuple[int, int]:
        """The `pacing.deal` share of worker `worker` of `workers` inside this shard."""
        return self.index + self.count * worker, self.count * workers


def parse_shard(text: str, origin: str = "--shard") -> Shard:
    """`K/N` with 0 <= K < N; anything else is a `UsageError` naming `origin`."""
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise UsageError(
            f"{origin}: expected K/N (shard K of N, counted from 0, such as 0/4); got {text!r}"
        )
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise UsageError(f"{origin}: the shard count must be 1 to {MAX_SHARDS:,}; got {count}")
    if index >= count:
        raise UsageError(
            f"{origin}: shard index {index} is not below the count {count} "
            f"(shards are counted from 0: 0/{count} to {count - 1}/{count})"
        )
    return Shard(index, count)


def resolve_shard(flag: str | None, environ: Mapping[str, str]) -> Shard | None:
    """The shard this process runs, or None for a whole run.

    `--shard K/N` wins. `--shard auto`, or no flag while JOB_COMPLETION_INDEX is set, reads
    the index from JOB_COMPLETION_INDEX and the count from SHADOWDIFF_SHARDS: a pod of an
    Indexed Job shards itself, and the same scenario run by hand outside one does not. An
    index without a count is refused rather than guessed: a pod running the whole run N times
    over would multiply the load on production."""
    if flag is not None and flag != "auto":
        return parse_shard(flag)
    index = environ.get(INDEX_VARIABLE)
    count = environ.get(SHARDS_VARIABLE)
    if index is None:
        if flag == "auto":
            raise UsageError(
                f"--shard auto: {INDEX_VARIABLE} is not set (Kubernetes sets it in the pods "
                "of an Indexed Job)"
            )
        return None
    if count is None:
        raise UsageError(
            f"{INDEX_VARIABLE} is {index!r} but {SHARDS_VARIABLE} is not set: pass the Job's "
            f"spec.completions as {SHARDS_VARIABLE}, or give --shard K/N"
        )
    return parse_shard(f"{index}/{count}", f"{INDEX_VARIABLE}/{SHARDS_VARIABLE}")


def planned_pairs(scenario: Scenario, shard: Shard) -> int | None:
    """Pairs shard `shard` sends in a full run (None when the run is bounded by time): its
    turns counted as `deal` gives them, so the N shards' counts add up to the whole run's."""
    if scenario.pair_count is None:
        return None
    items = work_items(scenario, scenario.load)
    return sum(1 for _ in deal(items, shard.share(), lambda item: item[0].name))
