"""A checkpoint: the figures of a `shadowdiff run --json` report taken before the cutover, as
plain `Figures` (requests, errors, a total-time histogram) per side. A file that is not such a
report, or whose fields are not what the report format says, is a `UsageError` naming the
file and the field; never a traceback.

"The baseline as it was" is the checkpoint's baseline side: the entry point production used
before DNS moved, measured by the same requests. Its candidate side is kept too (the report
says how the new entry point did before it took traffic) but nothing is judged against it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

from shadowdiff.errors import UsageError
from shadowdiff.json_document import NOT_JSON, load_json
from shadowdiff.report.files import read_file_bounded
from shadowdiff.spec import SIDES, Side
from shadowdiff.stats.histogram import LatencyHistogram
from shadowdiff.watch.compare import Figures

REPORT_SCHEMA: Final = "shadowdiff.report/1"  # the one `shadowdiff run --json` writes
# A report of a long run with every pair record is tens of MB; past this it is not one.
MAX_CHECKPOINT_BYTES: Final = 512 * 1024**2
# Buckets a histogram may hold: HdrHistogram at 3 digits has about 1024 per power of two.
_MAX_BUCKETS: Final = 100_000


def is_error_status(status: int) -> bool:
    """What counts as an error besides a failure on the wire: a 5xx, the entry point's or its
    backend's fault. A 4xx is the request's (a 404 probe answers 404 on both sides)."""
    return 500 <= status <= 599


def read_checkpoint(path: str | Path) -> dict[Side, Figures]:
    """Each side's figures in the report at `path`."""
    where = str(path)
    document = load_json(read_file_bounded(path, MAX_CHECKPOINT_BYTES, "a shadowdiff report"))
    if document is NOT_JSON:
        raise UsageError(f"{where}: not JSON (or nested too deep): not a shadowdiff report")
    return checkpoint_figures(document, where)


def checkpoint_figures(document: Any, where: str = "checkpoint") -> dict[Side, Figures]:
    """The figures of a report already read (the dict `shadowdiff run --json` writes)."""
    if not isinstance(document, dict) or document.get("schema") != REPORT_SCHEMA:
        schema = document.get("schema") if isinstance(document, dict) else None
        raise UsageError(
            f"{where}: schema {_short(schema)} is not {REPORT_SCHEMA!r}: give the JSON report "
            "of `shadowdiff run --json`"
        )
    histograms = _field(document, ("latency", "histograms"), dict, where)
    requests = _field(document, ("requests",), list, where)
    figures: dict[Side, Figures] = {}
    for side in SIDES:
        histogram = _histogram(_field(histograms, (side,), dict, where, "latency.histograms"))
        if histogram is None:
            raise UsageError(f"{where}: latency.histograms.{side}: not a latency histogram")
        answered = errors = 0
        for index, entry in enumerate(requests):
            at = f"requests[{index}]"
            statuses = _field(entry, ("status", side), dict, where, at)
            failures = _field(entry, ("failures", side), dict, where, at)
            for status, count in statuses.items():
                count = _count(count, where, f"{at}.status.{side}")
                answered += count
                if status.isdigit() and is_error_status(int(status)):
                    errors += count
            for failure in failures.values():
                failed = _count(
                    failure.get("count") if isinstance(failure, dict) else None,
                    where,
                    f"{at}.failures.{side}",
                )
                answered += failed
                errors += failed
        figures[side] = Figures(answered, errors, histogram)
    if figures["baseline"].requests == 0:
        raise UsageError(
            f"{where}: the baseline answered nothing in this report: it cannot be a checkpoint"
        )
    return figures


def _field(document: Any, keys: tuple[str, ...], kind: type, where: str, at: str = "") -> Any:
    value = document
    path = at
    for key in keys:
        path = f"{path}.{key}" if path else key
        if not isinstance(value, dict) or key not in value:
            raise UsageError(f"{where}: {path}: missing: not a shadowdiff run report")
        value = value[key]
    if not isinstance(value, kind):
        raise UsageError(f"{where}: {path}: expected {kind.__name__}")
    return value


def _count(value: Any, where: str, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise UsageError(f"{where}: {at}: expected a count")
    return value


def _histogram(data: dict[str, Any]) -> LatencyHistogram | None:
    """A histogram from its report form, or None when any field is not what it should be."""
    buckets = data.get("buckets")
    count, low, high, total = (data.get(key) for key in ("count", "min", "max", "sum"))
    squares = data.get("sum_squares")
    if data.get("unit") != "us" or not isinstance(buckets, list) or len(buckets) > _MAX_BUCKETS:
        return None
    if not all(_whole(value) for value in (count, total)):
        return None
    if not isinstance(squares, int | float) or isinstance(squares, bool) or math.isnan(squares):
        return None
    if not all(value is None or _whole(value) for value in (low, high)):
        return None
    pairs = [b for b in buckets if isinstance(b, list) and len(b) == 2 and all(map(_whole, b))]
    if len(pairs) != len(buckets) or sum(c for _, c in pairs) != count:
        return None
    if count and (low is None or high is None):
        return None
    return LatencyHistogram.from_dict({**data, "buckets": [[i, c] for i, c in pairs]})


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)[:60]
