"""The per-SKU reference table of the GPU benchmark, and its fixed judgement. Pure.

Stage: shared by the agent (``dcmon bench`` judges its own results) and the server (results
judged again on arrival, beside the fleet-relative judgement of ``server/bench``), so it lives
in the one package both may import. ``skus.toml`` holds, per SKU, its identity (NVML names,
PCI device ids), spec figures, PCIe expectations and the references measured with the
benchmark's own method, each with its source; and the judging fractions with their reasons.

``judge(sku, test, value)`` gives pass, warn or fail against the SKU's measured reference of
that test when there is one (fail below ``measured_fail`` x, warn below ``measured_warn`` x),
else against its spec (``spec_fail``, ``spec_warn``), else ``unjudged``: every verdict says
which figure it was judged against and the ratio. Higher is better for every test here.
``find_sku`` matches a GPU by PCI device id first, then by its NVML name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "unjudged"]
TESTS = (
    "matmul_fp64",
    "matmul_fp32",
    "matmul_tf32",
    "matmul_bf16",
    "matmul_fp16",
    "matmul_fp8",
    "memory_copy",
    "host_to_device",
    "device_to_host",
)
UNITS = {test: "TFLOP/s" for test in TESTS if test.startswith("matmul_")} | {
    "memory_copy": "GB/s",
    "host_to_device": "GB/s",
    "device_to_host": "GB/s",
}


class SkuTableError(ValueError):
    """The reference table is malformed; the message names the SKU and key."""


@dataclass(frozen=True)
class Measured:
    value: float
    source: str


@dataclass(frozen=True)
class Sku:
    key: str
    name: str
    nvml_names: tuple[str, ...]
    pci_device_ids: tuple[str, ...]  # upper-case hex, device id then vendor (0x233010DE)
    memory_gb: float
    power_w: float
    pcie: Mapping[str, int]
    spec: Mapping[str, float]
    spec_source: str
    measured: Mapping[str, Measured] = field(default_factory=dict)


@dataclass(frozen=True)
class Rules:
    measured_warn: float
    measured_fail: float
    spec_warn: float
    spec_fail: float


@dataclass(frozen=True)
class Verdict:
    status: Status
    basis: Literal["measured", "spec"] | None  # what the value was judged against
    reference: float | None
    ratio: float | None  # value / reference
    reason: str


@dataclass(frozen=True)
class SkuTable:
    skus: Mapping[str, Sku]
    rules: Rules

    def find_sku(self, name: str | None = None, pci_device_id: str | None = None) -> Sku | None:
        """Returns: the SKU of a GPU by its PCI device id (NVML's ``pciDeviceId``, any case,
        with or without 0x), else by its exact NVML name; None when unknown."""
        if pci_device_id:
            wanted = _hex_id(pci_device_id)
            for sku in self.skus.values():
                if wanted in sku.pci_device_ids:
                    return sku
        if name:
            for sku in self.skus.values():
                if name in sku.nvml_names:
                    return sku
        return None

    def judge(self, sku: Sku | None, test: str, value: float) -> Verdict:
        """Returns: ``value`` of ``test`` judged against ``sku``'s reference (see module)."""
        if test not in UNITS:
            raise ValueError(f"unknown benchmark test {test!r}; known: {', '.join(TESTS)}")
        if sku is None:
            return Verdict("unjudged", None, None, None, "GPU model not in the reference table")
        rules = self.rules
        basis: Literal["measured", "spec"]
        if test in sku.measured:
            reference = sku.measured[test].value
            warn, fail, basis = rules.measured_warn, rules.measured_fail, "measured"
        elif test in sku.spec:
            reference = sku.spec[test]
            warn, fail, basis = rules.spec_warn, rules.spec_fail, "spec"
        else:
            return Verdict("unjudged", None, None, None, f"no {test} reference for {sku.name}")
        ratio = value / reference
        status: Status = "pass" if ratio >= warn else "warn" if ratio >= fail else "fail"
        unit = UNITS[test]
        reason = (
            f"{value:.4g} {unit} is {ratio:.2f} x the {sku.name} {basis} reference "
            f"{reference:.4g} {unit} (warn below {warn:.2f} x, fail below {fail:.2f} x)"
        )
        return Verdict(status, basis, reference, ratio, reason)


@cache
def default_table() -> SkuTable:
    """Returns: the table shipped with dcmon (``skus.toml``), read once."""
    text = resources.files("agent.wire").joinpath("skus.toml").read_text(encoding="utf-8")
    return parse_table(tomllib.loads(text))


def parse_table(data: Mapping[str, Any]) -> SkuTable:
    """Returns: the table from parsed TOML. Raises SkuTableError naming the bad entry."""
    try:
        judging = data["judging"]
        rules = Rules(
            float(judging["measured_warn"]),
            float(judging["measured_fail"]),
            float(judging["spec_warn"]),
            float(judging["spec_fail"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SkuTableError(f"[judging]: {exc}") from None
    if not (
        0 < rules.measured_fail < rules.measured_warn and 0 < rules.spec_fail < rules.spec_warn
    ):
        raise SkuTableError("[judging]: each fail fraction must be below its warn fraction")
    skus = {}
    for key, entry in data.get("sku", {}).items():
        try:
            skus[key] = _sku(key, entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise SkuTableError(f"[sku.{key}]: {exc}") from None
    return SkuTable(skus, rules)


def _sku(key: str, entry: Mapping[str, Any]) -> Sku:
    spec = {test: float(value) for test, value in entry.get("spec", {}).items()}
    measured = {
        test: Measured(float(item["value"]), str(item["source"]))
        for test, item in entry.get("measured", {}).items()
    }
    for test, value in (*spec.items(), *((t, m.value) for t, m in measured.items())):
        if test not in UNITS:
            raise ValueError(f"unknown test {test!r}")
        if value <= 0:
            raise ValueError(f"{test} must be positive, not {value}")
    return Sku(
        key=key,
        name=str(entry["name"]),
        nvml_names=tuple(str(n) for n in entry["nvml_names"]),
        pci_device_ids=tuple(_hex_id(i) for i in entry["pci_device_ids"]),
        memory_gb=float(entry["memory_gb"]),
        power_w=float(entry["power_w"]),
        pcie={k: int(v) for k, v in entry.get("pcie", {}).items()},
        spec=spec,
        spec_source=str(entry["spec_source"]),
        measured=measured,
    )


def _hex_id(text: str) -> str:
    value = text.strip().lower().removeprefix("0x")
    return f"0x{int(value, 16):08X}"
