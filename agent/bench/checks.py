"""The benchmark's pre- and post-checks: a GPU's health facts from NVML, and what they mean.

Stage: bench (before and after the compute tests). ``snapshot(backend, index)`` reads, through
the NVML seam (``agent.collectors.gpu.backend.NvmlBackend``), what tells a sick GPU from a
healthy one without running anything on it: volatile ECC counts, retired pages, remapped rows,
the PCIe link against its maximum and replay count, persistence mode, the enforced against the
default power limit, the clock-event reasons and the compute processes on it. A reading the
GPU does not support is None; one that fails otherwise is None with its error kept
(``errors``): missing is absent, never a guessed 0. A reading that says the GPU is lost
(``NvmlGpuLost``: fell off the bus, needs a reset) marks the snapshot ``lost``.

``findings(before, after, sku)`` judges them: what is wrong before the run (a pending row
remap, a link below the SKU's minimum, an uncorrectable error count above zero, ...), and
every error counter that **changed between pre and post**, which fails the run as DCGM's
diagnostics do; a GPU lost before or after the run fails it. ``identity(backend, index)`` reads
what names the GPU in a result (UUID, PCI bus id, product name). Pure: the seam is the only
input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agent.collectors.gpu.backend import (
    ClocksEventReason,
    FieldId,
    NvmlBackend,
    NvmlError,
    NvmlGpuLost,
    NvmlNotSupported,
    PcieLink,
    RemappedRows,
)
from agent.wire.skus import Sku

Level = Literal["fail", "warn"]
SLOWDOWN = (
    ClocksEventReason.HW_SLOWDOWN
    | ClocksEventReason.HW_THERMAL_SLOWDOWN
    | ClocksEventReason.HW_POWER_BRAKE_SLOWDOWN
)
SBE_WARN_DELTA = 100  # correctable errors during one run that deserve a look (not a failure)
REPLAY_WARN_DELTA = 100  # PCIe replays during one run: a marginal link


@dataclass(frozen=True)
class Health:
    """One GPU's health facts at one moment (None: not supported or not readable)."""

    index: int
    ecc_sbe_volatile: int | None = None
    ecc_dbe_volatile: int | None = None
    retired_sbe: int | None = None
    retired_dbe: int | None = None
    retired_pending: bool | None = None
    remapped: RemappedRows | None = None
    pcie: PcieLink | None = None
    pcie_replays: int | None = None
    persistence: bool | None = None
    power_limit_w: float | None = None
    default_power_limit_w: float | None = None
    clocks_event_reasons: int | None = None
    compute_processes: int | None = None
    errors: dict[str, str] = field(default_factory=dict)  # reading -> why it failed
    lost: bool = False  # a reading said the GPU is lost


@dataclass(frozen=True)
class Identity:
    """What names a GPU in a result (None: NVML could not say)."""

    uuid: str | None = None
    pci_bus_id: str | None = None
    name: str | None = None


def identity(backend: NvmlBackend, index: int) -> Identity:
    """Returns: the GPU's UUID, PCI bus id and name; never raises for one failed reading."""
    found: dict[str, str | None] = {}
    for key, read in (("uuid", backend.uuid), ("pci_bus_id", backend.pci_bus_id),
                      ("name", backend.name)):  # fmt: skip
        try:
            found[key] = read(index)
        except NvmlError:
            found[key] = None
    return Identity(**found)


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    message: str


_FIELDS = {
    "ecc_sbe_volatile": FieldId.ECC_SBE_VOL_TOTAL,
    "ecc_dbe_volatile": FieldId.ECC_DBE_VOL_TOTAL,
    "retired_sbe": FieldId.RETIRED_SBE,
    "retired_dbe": FieldId.RETIRED_DBE,
    "retired_pending": FieldId.RETIRED_PENDING,
}


def snapshot(backend: NvmlBackend, index: int) -> Health:
    """Returns: the GPU's health facts now; never raises for one failed reading."""
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    lost = False

    def read(name: str, call: object) -> None:
        nonlocal lost
        try:
            values[name] = call() if callable(call) else call
        except NvmlNotSupported:
            pass
        except NvmlError as exc:
            errors[name] = str(exc)
            lost = lost or isinstance(exc, NvmlGpuLost)

    try:
        entries = backend.field_values(index, [(int(f), 0) for f in _FIELDS.values()])
    except NvmlError as exc:
        errors["fields"] = str(exc)
        lost = isinstance(exc, NvmlGpuLost)
        entries = []
    by_field = {entry.field: entry for entry in entries}
    for name, field_id in _FIELDS.items():
        entry = by_field.get(int(field_id))
        if entry is None or entry.value is None:
            error = None if entry is None else entry.error
            if error is not None and not isinstance(error, NvmlNotSupported):
                errors[name] = str(error)
            continue
        values[name] = bool(entry.value) if name == "retired_pending" else int(entry.value)
    read("remapped", lambda: backend.remapped_rows(index))
    read("pcie", lambda: backend.pcie_link(index))
    read("pcie_replays", lambda: backend.pcie_replay_count(index))
    read("persistence", lambda: backend.persistence_mode(index))
    read("power_limit_w", lambda: backend.enforced_power_limit_mw(index) / 1000)
    read("default_power_limit_w", lambda: backend.default_power_limit_mw(index) / 1000)
    read("clocks_event_reasons", lambda: backend.clocks_event_reasons(index))
    read("compute_processes", lambda: len(backend.running_processes(index)))
    return Health(index=index, errors=errors, lost=lost, **values)  # type: ignore[arg-type]


