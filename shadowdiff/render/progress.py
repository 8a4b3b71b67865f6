"""A live progress line on stderr while a run goes on: done, rate, differences, errors per side.

Shown only when stderr is a terminal and the run lasts longer than a second; the caller decides
whether it is wanted at all (`--quiet`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

SHOW_AFTER_S: Final = 1.0
REFRESH_S: Final = 0.1


async def show_progress(
    collector: Any,
    total_pairs: int | None,
    console: Console | None = None,
    wait_for: Any = None,
) -> None:
    """Run until cancelled, drawing progress from counters: a `RunCollector`, or anything
    with the same `pairs_done`, `pairs_with_differences` and `failures`. `wait_for`, when
    given, is a list that holds the counters once they exist (worker processes start later)."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        return
    await asyncio.sleep(SHOW_AFTER_S)
    while isinstance(wait_for, list) and not wait_for:
        await asyncio.sleep(REFRESH_S)
    if isinstance(wait_for, list):
        collector = wait_for[0]
    loop = asyncio.get_running_loop()
    started = loop.time() - SHOW_AFTER_S
    with Progress(
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pairs  {task.fields[rate]:>7.0f}/s"),
        TextColumn("[red]{task.fields[differing]}[/] differ"),
        TextColumn("errors b/c {task.fields[errors]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("replay", total=total_pairs, rate=0.0, differing=0, errors="0/0")
        while True:
            elapsed = max(loop.time() - started, 1e-9)
            progress.update(
                task,
                completed=collector.pairs_done,
                rate=collector.pairs_done / elapsed,
                differing=collector.pairs_with_differences,
                errors=f"{collector.failures['baseline']}/{collector.failures['candidate']}",
            )
            await asyncio.sleep(REFRESH_S)
