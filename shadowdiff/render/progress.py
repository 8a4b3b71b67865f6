"""A live progress line on stderr while a run goes on: done, rate, differences, errors per side.

Shown only when stderr is a terminal and the run lasts longer than a second; the caller decides
whether it is wanted at all (`--quiet`).
"""

from __future__ import annotations

from typing import Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from shadowdiff.pair import RunProgress

SHOW_AFTER_S: Final = 1.0


class ProgressLine:
    """Draws `RunProgress` counts as they come (`update`), on a terminal only, and only once
    the run has lasted `SHOW_AFTER_S`; `close` removes the line."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def update(self, counts: RunProgress) -> None:
        if counts.elapsed_s < SHOW_AFTER_S or not self._console.is_terminal:
            return
        if self._progress is None:
            self._progress = Progress(
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("pairs  {task.fields[rate]:>7.0f}/s"),
                TextColumn("[red]{task.fields[differing]}[/] differ"),
                TextColumn("errors b/c {task.fields[errors]}"),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "replay", total=counts.pairs_planned, rate=0.0, differing=0, errors="0/0"
            )
        assert self._task is not None
        self._progress.update(
            self._task,
            completed=counts.pairs_done,
            rate=counts.pairs_done / max(counts.elapsed_s, 1e-9),
            differing=counts.pairs_with_differences,
            errors=f"{counts.failures['baseline']}/{counts.failures['candidate']}",
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
