"""The HTML report's plots, drawn by matplotlib as SVG text, from report data only.

No text of the report reaches a plot: requests are named by their number in the page's
requests table (`#3`), and the page captions each plot in escaped HTML. So a hostile name can
neither inject markup into the SVG nor ask matplotlib for glyphs its fonts lack. Figures are
made with the object API (no pyplot, no global figure state), and each SVG gets ids of its
own (`svg.hashsalt`), since several share one page.

matplotlib is imported when the first plot is drawn: a CLI that writes no HTML never pays
for it.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from shadowdiff.report.schema import DifferenceSummary, Histogram, TimelineEntry
from shadowdiff.spec import SIDES, Side
from shadowdiff.stats.histogram import LatencyHistogram

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe-Ito colours, told apart with any colour vision; the page's legend uses the same.
SIDE_COLOURS: Final[dict[Side, str]] = {"baseline": "#0072b2", "candidate": "#d55e00"}
PAIRS_COLOUR: Final = "#009e73"
_INK: Final = "#333333"
_GRID: Final = "#dddddd"
_PARTIAL: Final = "#eeeeee"
# A CDF drawn from more buckets than this is thinned to the ranks of a fixed grid of shares,
# with the tail kept in full detail: the curve stays exact where it is read (p50 ... p99.99).
_CDF_POINTS: Final = 500
# Values below a microsecond cannot sit on a log axis: they are drawn at one microsecond.
_SMALLEST_MS: Final = 0.001
_PERCENTILE_LINES: Final = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"))
_DIFFERENCE_KEYS: Final[tuple[Literal["p1", "p10", "p50", "p90", "p99"], ...]] = (
    "p1",
    "p10",
    "p50",
    "p90",
    "p99",
)
_SVG_START: Final = re.compile(r"<svg\b")


def _quiet_matplotlib() -> None:
    """Keep matplotlib's own notices off stderr (on a new machine its first import says it is
    building its font cache): a run's stderr is the user's. A level the caller set stays."""
    logger = logging.getLogger("matplotlib")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)


def _figure(width_in: float, height_in: float, left_in: float = 0.6) -> Figure:
    """Fixed margins rather than a layout engine: a layout engine draws every figure twice,
    and no label of ours varies in width (requests are `#n`)."""
    _quiet_matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in))
    figure.subplots_adjust(
        left=left_in / width_in,
        right=1 - 0.35 / width_in,
        bottom=0.5 / height_in,
        top=1 - 0.15 / height_in,
        hspace=0.12,
    )
    return figure


def _plain_numbers(axis: Any, decades: float | None = None) -> None:
    """Tick labels as plain numbers (`0.1`, `20`, `500`): matplotlib's default `10^n` on a
    log axis goes through its TeX-like parser, which made up most of a page's drawing time.
    On a log axis spanning `decades`, more ticks per decade the fewer decades there are."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    if decades is not None:
        subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if decades < 1.2 else (1.0, 2.0, 5.0)
        axis.set_major_locator(LogLocator(base=10, subs=subs if decades < 3 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    # No minor ticks: each is an artist of its own, drawn and laid out, for a faint mark.
    axis.set_minor_locator(NullLocator())


def _svg(figure: Figure, salt: str) -> str:
    """The figure as an `<svg>` element to place in HTML (no XML prologue or doctype)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    start = _SVG_START.search(text)
    return text[start.start() :] if start else text


def _style(axes: Axes) -> None:
    axes.grid(True, color=_GRID, linewidth=0.6)
    axes.set_axisbelow(True)
    for spine in ("top", "right"):
        axes.spines[spine].set_visible(False)
    axes.tick_params(colors=_INK, labelsize=8)


def cdf_points(histogram: Histogram) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(total times in ms, share of answers at or under each), from a report's exact
    histogram: each bucket at its highest value (clamped to the exact maximum), as
    HdrHistogram reports percentiles. Empty when nothing was answered."""
    recorded = LatencyHistogram.from_dict(dict(histogram))
    values_us, counts = recorded.nonzero()
    if recorded.count <= 0 or values_us.size == 0:
        empty = np.zeros(0, dtype=np.float64)
        return empty, empty
    if recorded.max_us is not None:
        values_us = np.minimum(values_us, recorded.max_us)
    shares = np.cumsum(counts) / float(np.sum(counts))
    if values_us.size > _CDF_POINTS:
        grid = np.unique(
            np.concatenate(
                [np.linspace(0, 1, _CDF_POINTS), 1 - np.logspace(-2, -6, _CDF_POINTS // 10)]
            )
        )
        keep = np.unique(np.minimum(np.searchsorted(shares, grid), shares.size - 1))
        values_us, shares = values_us[keep], shares[keep]
    values_ms = np.maximum(values_us / 1000.0, _SMALLEST_MS)
    return values_ms.astype(np.float64), shares.astype(np.float64)


def latency_cdf_svg(histograms: Mapping[Side, Histogram], salt: str) -> str | None:
    """Both sides' total-time distributions as CDFs on a log time axis; None when neither
    side has an answer."""
    curves = {side: cdf_points(histograms[side]) for side in SIDES if side in histograms}
    if not any(values.size for values, _ in curves.values()):
        return None
    figure = _figure(4.6, 2.7, left_in=0.65)
    axes = figure.add_subplot()
    _style(axes)
    for side, (values, shares) in curves.items():
        if not values.size:
            continue
        # Starts at zero just left of the fastest answer: the step up is the first bucket.
        axes.plot(
            np.concatenate([[values[0]], values]),
            np.concatenate([[0.0], shares]),
            drawstyle="steps-post",
            color=SIDE_COLOURS[side],
            linewidth=2.0,
            label=f"{side} ({int(histograms[side]['count'])})",
        )
    for share, name in _PERCENTILE_LINES:
        axes.axhline(share, color=_GRID, linewidth=0.8, linestyle="--", zorder=0)
        axes.annotate(
            name, (1.0, share), xycoords=("axes fraction", "data"), fontsize=7, color=_INK
        )
    axes.set_xscale("log")
    drawn = np.concatenate([values for values, _ in curves.values()])
    # Room on both sides, so a side answered once is a visible step, not the frame's edge.
    low, high = float(drawn.min()) / 1.4, float(drawn.max()) * 1.4
    axes.set_xlim(low, high)
    _plain_numbers(axes.xaxis, decades=float(np.log10(high / low)))
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("total time (ms, log scale)", fontsize=8, color=_INK)
    axes.set_ylabel("share of answers ≤ time", fontsize=8, color=_INK)
    axes.legend(fontsize=7, loc="lower right", frameon=False)
    return _svg(figure, salt)


def difference_svg(rows: Sequence[tuple[str, DifferenceSummary]], salt: str) -> str | None:
    """Candidate minus baseline per pair, one row per label (`all`, `#3`...): a thin line
    from p1 to p99, a thick bar from p10 to p90, a mark at p50, and the 95% interval of the
    median where the report has it. Only these percentiles are in the report, so nothing is
    drawn between them: no density, no smoothing. None when no row has a pair."""
    shown = [(label, summary) for label, summary in rows if summary.get("count", 0) > 0]
    shown = [row for row in shown if all(key in row[1] for key in _DIFFERENCE_KEYS)]
    if not shown:
        return None
    figure = _figure(6.4, 0.9 + 0.32 * len(shown))
    axes = figure.add_subplot()
    _style(axes)
    for position, (_, summary) in enumerate(shown):
        values = {key: float(summary[key]) for key in _DIFFERENCE_KEYS}
        axes.hlines(position, values["p1"], values["p99"], color=_INK, linewidth=1.0)
        axes.hlines(position, values["p10"], values["p90"], color=PAIRS_COLOUR, linewidth=7.0)
        interval = summary.get("p50_interval")
        if interval and len(interval) == 2:
            axes.hlines(position, interval[0], interval[1], color=_INK, linewidth=3.0)
        axes.plot([values["p50"]], [position], marker="D", color=_INK, markersize=5)
    axes.axvline(0, color=SIDE_COLOURS["candidate"], linewidth=1.0, linestyle="--")
    axes.set_yticks(range(len(shown)), [label for label, _ in shown])
    axes.invert_yaxis()
    axes.set_xscale("symlog", linthresh=1.0)
    axes.margins(x=0.06)  # a mark at either end stays clear of the frame
    _plain_numbers(axes.xaxis)
    axes.set_xlabel(
        "candidate - baseline, same request, same moment (ms; linear within ±1, log beyond)",
        fontsize=8,
        color=_INK,
    )
    return _svg(figure, salt)


def timeline_svg(timeline: TimelineEntry, salt: str) -> str | None:
    """Pairs completed per second, and failures and 5xx answers per second per side, over
    the run; None under two intervals (nothing to draw a line through)."""
    pairs = np.asarray(timeline["pairs"], dtype=np.float64)
    if pairs.size < 2:
        return None
    interval_s = float(timeline["interval_s"])
    starts_s = np.arange(pairs.size + 1, dtype=np.float64) * interval_s

    def per_second(counts: Sequence[int]) -> npt.NDArray[np.float64]:
        rate = np.asarray(counts, dtype=np.float64) / interval_s
        return np.concatenate([rate, rate[-1:]])  # the last step is drawn to its end

    figure = _figure(6.4, 3.6)
    throughput, errors = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for axes in (throughput, errors):
        _style(axes)
        # The run started and ended inside these: their rates are of part of an interval.
        for start_s in (starts_s[0], starts_s[-2]):
            axes.axvspan(start_s, start_s + interval_s, color=_PARTIAL, linewidth=0, zorder=0)
    throughput.plot(
        starts_s,
        per_second(timeline["pairs"]),
        drawstyle="steps-post",
        color=PAIRS_COLOUR,
        linewidth=1.8,
        label="pairs completed",
    )
    throughput.set_ylabel("pairs/s", fontsize=8, color=_INK)
    throughput.set_ylim(bottom=0)
    drawn = 0
    for side in SIDES:
        colour = SIDE_COLOURS[side]
        series: dict[str, Any] = {
            "failures": timeline["failures"][side],
            "5xx": timeline["server_errors"][side],
        }
        for (name, counts), style in zip(series.items(), ("-", ":"), strict=True):
            if not any(counts):
                continue  # a line along zero would hide the other side's
            drawn += 1
            errors.plot(
                starts_s,
                per_second(counts),
                drawstyle="steps-post",
                color=colour,
                linestyle=style,
                linewidth=1.5,
                label=f"{side} {name}",
            )
    if drawn:
        errors.legend(fontsize=7, ncols=2, frameon=False, loc="upper right")
    else:
        errors.text(
            0.5,
            0.5,
            "no transport failures and no 5xx answers on either side",
            transform=errors.transAxes,
            ha="center",
            va="center",
            fontsize=8,
            color=_INK,
        )
    errors.set_ylabel("per second", fontsize=8, color=_INK)
    errors.set_ylim(bottom=0)
    errors.set_xlabel("seconds since the first interval", fontsize=8, color=_INK)
    return _svg(figure, salt)
