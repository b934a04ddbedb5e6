"""A benchmark run judged: each figure against its SKU, and each GPU's health before and after.

Stage: bench (after the harness). ``judge(run, table)`` looks each device up in the SKU table
(``agent.wire.skus``, by its name; a CPU device is never a SKU) and judges every measured
figure against the SKU's reference: pass, warn, fail or unjudged, with the reason; the
findings of the NVML checks (``checks.py``, taken by ``job.py``) ride along. The run fails
when a figure fails its SKU's bar, a finding fails, or a test failed or raised. Device
indices are NVML's: the torch backend is run with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA
numbers the GPUs as NVML does. ``Judged.to_dict`` is the tree ``agent.wire.bench.BenchRun``
validates: each device names its NVML UUID, PCI bus id and SKU key (None where unknown, always
None on a CPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.bench.checks import Finding, Identity
from agent.bench.result import RunResult
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

    def reasons(self) -> list[str]:
        """Returns: why the run did not pass, one line each: the failed checks first (a lost
        GPU, an XID: causes), then the failed tests and figures (often their symptoms)."""
        out = [
            f"device {index} {f.check}: {f.message}"
            for index, items in self.findings.items()
            for f in items
            if f.level == "fail"
        ]
        out += [
            f"device {r.device} {r.test}: {r.status}: {r.detail}"
            for report in self.run.devices
            for r in report.results
            if r.status in ("fail", "error")
        ]
        out += [
            f"device {f.device} {f.test}: {f.verdict.reason}"
            for f in self.figures
            if f.verdict.status == "fail"
        ]
        return out

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
