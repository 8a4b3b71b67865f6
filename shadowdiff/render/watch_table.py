"""`shadowdiff watch`'s rolling table, from rows only: a rich Live table on a terminal, one
plain line per interval otherwise, or one JSON object per line (`--json-lines`) for machines.
Every string from a server or a nameserver goes through `displayable` first."""

from __future__ import annotations

import json
from typing import IO, Any, Final

from rich import box
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from shadowdiff.render.terminal import displayable
from shadowdiff.watch.schema import PATHS, CheckpointSide, IntervalRow, WatchReport

# Rows the live table keeps on screen: the newest at the bottom.
LIVE_ROWS: Final = 15
# Each figure three times: following DNS (d), to the baseline (b), to the candidate (c).
COLUMNS: Final = (
    "#",
    "DNS b/c/o%",
    "TTL s",
    "req/s",
    "err% d/b/c",
    "p50 ms d/b/c",
    "p99 ms d/b/c",
    "p99/ckpt",
    "verdict",
)
_VERDICT_STYLE: Final = {
    "ok": "green",
    "rollback": "bold red",
    "candidate_worse": "red",
    "both_worse": "yellow",
    "too_few": "dim",
    "no_rules": "dim",
}


_RULE_NAMES: Final = {"error_rate_points": "errors", "p99_ratio": "p99"}


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}"


def row_cells(row: IntervalRow, interval_s: float) -> list[str]:
    """The row's cells, in `COLUMNS` order, as plain text."""
    dns, paths = row["dns"], row["paths"]
    shares = dns["shares"]
    failed = [host for host in dns["hosts"] if host["error"]]
    pointed = (
        "/".join(f"{shares[p] * 100:.0f}" for p in ("baseline", "candidate", "other"))
        if shares is not None
        else "—"
    )
    if failed:
        pointed += " " + ",".join(sorted({str(host["error"]) for host in failed}))
    verdict = row["verdict"].replace("_", " ")
    if row["crossed"]:
        verdict += f" ({', '.join(_RULE_NAMES.get(rule, rule) for rule in row['crossed'])})"
    return [
        str(row["interval"]),
        pointed,
        _number(dns["ttl_s"], 0) if dns["ttl_s"] is not None else "—",
        f"{paths['candidate']['requests'] / interval_s:.1f}",
        "/".join(_percent(paths[p]["error_rate"]) for p in PATHS),
        "/".join(_number(paths[p]["p50_ms"]) for p in PATHS),
        "/".join(_number(paths[p]["p99_ms"]) for p in PATHS),
        _number(paths["candidate"]["p99_ratio"], 2),
        verdict,
    ]


def reference_line(checkpoint: CheckpointSide) -> str:
    return (
        f"checkpoint (the baseline as it was): errors {_percent(checkpoint['error_rate'])}%, "
        f"p50 {_number(checkpoint['p50_ms'])} ms, p99 {_number(checkpoint['p99_ms'])} ms, "
        f"{checkpoint['requests']} requests"
    )


def plain_line(row: IntervalRow, interval_s: float) -> str:
    cells = displayable(row_cells(row, interval_s))
    return "  ".join(f"{name}={cell}" for name, cell in zip(COLUMNS, cells, strict=True))


def json_line(row: IntervalRow) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


class WatchDisplay:
    """Shows each row as it comes: a live table on a terminal, else plain or JSON lines."""

    def __init__(
        self,
        interval_s: float,
        title: str,
        *,
        json_lines: bool = False,
        out: IO[str] | None = None,
        console: Console | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.title = title
        self.console = console or Console(file=out, highlight=False)
        self.json_lines = json_lines
        self.out = out
        self.live: Live | None = None
        self.rows: list[list[str]] = []
        self.styles: list[str] = []

    @property
    def is_live(self) -> bool:
        return not self.json_lines and self.console.is_terminal

    def show(self, row: IntervalRow) -> None:
        if self.json_lines:
            self._write(json_line(displayable(row)))
            return
        if not self.is_live:
            self._write(plain_line(row, self.interval_s))
            return
        self.rows = [*self.rows, displayable(row_cells(row, self.interval_s))][-LIVE_ROWS:]
        self.styles = [*self.styles, _VERDICT_STYLE.get(row["verdict"], "")][-LIVE_ROWS:]
        if self.live is None:
            self.live = Live(self._table(), console=self.console, auto_refresh=False)
            self.live.start()
        self.live.update(self._table(), refresh=True)

    def _write(self, line: str) -> None:
        if self.out is not None:
            self.out.write(line + "\n")
            self.out.flush()
        else:
            self.console.print(line, markup=False, soft_wrap=True)

    def _table(self) -> Table:
        table = Table(
            title=escape(self.title),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 1),
            collapse_padding=True,
        )
        for name in COLUMNS:
            table.add_column(name, justify="left" if name == "verdict" else "right", no_wrap=True)
        for cells, style in zip(self.rows, self.styles, strict=True):
            table.add_row(*(escape(cell) for cell in cells), style=style or None)
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def summary_lines(report: WatchReport) -> list[str]:
    """What the watch ends with on stderr: why it ended and, for a rollback, what crossed."""
    data: Any = displayable(report)
    lines = []
    rollback = data["rollback"]
    if rollback is not None:
        candidate = rollback["figures"]["paths"]["candidate"]
        lines.append(
            f"ROLLBACK at interval {rollback['interval']} ({rollback['at']}): {rollback['reason']}"
        )
        lines.append(
            f"  candidate: {candidate['errors']}/{candidate['requests']} errors "
            f"({_percent(candidate['error_rate'])}%), p99 {_number(candidate['p99_ms'])} ms "
            f"(x{_number(candidate['p99_ratio'], 2)} the checkpoint's)"
        )
        lines.append("  revert the DNS records to the baseline's address, then look at why")
    lines.append(f"exit {data['outcome']['exit_code']}: {data['outcome']['reason']}")
    return lines
