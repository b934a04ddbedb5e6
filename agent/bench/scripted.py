"""The in-memory twin of a backend: scripted figures, miscompares and faults, no compute.

Harness tests script a scenario per test name (``matmul_bf16``, ``memory_copy``, ``burn_fp32``)
and device: a figure (for all devices, or for one), an exception to raise, a burn's miscompare
count, or a GPU that is lost after some tests (every later test on it raises, as CUDA does
after an XID 79). Each call advances ``clock`` by ``seconds_per_test`` (and, with ``sleep``,
really waits that long, so a worker process can be stopped mid-run) and is recorded in
``calls``. Peer-to-peer copies are one call per ordered pair, recorded under the source.

``from_scenario`` builds one from a JSON scenario (the worker's ``--backend scripted
--script FILE``, so tests of the real worker process can script failures)::

    {"devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3"}],   # kind "cuda" unless given
     "figures": {"matmul_bf16": 790.0}, "device_figures": {"1": {"matmul_bf16": 553.0}},
     "peer_figures": {"0,1": 380.0},
     "faults": [{"test": "memory_copy", "device": 1, "kind": "error", "message": "..."}],
     "miscompares": {"1": 7}, "lost": {"1": 2}, "seconds_per_test": 0.05, "sleep": true}

``backend`` and ``note`` (optional) name the figures in the result (the simulated GPUs of a
demo node, ``agent.bench.simulated``, say what they are).

``kind`` is ``error`` (a RuntimeError), ``unsupported`` or ``not_applicable``; ``lost`` maps a
device to the number of its tests that still succeed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.bench.backend import (
    BurnOutcome,
    Device,
    NotApplicable,
    Throughput,
    Unsupported,
    matmul_flops,
    test_name,
)

DEFAULT_FIGURES = {
    "matmul": 100.0,
    "memory_copy": 1000.0,
    "host_to_device": 50.0,
    "peer_to_peer": 300.0,
}
LOST_MESSAGE = "CUDA error: unspecified launch failure (scripted: the GPU fell off the bus)"


@dataclass
class ManualClock:
    """Monotonic seconds that move only when told."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ScriptedBackend:
    """``figures`` by test name (else a default per kind), ``device_figures`` by device then
    test name, ``peer_figures`` by (source, target); ``faults`` by (test name, device) raise;
    ``miscompares`` by device make that device's burn miscompare; ``lost`` by device: the
    number of its tests that succeed before every later one raises."""

    device_list: Sequence[Device] = (Device(0, "Scripted GPU", "cuda"),)
    figures: Mapping[str, float] = field(default_factory=dict)
    device_figures: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    peer_figures: Mapping[tuple[int, int], float] = field(default_factory=dict)
    faults: Mapping[tuple[str, int], Exception] = field(default_factory=dict)
    miscompares: Mapping[int, int] = field(default_factory=dict)
    lost: Mapping[int, int] = field(default_factory=dict)
    clock: ManualClock = field(default_factory=ManualClock)
    seconds_per_test: float = 1.0
    sleep: Callable[[float], None] | None = None
    calls: list[tuple[str, int]] = field(default_factory=list)
    name: str = "scripted"
    note: str = ""  # what the result says about these figures ("" : the default note)

    def devices(self) -> list[Device]:
        return list(self.device_list)

    def matmul(
        self, device: int, dtype: str, size: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._throughput(test_name("matmul", dtype), "matmul", device, iterations)

    def memory_copy(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._throughput("memory_copy", "memory_copy", device, iterations)

    def host_to_device(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._throughput("host_to_device", "host_to_device", device, iterations)

    def device_to_host(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._throughput("device_to_host", "host_to_device", device, iterations)

    def peer_to_peer(
        self, source: int, target: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        self._enter("peer_to_peer", source, also=target)
        value = self.peer_figures.get((source, target))
        if value is None:
            value = self._figure("peer_to_peer", "peer_to_peer", source)
        return Throughput(value, iterations, self.seconds_per_test)

    def burn(self, device: int, dtype: str, size: int, duration_s: float) -> BurnOutcome:
        name = test_name("burn", dtype)
        self._enter(name, device)
        errors = self.miscompares.get(device, 0)
        iterations = 10
        tflops = matmul_flops(size) * iterations / self.seconds_per_test / 1e12
        worst = 1.0 if errors else 0.0
        return BurnOutcome(iterations, self.seconds_per_test, errors, worst, 1e-3, tflops)

    def _throughput(self, name: str, kind: str, device: int, iterations: int) -> Throughput:
        self._enter(name, device)
        return Throughput(self._figure(name, kind, device), iterations, self.seconds_per_test)

    def _figure(self, name: str, kind: str, device: int) -> float:
        mine = self.device_figures.get(device, {})
        return mine.get(name, self.figures.get(name, DEFAULT_FIGURES[kind]))

    def _enter(self, name: str, device: int, also: int | None = None) -> None:
        """Record a call on ``device`` (``also``: the target of a copy) and play its script."""
        self.calls.append((name, device))
        self.clock.advance(self.seconds_per_test)
        if self.sleep is not None:
            self.sleep(self.seconds_per_test)
        if self._lost(device, self._tests(device) - 1) or (
            also is not None and self._lost(also, self._tests(also))
        ):
            raise RuntimeError(LOST_MESSAGE)
        fault = self.faults.get((name, device))
        if fault is not None:
            raise fault

    def _tests(self, device: int) -> int:
        return sum(1 for _, d in self.calls if d == device)

    def _lost(self, device: int, tests_before: int) -> bool:
        after = self.lost.get(device)
        return after is not None and tests_before >= after


class ScenarioError(ValueError):
    """A scenario file is unreadable or malformed; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Device(_Strict):
    index: int = Field(ge=0)
    name: str = "Scripted GPU"
    kind: Literal["cpu", "cuda"] = "cuda"


class _Fault(_Strict):
    test: str
    device: int
    kind: Literal["error", "unsupported", "not_applicable"] = "error"
    message: str = "scripted fault"


class _Scenario(_Strict):
    devices: list[_Device] = Field(default_factory=lambda: [_Device(index=0)], min_length=1)
    figures: dict[str, float] = Field(default_factory=dict)
    device_figures: dict[int, dict[str, float]] = Field(default_factory=dict)
    peer_figures: dict[str, float] = Field(default_factory=dict)  # "source,target"
    faults: list[_Fault] = Field(default_factory=list)
    miscompares: dict[int, int] = Field(default_factory=dict)
    lost: dict[int, int] = Field(default_factory=dict)
    seconds_per_test: float = Field(default=0.01, ge=0)
    sleep: bool = False
    backend: str = Field(default="scripted", min_length=1, max_length=32)  # the result's name
    note: str = Field(default="", max_length=512)  # the result's note (default: say scripted)


_FAULTS: dict[str, type[Exception]] = {
    "error": RuntimeError,
    "unsupported": Unsupported,
    "not_applicable": NotApplicable,
}


def from_scenario(data: object) -> ScriptedBackend:
    """Returns: the backend a parsed JSON scenario describes. Raises: ScenarioError."""
    try:
        scenario = _Scenario.model_validate(data)
        pairs = {}
        for key, value in scenario.peer_figures.items():
            source, target = (int(part) for part in key.split(","))
            pairs[(source, target)] = value
    except (ValidationError, ValueError) as exc:
        raise ScenarioError(f"bad scenario: {exc}") from None
    return ScriptedBackend(
        device_list=tuple(Device(d.index, d.name, d.kind) for d in scenario.devices),
        figures=scenario.figures,
        device_figures=scenario.device_figures,
        peer_figures=pairs,
        faults={(f.test, f.device): _FAULTS[f.kind](f.message) for f in scenario.faults},
        miscompares=scenario.miscompares,
        lost=scenario.lost,
        seconds_per_test=scenario.seconds_per_test,
        sleep=time.sleep if scenario.sleep else None,
        name=scenario.backend,
        note=scenario.note,
    )


def load_scenario(path: Path) -> ScriptedBackend:
    """Returns: the backend the JSON scenario file at ``path`` describes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"cannot read the scenario {path}: {exc}") from None
    return from_scenario(data)
