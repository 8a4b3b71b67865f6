"""`shadowdiff watch`: during the DNS cutover, where DNS points, how each entry point does
against a checkpoint taken before, and when to roll back.

dns.py asks a nameserver; shares.py says which target each answer points to; checkpoint.py
reads a run's report into figures; compare.py judges an interval against them (pure);
rollback.py keeps the streaks (pure); loop.py sends and ties it together; report.py writes
what was seen.
"""

from shadowdiff.watch.checkpoint import read_checkpoint
from shadowdiff.watch.compare import Comparison, Figures, Limits, compare_with_checkpoint
from shadowdiff.watch.dns import Nameserver, Resolution, parse_nameserver, resolve
from shadowdiff.watch.loop import WatchOptions, WatchResult, watch
from shadowdiff.watch.report import (
    build_watch_report,
    checkpoint_side,
    watch_redactor,
    write_watch_report,
)
from shadowdiff.watch.rollback import RollbackRules

__all__ = [
    "Comparison",
    "Figures",
    "Limits",
    "Nameserver",
    "Resolution",
    "RollbackRules",
    "WatchOptions",
    "WatchResult",
    "build_watch_report",
    "checkpoint_side",
    "compare_with_checkpoint",
    "parse_nameserver",
    "read_checkpoint",
    "resolve",
    "watch",
    "watch_redactor",
    "write_watch_report",
]
