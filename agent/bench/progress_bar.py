"""The progress bar of ``dcmon bench`` on a terminal (rich, from the gpu-bench extra).

Shows tests done of total, the device and test running, and the time elapsed; each finished
test is printed above the bar as a line, as ``LineDisplay`` would.
"""

from __future__ import annotations

from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from agent.bench.display import result_line
from agent.bench.jobspec import JobEvent


class BarDisplay:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    @classmethod
    def on(cls, stream: TextIO) -> BarDisplay:
        return cls(Console(file=stream, highlight=False))

    def __enter__(self) -> BarDisplay:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def show(self, event: JobEvent) -> None:
        progress = self._progress
        if event.kind == "planned":
            if event.note:
                progress.console.print(f"dcmon bench: {event.note}", markup=False)
            self._task = progress.add_task("starting", total=event.total)
            return
        if self._task is None:
            return
        if event.kind == "started":
            progress.update(self._task, description=f"device {event.device} {event.test}")
        elif event.result is not None:
            progress.console.print(result_line(event.result), markup=False)
            progress.update(self._task, completed=event.done)
