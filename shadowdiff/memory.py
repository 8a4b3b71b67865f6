"""This process's peak resident memory, as the report gives it.

getrusage's ru_maxrss is the wrong figure for a process started by another: Linux carries the
parent's peak across fork and exec into it (the kernel keeps the larger of the two), so a run
started from a big process reports the parent's peak. /proc/self/status's VmHWM belongs to the
process's own address space and starts afresh at exec; ru_maxrss is the fallback elsewhere.
"""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
