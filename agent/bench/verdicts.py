"""A benchmark run judged: each figure against its SKU, and each GPU's health before and after.

Stage: bench (after the harness). ``judge(run, table)`` looks each device up in the SKU table
(``agent.wire.skus``, by its name; a CPU device is never a SKU) and judges every measured
figure against the SKU's reference: pass, warn, fail or unjudged, with the reason.
``checked_run`` wraps the harness with the NVML pre- and post-checks (``checks.py``) of the
GPUs it runs on: it refuses a GPU with compute processes on it unless ``force``, takes a
snapshot before and after, and records the findings. The run fails when a figure fails its
SKU's bar, a finding fails, or a test failed or raised. Device indices are NVML's: the torch
backend is run with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA numbers the GPUs as NVML
does. ``Judged.to_dict`` is the tree ``agent.wire.bench.BenchRun`` validates: each device
names its NVML UUID, PCI bus id and SKU key (None where unknown, always None on a CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.bench.checks import Finding, Health, Identity, findings, snapshot
from agent.bench.result import RunResult
from agent.collectors.gpu.backend import NvmlBackend
from agent.wire.skus import UNITS, SkuTable, Verdict


@dataclass(frozen=True)
class JudgedFigure:
    device: int
    test: str
    verdict: Verdict


@dataclass(frozen=True)
class Judged:
    run: RunResult
    figures: tuple[JudgedFigure, ...]
    findings: dict[int, tuple[Finding, ...]]  # device index -> pre/post-check findings
    skus: Mapping[int, str | None] = field(default_factory=dict)  # device index -> SKU key
    identity: Mapping[int, Identity] = field(default_factory=dict)  # from NVML, by index

    @property
    def passed(self) -> bool:
        return (
            self.run.passed
            and all(f.verdict.status != "fail" for f in self.figures)
            and all(f.level != "fail" for items in self.findings.values() for f in items)
        )

    def to_dict(self) -> dict[str, Any]:
        tree = self.run.to_dict()
        tree["passed"] = self.passed
        for data in tree["devices"]:
            index = data["device"]["index"]
            known = self.identity.get(index, Identity())
            data["device"] |= {
                "uuid": known.uuid,
                "sku": self.skus.get(index),
                "pci_bus_id": known.pci_bus_id,
            }
        tree["judgement"] = [
            {
                "device": f.device,
                "test": f.test,
                "status": f.verdict.status,
                "basis": f.verdict.basis,
                "reference": f.verdict.reference,
                "ratio": f.verdict.ratio,
                "reason": f.verdict.reason,
            }
            for f in self.figures
        ]
        tree["checks"] = {
            str(device): [{"level": f.level, "check": f.check, "message": f.message} for f in items]
            for device, items in self.findings.items()
        }
        return tree


class BusyGpuError(Exception):
    """A GPU has compute processes on it and ``force`` was not given; names them."""


def judge(
    run: RunResult,
    table: SkuTable,
    found: dict[int, tuple[Finding, ...]] | None = None,
    identity: Mapping[int, Identity] | None = None,
) -> Judged:
    """Returns: every measured figure of ``run`` judged against its device's SKU (found by
    the NVML name in ``identity`` when there is one, else by the backend's device name)."""
    figures = []
    skus: dict[int, str | None] = {}
    known = identity or {}
    for report in run.devices:
        device = report.device
        name = known[device.index].name if device.index in known else None
        sku = table.find_sku(name=name or device.name) if device.kind != "cpu" else None
        skus[device.index] = None if sku is None else sku.key
        for result in report.results:
            if result.value is None or result.status != "ok" or result.test.startswith("burn"):
                continue
            if device.kind == "cpu":
                verdict = Verdict("unjudged", None, None, None, "a CPU, not a GPU")
            elif result.test in UNITS:
                verdict = table.judge(sku, result.test, result.value)
            else:  # a test the table has no key for
                verdict = Verdict("unjudged", None, None, None, f"no reference for {result.test}")
            figures.append(JudgedFigure(device.index, result.test, verdict))
    return Judged(run, tuple(figures), found or {}, skus, dict(known))


def checked_run(
    bench: Callable[[], RunResult],
    nvml: NvmlBackend | None,
    devices: Sequence[int],
    table: SkuTable,
    *,
    force: bool = False,
) -> Judged:
    """Run ``bench`` between NVML snapshots of ``devices`` (None: no NVML, no checks).

    Raises:
        BusyGpuError: a GPU runs compute processes and ``force`` is off (nothing was run).
    """
    before: dict[int, Health] = {}
    if nvml is not None:
        for index in devices:
            before[index] = snapshot(nvml, index)
        busy = [i for i, h in before.items() if h.compute_processes]
        if busy and not force:
            raise BusyGpuError(
                f"GPU {', '.join(map(str, busy))} run compute processes: their figures would "
                "be wrong and their jobs slowed; stop them or pass --force"
            )
    run = bench()
    after = {index: snapshot(nvml, index) for index in before} if nvml is not None else {}
    skus = {r.device.index: table.find_sku(name=r.device.name) for r in run.devices}
    found = {
        index: tuple(findings(health, after[index], skus.get(index)))
        for index, health in before.items()
    }
    return judge(run, table, found)
