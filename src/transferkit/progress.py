"""Rich progress bars with count, rate and ETA, handed to the API as a plain callback."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text


class RateColumn(ProgressColumn):
    def __init__(self, unit: str = "img"):
        super().__init__(table_column=Column(no_wrap=True))
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if self.unit != "img" and speed:  # slow units (folds): seconds per unit reads better
            return Text(f"{1 / speed:5.1f} s/{self.unit}", style="progress.data.speed")
        return Text(f"{speed:6.1f} {self.unit}/s" if speed else f"      - {self.unit}/s", style="progress.data.speed")


@contextmanager
def progress_bar(description: str, console: Console | None = None, unit: str = "img"):
    """Yield a ``(done, total)`` callback that drives a progress bar; ``unit`` names what is counted."""
    columns = (
        TextColumn("{task.description}", style="bold", markup=False, table_column=Column(no_wrap=True)),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task(escape(description), total=total)
            bar.update(task, completed=done)

        yield update
