"""What a benchmark job is asked to do and what it tells: ``JobSpec``, ``JobEvent``, ``JobOutcome``.

Stage: the job's vocabulary, shared by ``job.run_job``, the CLI's displays and remote runs
(``order_job``). ``JobSpec.from_order`` reads a server's ``BenchOrder``; ``JobEvent.progress``
gives the ``BenchProgress`` a remote run reports. ``AUTO`` is ``run_job``'s "choose for me"
for its ``nvml`` and ``xids`` arguments.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final, Literal

from agent.bench.result import BenchResult
from agent.bench.verdicts import Judged
from agent.wire.bench import MAX_ID, BenchOrder, BenchProgress

JobState = Literal["done", "failed", "refused", "cancelled"]
EventKind = Literal["planned", "started", "finished"]


class Auto(enum.Enum):
    AUTO = "auto"


AUTO: Final = Auto.AUTO  # "choose for me" for ``nvml`` and ``xids``


@dataclass(frozen=True)
class JobSpec:
    """What to run: a level on some GPUs (None: all), the burn's duration, a backend name."""

    level: str
    gpus: list[int] | None = None
    duration_s: float | None = None
    force: bool = False
    backend: str = "auto"

    @classmethod
    def from_order(cls, order: BenchOrder) -> JobSpec:
        """Returns: the job a server's order asks for (on every GPU's backend, ``auto``)."""
        gpus = None if order.gpus is None else list(order.gpus)
        return cls(order.level, gpus, order.duration_s, order.force)


@dataclass(frozen=True)
class JobEvent:
    """Progress: ``done`` of ``total`` results so far; the test that starts (``started``) or
    finished (``finished``, with its ``result``); ``planned`` carries the run's ``note``."""

    kind: EventKind
    done: int
    total: int
    test: str = ""
    device: int | None = None
    result: BenchResult | None = None
    note: str = ""

    def progress(self) -> BenchProgress:
        """Returns: the event as a remote run reports its progress."""
        return BenchProgress(done=self.done, total=self.total, test=self.test[:MAX_ID],
                             device=self.device)  # fmt: skip


@dataclass(frozen=True)
class JobOutcome:
    state: JobState
    message: str
    busy: bool = False  # refused because GPUs run compute processes (retry later)
    result: dict[str, Any] | None = None  # the judged tree (agent.wire.bench.BenchRun)
    judged: Judged | None = None  # the same, as objects (for the CLI's table)
