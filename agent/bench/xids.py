"""XIDs during a benchmark run: an XID source watched by the job, judged per GPU.

Stage: job (while the worker runs). Input: an ``agent.events.XidSource`` (``NvmlEventSource``,
or a scripted one in tests) polled by the job; each observation is matched to a benchmarked GPU
by NVML index or PCI bus id. Output: findings naming each XID code and its name in the XID
table. Any XID on a benchmarked GPU fails the run: the benchmark's own kernels are correct, so
even an XID that usually blames an application (13, 31, 43) says that the GPU, its memory or
its driver misbehaved under load. An XID that names no GPU warns on every benchmarked GPU; one
on a GPU not benchmarked is left to the agent's own XID collector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from agent.bench.checks import Finding
from agent.events.collector import XidSource
from agent.events.model import XidObservation, normalise_bus_id
from agent.events.xid import XidTable, load_xid_table


class XidWatch:
    """Collects the XIDs ``source`` reports on ``gpus`` (NVML index -> PCI bus id or None)."""

    def __init__(
        self,
        source: XidSource,
        gpus: Mapping[int, str | None],
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._gpus = dict(gpus)
        self._buses = {normalise_bus_id(b): i for i, b in gpus.items() if b}
        self._wall = wall
        self._seen: list[tuple[int | None, XidObservation]] = []
        self._table: XidTable | None = None

    def drain(self) -> None:
        """Forget what the source holds from before the run."""
        self._source.poll(self._wall())

    def poll(self) -> None:
        """Take what the source saw since the last poll."""
        for observation in self._source.poll(self._wall()):
            gpu = self._gpu_of(observation)
            if gpu is not None or (observation.gpu_index is None and not observation.pci_bus_id):
                self._seen.append((gpu, observation))

    def findings(self) -> dict[int, list[Finding]]:
        """Returns: per benchmarked GPU, a finding for each XID seen on it."""
        out: dict[int, list[Finding]] = {gpu: [] for gpu in self._gpus}
        for gpu, observation in self._seen:
            text = f"Xid {observation.code} ({self._name(observation.code)}) during the run"
            if observation.message:
                text += f": {observation.message[:200]}"
            if gpu is None:
                unnamed = Finding("warn", "xid", f"{text}, on a GPU the driver did not name")
                for items in out.values():
                    items.append(unnamed)
            else:
                out[gpu].append(Finding("fail", "xid", text))
        return out

    def _gpu_of(self, observation: XidObservation) -> int | None:
        if observation.gpu_index is not None and observation.gpu_index in self._gpus:
            return observation.gpu_index
        if observation.pci_bus_id:
            return self._buses.get(normalise_bus_id(observation.pci_bus_id))
        return None

    def _name(self, code: int) -> str:
        if self._table is None:
            self._table = load_xid_table()
        return self._table.lookup(code).mnemonic or "not in dcmon's XID table"
