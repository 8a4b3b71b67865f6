"""The first code a `--workers` process runs: catch stop signals, then import the rest.

A worker takes most of a second to import shadowdiff (aiohttp, numpy, pydantic). A Ctrl-C in
that time reaches it too (a terminal signals the whole process group); with Python's default
handler it would die there with a traceback. So this module imports nothing heavy, and the
worker's arguments arrive pickled, to be loaded only once the handlers are in place.
"""

from __future__ import annotations

import pickle
from typing import Any

from shadowdiff.stop import STOP


def start(
    arguments: bytes, counters: Any, results: Any, boards: Any = None, pair_counters: Any = None
) -> None:
    STOP.install()
    with STOP.deferred():
        from shadowdiff.replay.workers import run_worker

    run_worker(
        *pickle.loads(arguments),
        counters=counters,
        results=results,
        boards=boards,
        pair_counters=pair_counters,
    )
    STOP.ignore_from_now()  # its results are sent: nothing a signal could still change
