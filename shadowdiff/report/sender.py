"""Whether the sender, not the targets, was the bottleneck of a run. Pure: a `LoadOutcome` in,
the report's `load.sender` entry out.

The measures come from shadowdiff/replay/saturation.py. A stalling target fills the pairs in
flight and leaves this process idle; a saturated sender's event loop wakes late, or its pairs
start late while it wants a whole core (running, or waiting for one on a machine busy with
other work). Only the second is marked `limited`; when neither is clear, the reason says that
both may count. Blaming the sender for a slow target would hide the very regression a run
looks for, and blaming the target for a busy sender is a false alarm.
"""

from __future__ import annotations

from typing import Final

from shadowdiff.pair import LoadOutcome
from shadowdiff.report.schema import Load, SenderHealth

# The event loop woke a timer late (by over 5 ms) in more than this share of its ticks while
# the sender used at least half a core (IDLE_CPU_SHARE): its own work made the loop late. (A
# stalling target leaves the loop idle; on a machine busy with other work an idle sender's
# loop is late too, which says nothing of the targets or of its own load.)
BUSY_SHARE: Final = 0.2
MIN_TICKS: Final = 10  # a run under 0.2 s says nothing about its loop
# Or more than this share of scheduled pairs started late because of the sender, while it
# used at least this share of a core (running or waiting to run).
LATE_SHARE: Final = 0.05
CPU_SHARE: Final = 0.8
# Below this share of a core the sender had time to spare: pairs that waited for a slot in
# flight waited for the targets. Above it, its own work on the pairs in flight (which hold
# their slots) may have made them wait as well.
IDLE_CPU_SHARE: Final = 0.5


def sender_health(load: LoadOutcome) -> SenderHealth:
    scheduled = load.model in ("open", "recorded")
    busy_share = load.loop_late_ticks / load.loop_ticks if load.loop_ticks >= MIN_TICKS else 0.0
    late_share = load.late_by_sender / load.pairs if scheduled and load.pairs else 0.0
    limited = (load.cpu_share >= IDLE_CPU_SHARE and busy_share > BUSY_SHARE) or (
        load.cpu_share >= CPU_SHARE and late_share > LATE_SHARE
    )
    return {
        "limited": limited,
        "late_by_sender": load.late_by_sender,
        "late_by_in_flight": load.late_by_slots,
        "loop_busy_share": round(busy_share, 4),
        "loop_lag_max_ms": round(load.loop_lag_max_ms, 1),
        "cpu_share": round(load.cpu_share, 3),
    }


def sender_reason(health: SenderHealth, scheduled: bool) -> str:
    """Why the run went as it did, for a person: the sender's part, or the targets'."""
    if health["limited"]:
        # A busy loop is also slow to finish the pairs in flight, so slot waits are its doing
        # too: every late start counts against the sender here.
        late_starts = health["late_by_sender"] + health["late_by_in_flight"]
        late = f"{late_starts} pairs started late; " if scheduled and late_starts else ""
        return (
            f"the sender was the bottleneck, not the targets: {late}it used "
            f"{health['cpu_share']:.0%} of a core (running or waiting to run) and its event loop "
            "woke late in "
            f"{health['loop_busy_share']:.0%} of ticks (up to {health['loop_lag_max_ms']:.0f} "
            "ms); latencies include this process's own delay: add --workers or lower the rate"
        )
    if scheduled and health["late_by_in_flight"]:
        waited = f"{health['late_by_in_flight']} pairs waited for a slot in flight"
        if health["cpu_share"] < IDLE_CPU_SHARE:
            return (
                f"{waited}: the targets answered too slowly for this rate (load.max_in_flight "
                "bounds the pairs in flight)"
            )
        return (
            f"{waited} (load.max_in_flight), while this process was busy too: it used "
            f"{health['cpu_share']:.0%} of a core, so the targets' answers and its own work on "
            "the pairs in flight both count; run again with more --workers to tell them apart"
        )
    return ""


def sender_note(load: Load) -> str | None:
    """What to say of the sender beside a run's load, whether or not its rate held: why it was
    the bottleneck, or None when it was not (a rate not held says the rest in `reason`)."""
    sender = load.get("sender")  # absent from reports written before it was measured
    if sender is None or not sender["limited"]:
        return None
    return sender_reason(sender, scheduled=load["model"] in ("open", "recorded"))
