"""The simulated XID source: the XIDs of a ``FaultPlan``, as NVML's event API would report them.

Stage: ``FaultPlan`` -> ``poll`` -> ``EventsCollector``, the twin of ``NvmlEventSource`` for
simulated GPUs (``dcmon demo --scenario faults``). Each poll reports the plan's XIDs that fell
since the previous poll, never one from before the source was made, so an agent restarted
later in the timeline does not report an old XID again. Reports are tagged ``nvml`` with the
GPU's index, exactly what the real source gives; the message says it is simulated.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.collectors.gpu.faults import FaultPlan
from agent.events.model import XidObservation


class SimulatedXidSource:
    def __init__(self, plan: FaultPlan, clock: Callable[[], float]) -> None:
        self._plan = plan
        self._clock = clock
        self._last = clock()

    @property
    def name(self) -> str:
        return "simulated"

    def poll(self, now: float) -> list[XidObservation]:
        t = max(self._last, self._clock())
        found = self._plan.xids_between(self._last, t)
        self._last = t
        return [
            XidObservation(
                source="nvml",
                time=at,
                code=xid.code,
                gpu_index=xid.gpu,
                message=xid.message or f"Xid {xid.code} (simulated)",
            )
            for at, xid in found
        ]

    def close(self) -> None:
        pass
