"""How ``dcmon bench`` shows a job's progress on stderr: a bar on a terminal, else lines.

``choose(stream)`` gives a rich progress bar (tests done of total, the device and test that
run, the time elapsed; ``progress_bar.py``) when ``stream`` is a terminal and rich is
installed, else ``LineDisplay``: the run's note, then one line per finished test. A display is
a context manager (the bar is drawn between enter and exit) whose ``show`` takes ``JobEvent``s.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, TextIO

from agent.bench.jobspec import JobEvent
from agent.bench.result import BenchResult


class Display(Protocol):
    def __enter__(self) -> Display: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...

    def show(self, event: JobEvent) -> None:
        """Show one event of the job."""
        ...


def figure(result: BenchResult) -> str:
    """Returns: a result's figure with its unit, or its status and why."""
    if result.value is None:
        return f"{result.status} ({result.detail})" if result.detail else result.status
    text = f"{result.value:.4g} {result.unit}"
    return text if result.status == "ok" else f"{result.status}: {text}"


def result_line(result: BenchResult) -> str:
    return f"device {result.device} {result.test}: {figure(result)} ({result.duration_s:.2f} s)"


class LineDisplay:
    """One line per finished test, and the run's note, each prefixed ``dcmon bench:``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __enter__(self) -> LineDisplay:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        pass

    def show(self, event: JobEvent) -> None:
        if event.kind == "planned" and event.note:
            self._write(event.note)
        elif event.kind == "finished" and event.result is not None:
            self._write(result_line(event.result))

    def _write(self, text: str) -> None:
        self._stream.write(f"dcmon bench: {text}\n")
        self._stream.flush()


def choose(stream: TextIO) -> Display:
    """Returns: a progress bar on a terminal (when rich is installed), else lines."""
    if stream.isatty():
        try:
            from agent.bench.progress_bar import BarDisplay  # noqa: PLC0415 (rich: optional)
        except ModuleNotFoundError as exc:
            if exc.name != "rich":
                raise
        else:
            return BarDisplay.on(stream)
    return LineDisplay(stream)
