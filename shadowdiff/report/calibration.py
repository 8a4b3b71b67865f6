"""What a report says of a noise calibration the baseline refused. Pure: a request's report
entry in, a sentence out, one wording for every format.

A calibrated pair sends the baseline a second request once the pair is answered: one more
request from this client than the candidate has. A baseline that limits a client's rate (or
its connections, while other pairs are in flight) refuses the extra one; the engine then keeps
no noise sample (shadowdiff.replay.engine.refused), and the report says so here, since noise
the run could not measure is noise it cannot set aside.
"""

from __future__ import annotations

from shadowdiff.report.schema import RequestEntry


def refused_calibration_note(entry: RequestEntry) -> str | None:
    """A sentence when the baseline refused some of this request's calibrations, else None."""
    refused = entry.get("noise_refused", 0)  # none in a report saved before it was counted
    if not refused:
        return None
    tried = refused + entry["noise_samples"]
    return (
        f"noise calibration of {entry['name']}: the baseline refused {refused} of {tried} "
        "second requests (429, 503 or no answer) while it answered the pairs' own; they are "
        "not counted as noise. A limit per client (limit-connections, limit-rps) would do "
        "this: raise it for the host running shadowdiff, or set compare.noise.share: 0"
    )
