"""Scripted faults for simulated GPUs: a timeline of XIDs, overheating and silence. Pure.

Stage: stands in for hardware trouble behind ``SimulatedBackend`` (``dcmon demo --scenario
faults``), so the rule pack's alerts can be seen to fire and resolve without a broken GPU. A
``FaultPlan`` is a start time (Unix seconds) and faults at offsets from it:

- ``Xid``: the driver reports an XID on one GPU at one moment (``SimulatedXidSource`` turns
  it into the event the NVML event API would deliver);
- ``Overheat``: one GPU runs hot over a window: its core temperature is held at least at
  ``temperature_c`` and the driver reports the software thermal slowdown clock-event reason;
- ``Silence``: the whole node stops (hangs) over a window; the agent's owner (the demo's
  supervisor) freezes the process, so nothing is collected or sent, as on a hung node.

The module imports nothing of the agent (the demo's supervisor reads the same timeline).
Everything is a function of the plan and the time, so a restarted agent with the same plan
carries on where the timeline is, and a test with a fake clock sees exactly what the demo does.
``demo_plan`` is the demo's timeline; ``describe`` prints it for the person watching.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Xid:
    gpu: int
    code: int
    at_s: float
    message: str = ""


@dataclass(frozen=True)
class Overheat:
    gpu: int
    from_s: float
    to_s: float
    temperature_c: int = 91


@dataclass(frozen=True)
class Silence:
    from_s: float
    to_s: float


Fault = Xid | Overheat | Silence


@dataclass(frozen=True)
class FaultPlan:
    start: float  # Unix seconds; every offset counts from here
    faults: tuple[Fault, ...]

    def temperature_c(self, gpu: int, t: float, base: int) -> int:
        """Returns: the core temperature of ``gpu`` at ``t``, given its fault-free ``base``."""
        for fault in self._overheats(gpu, t):
            base = max(base, fault.temperature_c)
        return base

    def overheated(self, gpu: int, t: float) -> bool:
        """Returns: whether ``gpu`` runs hot at ``t`` (the driver then slows it for heat)."""
        return any(True for _ in self._overheats(gpu, t))

    def xids_between(self, t0: float, t1: float) -> list[tuple[float, Xid]]:
        """Returns: (time, fault) of every XID in ``(t0, t1]``, in time order."""
        found = [
            (self.start + f.at_s, f)
            for f in self.faults
            if isinstance(f, Xid) and t0 < self.start + f.at_s <= t1
        ]
        return sorted(found, key=lambda item: item[0])

    def silences(self) -> list[tuple[float, float]]:
        """Returns: the (from, to) Unix times of every window the node is silent."""
        return [
            (self.start + f.from_s, self.start + f.to_s)
            for f in self.faults
            if isinstance(f, Silence)
        ]

    def _overheats(self, gpu: int, t: float) -> Iterator[Overheat]:
        for fault in self.faults:
            if (
                isinstance(fault, Overheat)
                and fault.gpu == gpu
                and self.start + fault.from_s <= t < self.start + fault.to_s
            ):
                yield fault


def demo_plan(start: float) -> FaultPlan:
    """Returns: ``dcmon demo --scenario faults``' timeline, from ``start``.

    Sized to the shipped pack's timings (groups evaluated every minute): XID 79 on GPU 3 at
    1 min (GpuXidFatal at the next round; the agent fences the GPU for 10 min, so GpuLost
    too), GPU 5 hot from 1 to 9 min (GpuThermalSlowdown after 2 min, GpuTemperatureHigh after
    5), the node silent from 12 to 17 min (NodeDown after its staleness window and 2 min).
    """
    return FaultPlan(
        start,
        (
            Xid(3, 79, 60.0, "GPU has fallen off the bus (simulated)"),
            Overheat(5, 60.0, 540.0),
            Silence(720.0, 1020.0),
        ),
    )


def describe(plan: FaultPlan) -> list[str]:
    """Returns: one line per fault, with minutes from the start, for the demo's banner."""
    lines = []
    for fault in plan.faults:
        if isinstance(fault, Xid):
            lines.append(f"{_minutes(fault.at_s)}  XID {fault.code} on GPU {fault.gpu}")
        elif isinstance(fault, Overheat):
            lines.append(
                f"{_minutes(fault.from_s)}  GPU {fault.gpu} runs at {fault.temperature_c} C "
                f"until {_minutes(fault.to_s)}"
            )
        else:
            lines.append(
                f"{_minutes(fault.from_s)}  the node goes silent until {_minutes(fault.to_s)}"
            )
    return lines


def _minutes(offset_s: float) -> str:
    return f"+{offset_s / 60:g} min"
