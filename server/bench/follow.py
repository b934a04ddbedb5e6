"""Follow benchmark requests to their end: ``dcmon benchmarks request --wait``.

Stage: CLI. Polls ``GET /api/v1/bench/requests/{id}`` for each request until every one is final
(done, failed, refused, cancelled, expired), showing each request's state and progress: a
progress bar per node on a terminal (rich), one line per change otherwise (logs, CI). The
server bounds the wait: a request not started in time, or whose agent stops reporting,
expires there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from agent.wire.bench import BENCH_REQUESTS_PATH

FINAL = frozenset({"done", "failed", "refused", "cancelled", "expired"})
POLL_SECONDS = 1.0
Request = dict[str, Any]


class Client(Protocol):
    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]: ...


class Display(Protocol):
    def update(self, request: Request) -> None: ...

    def close(self) -> None: ...


class Follower:
    """Polls requests until each is final; ``follow`` returns their last answers, in order."""

    def __init__(
        self,
        client: Client,
        sleep: Callable[[float], None] = time.sleep,
        display: Display | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._display = display
        self._poll_seconds = poll_seconds

    def follow(self, ids: Sequence[str]) -> list[Request]:
        display = self._display or choose_display(sys.stderr)
        last: dict[str, Request] = {}
        try:
            while True:
                for rid in ids:
                    if rid in last and last[rid]["state"] in FINAL:
                        continue
                    last[rid] = self._client.get(f"{BENCH_REQUESTS_PATH}/{rid}")
                    display.update(last[rid])
                if all(last[rid]["state"] in FINAL for rid in ids):
                    return [last[rid] for rid in ids]
                self._sleep(self._poll_seconds)
        finally:
            display.close()


def all_passed(requests: Sequence[Request]) -> bool:
    """Returns: whether every request is done and its run passed."""
    return all(r["state"] == "done" and (r.get("result") or {}).get("passed") for r in requests)


def choose_display(stream: TextIO) -> Display:
    """Returns: progress bars on a terminal, else a line per change."""
    if stream.isatty():
        return BarDisplay(Console(file=stream))
    return LineDisplay(stream)


def describe(request: Request) -> str:
    """Returns: e.g. ``node-a running memory_copy on GPU 3`` or ``node-a refused: <why>``."""
    text = f"{request['node']} {request['state']}"
    progress = request.get("progress") or {}
    if request["state"] == "running" and progress.get("test"):
        text += f" {progress['test']}"
        if progress.get("device") is not None:
            text += f" on device {progress['device']}"
    if request["state"] not in ("running", "done") and request.get("message"):
        text += f": {request['message']}"
    return text


class LineDisplay:
    """One line on ``stream`` whenever a request's state, test or message changes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._said: dict[str, str] = {}

    def update(self, request: Request) -> None:
        line = describe(request)
        progress = request.get("progress") or {}
        if request["state"] == "running" and progress.get("total"):
            line += f" ({progress['done']}/{progress['total']})"
        if self._said.get(request["id"]) != line:
            self._said[request["id"]] = line
            print(line, file=self._stream, flush=True)

    def close(self) -> None:
        return None


class BarDisplay:
    """A progress bar per request: tests done of the run's total, with the state beside it."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._progress.start()

    def update(self, request: Request) -> None:
        progress = request.get("progress") or {}
        total = progress.get("total") or None
        done = progress.get("done", 0)
        if request["state"] == "done" and total:
            done = total
        if request["id"] not in self._tasks:
            self._tasks[request["id"]] = self._progress.add_task("", total=total)
        self._progress.update(
            self._tasks[request["id"]], description=describe(request), total=total, completed=done
        )

    def close(self) -> None:
        self._progress.stop()