def findings(before: Health, after: Health | None = None, sku: Sku | None = None) -> list[Finding]:
    """Returns: what is wrong with the GPU before the run, and what changed during it."""
    out: list[Finding] = []
    if before.lost:
        out.append(Finding("fail", "gpu_lost", f"the GPU is lost before the run: {_why(before)}"))
    elif after is not None and after.lost:
        out.append(Finding("fail", "gpu_lost", f"the GPU was lost during the run: {_why(after)}"))
    if before.ecc_dbe_volatile:
        out.append(
            Finding("fail", "ecc", f"{before.ecc_dbe_volatile} uncorrectable ECC errors since boot")
        )
    if before.retired_pending:
        out.append(Finding("fail", "retired_pages", "a page retirement waits for a GPU reset"))
    remapped = before.remapped
    if remapped is not None and remapped.failure:
        out.append(Finding("fail", "row_remap", "a row remap failed: the GPU needs replacing"))
    if remapped is not None and remapped.pending:
        out.append(Finding("fail", "row_remap", "a row remap waits for a GPU reset"))
    out += _pcie(before.pcie, sku)
    if before.persistence is False:
        out.append(Finding("warn", "persistence", "persistence mode is off"))
    limit, default = before.power_limit_w, before.default_power_limit_w
    if limit is not None and default is not None and limit < default:
        out.append(
            Finding(
                "warn",
                "power_limit",
                f"power limit {limit:g} W is below the default {default:g} W: figures drop",
            )
        )
    if after is not None:
        out += _changes(before, after)
    return out


def _pcie(link: PcieLink | None, sku: Sku | None) -> list[Finding]:
    if link is None:
        return []
    out = []
    now = f"gen {link.generation} x{link.width}"
    if link.width < link.max_width:
        out.append(
            Finding("fail", "pcie", f"PCIe link trained at {now}, below its x{link.max_width}")
        )
    minimum_gen = sku.pcie.get("min_gen") if sku is not None else None
    if minimum_gen is not None and link.generation < minimum_gen:
        out.append(
            Finding("fail", "pcie", f"PCIe link at {now}, below the SKU's gen {minimum_gen}")
        )
    elif link.generation < link.max_generation:
        out.append(
            Finding(
                "warn",
                "pcie",
                f"PCIe link at {now} of gen {link.max_generation} (idle links may step down)",
            )
        )
    return out


def _changes(before: Health, after: Health) -> list[Finding]:
    out = []
    for name, label in (
        ("ecc_dbe_volatile", "uncorrectable ECC errors"),
        ("retired_dbe", "pages retired for uncorrectable errors"),
    ):
        delta = _delta(getattr(before, name), getattr(after, name))
        if delta:
            out.append(Finding("fail", "ecc", f"{delta} {label} during the run"))
    if after.retired_pending and not before.retired_pending:
        out.append(Finding("fail", "retired_pages", "a page retirement became pending"))
    rows_before, rows_after = before.remapped, after.remapped
    if rows_before is not None and rows_after is not None:
        if rows_after.uncorrectable > rows_before.uncorrectable:
            grown = rows_after.uncorrectable - rows_before.uncorrectable
            out.append(
                Finding("fail", "row_remap", f"{grown} rows remapped for uncorrectable errors")
            )
        if (rows_after.pending and not rows_before.pending) or (
            rows_after.failure and not rows_before.failure
        ):
            out.append(Finding("fail", "row_remap", "a row remap became pending or failed"))
    sbe = _delta(before.ecc_sbe_volatile, after.ecc_sbe_volatile)
    if sbe and sbe >= SBE_WARN_DELTA:
        out.append(Finding("warn", "ecc", f"{sbe} correctable ECC errors during the run"))
    replays = _delta(before.pcie_replays, after.pcie_replays)
    if replays and replays >= REPLAY_WARN_DELTA:
        out.append(Finding("warn", "pcie", f"{replays} PCIe replays during the run"))
    reasons = after.clocks_event_reasons
    if reasons is not None and reasons & SLOWDOWN:
        names = [r.name or "" for r in ClocksEventReason if r in SLOWDOWN and reasons & r]
        out.append(
            Finding("fail", "clocks", f"hardware slowdown after the run: {', '.join(names)}")
        )
    if before.pcie is not None and after.pcie is not None and after.pcie.width < before.pcie.width:
        out.append(Finding("fail", "pcie", f"PCIe link fell to x{after.pcie.width} during the run"))
    return out


def _why(health: Health) -> str:
    """Returns: the first error that says the GPU is lost (NVML's words)."""
    return next(iter(health.errors.values()), "NVML says the GPU is lost")


def _delta(before: int | None, after: int | None) -> int:
    if before is None or after is None:
        return 0
    return after - before
